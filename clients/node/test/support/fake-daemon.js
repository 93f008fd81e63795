'use strict';
// A fake daemon for the transport's tests: a zeromq ROUTER bound where a daemon's command.sock
// would be, which hands each request it receives to the test and answers only what the test
// tells it to. So a test can drop a request, answer out of order, or answer with garbage, and
// count exactly what arrived.

const path = require('node:path');
const zmq = require('zeromq');
const { shortDir } = require('./daemon');

/**
 * @typedef {object} ReceivedRequest
 * @property {Buffer} identity the DEALER's routing id: a fresh socket has a new one
 * @property {Buffer[]} frames what came after the identity
 * @property {any} body the request's JSON
 */

class FakeDaemon {
  /** @param {string} runtimeDir */
  constructor(runtimeDir) {
    this.runtimeDir = runtimeDir;
    this.command = `ipc://${path.join(runtimeDir, 'command.sock')}`;
    this.router = new zmq.Router({ linger: 0 });
    /** @type {ReceivedRequest[]} every request received, in order */
    this.requests = [];
    this._taken = 0;
    /** @type {Array<() => void>} */
    this._waiters = [];
  }

  /** A fake daemon listening in a fresh runtime dir. */
  static async start() {
    const fake = new FakeDaemon(shortDir('adn-fake-'));
    await fake.router.bind(fake.command);
    void fake._receive();
    return fake;
  }

  async _receive() {
    try {
      for await (const [identity, ...frames] of this.router) {
        let body;
        try {
          body = JSON.parse(frames[frames.length - 1].toString());
        } catch {
          body = null;
        }
        this.requests.push({ identity, frames, body });
        for (const wake of this._waiters.splice(0)) wake();
      }
    } catch (error) {
      if (!this.router.closed) throw error;
    }
  }

  /**
   * The next request not yet taken by a `next()`, waiting up to `timeoutMs` for it.
   * @returns {Promise<ReceivedRequest>}
   */
  next(timeoutMs = 5_000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the fake daemon got no request within ${timeoutMs} ms`)), timeoutMs);
      const take = () => {
        if (this._taken < this.requests.length) {
          clearTimeout(timer);
          resolve(this.requests[this._taken++]);
        } else {
          this._waiters.push(take);
        }
      };
      take();
    });
  }

  /** Let `next()` skip every request received so far (those of earlier tests). */
  forget() {
    this._taken = this.requests.length;
  }

  /**
   * Answer `request` with `reply` (the id is the request's unless `reply` has one).
   * @param {ReceivedRequest} request
   * @param {object} reply `{ result }` or `{ error }`
   */
  answer(request, reply) {
    return this.sendRaw(request, '', JSON.stringify({ id: request.body.id, ...reply }));
  }

  /**
   * Send these frames to the DEALER that sent `request`.
   * @param {ReceivedRequest} request
   * @param {...(string | Buffer)} frames
   */
  sendRaw(request, ...frames) {
    return this.router.send([request.identity, ...frames]);
  }

  close() {
    this.router.close();
  }
}

module.exports = { FakeDaemon };
