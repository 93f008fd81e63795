'use strict';
// Bare commands over a zeromq Dealer (getSnapshot, and the calls that make changes), so that
// the watch can be tested on its own (the client is tested with the client, and the watch
// through it too).

const zmq = require('zeromq');
const { UnavailableError } = require('../../src/errors');

/**
 * `call(method, params)` and `getSnapshot()` against `endpoint` (the daemon's command.sock),
 * and `close()`. A call that gets no reply within `timeoutMs` rejects with UnavailableError
 * (as the client's does) and reopens the socket; an error reply rejects with an Error whose
 * `error` is the reply's error object.
 * @param {string} endpoint
 * @param {{ timeoutMs?: number }} [options]
 */
function commands(endpoint, { timeoutMs = 5000 } = {}) {
  let socket = open();
  let nextId = 1;
  let queue = Promise.resolve();

  function open() {
    const dealer = new zmq.Dealer({ linger: 0, sendTimeout: timeoutMs, receiveTimeout: timeoutMs });
    dealer.connect(endpoint);
    return dealer;
  }

  /** @returns {Promise<any>} */
  async function send(method, params) {
    const id = nextId++;
    const unavailable = (error) => {
      socket.close();
      socket = open();
      return new UnavailableError(`${method}: no reply (${error})`, { code: 'timeout' });
    };
    try {
      await socket.send(['', JSON.stringify({ id, method, params })]);
    } catch (error) {
      throw unavailable(error);
    }
    for (;;) {
      let frames;
      try {
        frames = await socket.receive();
      } catch (error) {
        throw unavailable(error);
      }
      const reply = JSON.parse(frames[frames.length - 1].toString());
      if (reply.id !== id) continue; // a late reply to an earlier call
      if (reply.error) throw Object.assign(new Error(`${method}: ${reply.error.message}`), { error: reply.error });
      return reply.result;
    }
  }

  /** One call at a time: replies are matched by waiting for each in turn. */
  function call(method, params = {}) {
    const result = queue.then(() => send(method, params));
    queue = result.catch(() => {});
    return result;
  }

  return {
    call,
    getSnapshot: () => call('getSnapshot'),
    close() {
      socket.close();
    },
  };
}

module.exports = { commands };
