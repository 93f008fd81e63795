'use strict';
// The request/reply transport: one zeromq DEALER, many requests in flight, each reply matched
// to its call by `id` (PROTOCOL.md, "Transport").
//
// ZeroMQ's Lazy Pirate, adapted to pipelining: when a reply does not come in time, its socket
// is *retired* (no new request goes to it, and it is closed once the calls still waiting on it
// have ended) and the next call opens a fresh one, so a connection that went bad (a daemon
// restarted behind a tcp:// endpoint, a half-open TCP link) is not used again. A call that
// timed out is sent again, on the fresh socket, only when it is idempotent (a read): an
// invoke, a create or a start may have been carried out although its reply was lost, and
// doing it twice is not the same as doing it once (PROTOCOL.md, invokeAssistant).

const zmq = require('zeromq');
const {
  AssistantdError,
  InternalError,
  PayloadTooLargeError,
  UnavailableError,
} = require('./errors');
const { noReplyHint } = require('./curve');
const { checkReachable } = require('./discovery');
const { MAX_TIMER_MS, replyTimeout } = require('./waits');

/** Reads: sending one twice does nothing that sending it once did not. */
const IDEMPOTENT_METHODS = new Set(['ping', 'listAssistants', 'getAssistant', 'getSnapshot']);

/** ZeroMQ on the daemon's side drops a bigger message, and the connection with it, unanswered. */
const MESSAGE_MAX_BYTES = 8 * 1024 * 1024;

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_RETRIES = 2;

/**
 * @typedef {object} PendingCall
 * @property {Connection} connection
 * @property {(result: unknown) => void} resolve
 * @property {(error: unknown) => void} reject
 * @property {NodeJS.Timeout} timer
 */

/** The reason an attempt ended without a reply; `request` decides what the caller sees. */
class NoReply extends Error {}

/** One DEALER socket and the loop that reads its replies. */
class Connection {
  /**
   * @param {string} endpoint
   * @param {object} socketOptions zeromq.js options (CURVE keys) set before it connects
   * @param {(connection: Connection, frames: Buffer[]) => void} onMessage
   * @param {(connection: Connection, error: unknown) => void} onBroken
   */
  constructor(endpoint, socketOptions, onMessage, onBroken) {
    // linger 0: a closed socket drops what it still holds at once, so that closing never
    // waits for a daemon that is gone (and the process can exit).
    this.socket = new zmq.Dealer({ ...socketOptions, linger: 0 });
    try {
      this.socket.connect(endpoint);
    } catch (error) {
      this.socket.close();
      throw new UnavailableError(`Cannot connect to ${endpoint}: ${errorMessage(error)}`, {
        code: 'connection_failed',
        cause: error,
      });
    }
    /** Ids of the calls sent on this socket that have not ended. */
    this.waiting = /** @type {Set<number>} */ (new Set());
    /** No new call goes to a retired socket. */
    this.retired = false;
    /** @type {Promise<void>} */
    this._sending = Promise.resolve();
    void this._read(onMessage, onBroken);
  }

  /**
   * Queue `frames`. The sends are chained: zeromq.js allows one send at a time to wait (while
   * the socket is at its high-water mark), and pipelined calls would otherwise collide there.
   * @param {string[]} frames
   * @returns {Promise<void>}
   */
  send(frames) {
    const sent = this._sending.then(() => this.socket.send(frames));
    this._sending = sent.catch(() => {});
    return sent;
  }

  get closed() {
    return this.socket.closed;
  }

  close() {
    this.socket.close();
  }

  /**
   * @param {(connection: Connection, frames: Buffer[]) => void} onMessage
   * @param {(connection: Connection, error: unknown) => void} onBroken
   */
  async _read(onMessage, onBroken) {
    for (;;) {
      let frames;
      try {
        frames = await this.socket.receive();
      } catch (error) {
        // Closing the socket ends a pending receive with an error: that is this loop's end.
        if (!this.socket.closed) onBroken(this, error);
        return;
      }
      onMessage(this, frames);
    }
  }
}

/**
 * Requests to one daemon endpoint and their replies.
 *
 * @example
 *   const transport = new Transport({ endpoint, security });
 *   const assistant = await transport.request('getAssistant', { assistant_id: 'jan' });
 *   transport.close();
 */
class Transport {
  /**
   * @param {object} options
   * @param {string} options.endpoint the daemon's command endpoint
   * @param {{ socketOptions(endpoint: string): object }} options.security CURVE, for tcp://
   * @param {number} [options.timeout] ms to wait for a reply (plus the daemon's work time)
   * @param {number} [options.retries] times an idempotent call is sent again after no reply
   */
  constructor({ endpoint, security, timeout = DEFAULT_TIMEOUT_MS, retries = DEFAULT_RETRIES }) {
    checkTimeout(timeout, 'timeout');
    checkRetries(retries);
    this.endpoint = endpoint;
    this.security = security;
    this.timeout = timeout;
    this.retries = retries;
    /** @type {Connection | null} the socket new calls go to */
    this._current = null;
    /** @type {Set<Connection>} every socket not closed yet, retired ones included */
    this._connections = new Set();
    /** @type {Map<number, PendingCall>} */
    this._calls = new Map();
    this._nextId = 1;
    this._closed = false;
  }

  get closed() {
    return this._closed;
  }

  /**
   * Send `method` with `params`; its `result`, or the error the daemon answered with (an
   * `AssistantdError`). `UnavailableError` (`timeout`) when no reply came within `timeout` ms
   * plus the time the daemon may spend on the work (see waits.js), after the retries of an
   * idempotent call.
   * @param {string} method
   * @param {Record<string, unknown>} [params]
   * @param {{ timeout?: number, retries?: number }} [options] this call's own `timeout` and
   *   `retries`, instead of the transport's
   * @returns {Promise<unknown>}
   */
  async request(method, params = {}, { timeout = this.timeout, retries = this.retries } = {}) {
    checkTimeout(timeout, 'timeout');
    checkRetries(retries);
    const encodedParams = encodeParams(params);
    const wait = replyTimeout(method, params, timeout);
    const idempotent = IDEMPOTENT_METHODS.has(method);
    const attempts = idempotent ? retries + 1 : 1;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this._attempt(method, encodedParams, wait);
      } catch (error) {
        if (!(error instanceof NoReply)) throw error;
        if (attempt < attempts) continue;
        throw new UnavailableError(noReplyMessage(this.endpoint, method, wait, idempotent, attempts), {
          code: 'timeout',
        });
      }
    }
  }

  /**
   * Reject every call still waiting (`UnavailableError`, `client_closed`) and close every
   * socket, so that nothing keeps the process alive. Calls made afterwards are rejected too.
   */
  close() {
    this._closed = true;
    for (const id of [...this._calls.keys()]) {
      const call = this._finish(id);
      call?.reject(new UnavailableError('The client was closed before the daemon replied.', { code: 'client_closed' }));
    }
    for (const connection of this._connections) connection.close();
    this._connections.clear();
    this._current = null;
  }

  /**
   * One send of a request on the current socket, and its reply; `NoReply` when none came.
   * @param {string} method
   * @param {string} encodedParams
   * @param {number} wait
   * @returns {Promise<unknown>}
   */
  _attempt(method, encodedParams, wait) {
    return new Promise((resolve, reject) => {
      if (this._closed) {
        reject(new UnavailableError('The client is closed.', { code: 'client_closed' }));
        return;
      }
      const id = this._nextId++;
      const body = `{"id":${id},"method":${JSON.stringify(method)},"params":${encodedParams}}`;
      if (Buffer.byteLength(body) > MESSAGE_MAX_BYTES) {
        reject(new PayloadTooLargeError(
          `The request is ${Buffer.byteLength(body)} bytes; the daemon takes none over ${MESSAGE_MAX_BYTES}.`,
        ));
        return;
      }
      let connection;
      try {
        connection = this._connection();
      } catch (error) {
        reject(error);
        return;
      }
      const timer = setTimeout(() => this._noReply(id), wait);
      this._calls.set(id, { connection, resolve, reject, timer });
      connection.waiting.add(id);
      connection.send(['', body]).catch((error) => {
        this._finish(id)?.reject(new UnavailableError(
          `The request could not be sent to ${this.endpoint}: ${errorMessage(error)}`,
          { code: 'connection_failed', cause: error },
        ));
      });
    });
  }

  /** The socket new calls go to, opened when there is none (the first call, or after a retire). */
  _connection() {
    if (this._current === null) {
      checkReachable(this.endpoint);
      const options = this.security.socketOptions(this.endpoint); // CURVE for tcp://
      const connection = new Connection(
        this.endpoint,
        options,
        (from, frames) => this._onMessage(from, frames),
        (from, error) => this._onBroken(from, error),
      );
      this._connections.add(connection);
      this._current = connection;
    }
    return this._current;
  }

  /** @param {number} id */
  _noReply(id) {
    const call = this._finish(id);
    if (call === undefined) return;
    this._retire(call.connection);
    call.reject(new NoReply());
  }

  /**
   * The call `id` taken out of the books (its timer cleared, its socket closed if it was the
   * last call a retired socket waited for); undefined when it has already ended.
   * @param {number} id
   */
  _finish(id) {
    const call = this._calls.get(id);
    if (call === undefined) return undefined;
    this._calls.delete(id);
    clearTimeout(call.timer);
    call.connection.waiting.delete(id);
    if (call.connection.retired) this._closeIfIdle(call.connection);
    return call;
  }

  /** @param {Connection} connection */
  _retire(connection) {
    connection.retired = true;
    if (this._current === connection) this._current = null;
    this._closeIfIdle(connection);
  }

  /** @param {Connection} connection */
  _closeIfIdle(connection) {
    if (connection.waiting.size === 0 && !connection.closed) {
      connection.close();
      this._connections.delete(connection);
    }
  }

  /**
   * A reply: settle its call. One that cannot be read settles the call it can only be for
   * (one named by its id, or the only call waiting on the socket), with an `InternalError`
   * (`invalid_reply`); a reply for no call waiting here (a late one) is dropped.
   * @param {Connection} connection
   * @param {Buffer[]} frames
   */
  _onMessage(connection, frames) {
    const reply = readReply(frames);
    const id = typeof reply.id === 'number' && connection.waiting.has(reply.id)
      ? reply.id
      : reply.id === null && connection.waiting.size === 1
        ? /** @type {number} */ (connection.waiting.values().next().value)
        : undefined;
    if (id === undefined) return;
    const call = /** @type {PendingCall} */ (this._finish(id));
    if ('problem' in reply) {
      call.reject(new InternalError(
        `The daemon at ${this.endpoint} sent a reply that cannot be read: ${reply.problem}.`,
        { code: 'invalid_reply' },
      ));
    } else if ('error' in reply) {
      call.reject(AssistantdError.fromObject(reply.error));
    } else {
      call.resolve(reply.result);
    }
  }

  /**
   * The socket failed while open (it should not): its calls fail, and it is not used again.
   * @param {Connection} connection
   * @param {unknown} error
   */
  _onBroken(connection, error) {
    for (const id of [...connection.waiting]) {
      this._finish(id)?.reject(new UnavailableError(
        `The connection to the daemon at ${this.endpoint} failed: ${errorMessage(error)}`,
        { code: 'connection_failed', cause: error },
      ));
    }
    this._retire(connection);
  }
}

/**
 * What a reply says: its id (null when it has none that can be read) and its result or error,
 * or the problem that makes it unreadable.
 * @typedef {{ id: unknown } & ({ result: unknown } | { error: Record<string, unknown> } | { problem: string })} ReadReply
 */

/**
 * @param {Buffer[]} frames
 * @returns {ReadReply}
 */
function readReply(frames) {
  // The daemon echoes the request's envelope: ["", reply] for what this DEALER sends.
  if (frames.length !== 2 || frames[0].length !== 0) {
    return { id: null, problem: `it has ${frames.length} frames, not an empty frame and the JSON` };
  }
  let reply;
  try {
    reply = JSON.parse(frames[1].toString('utf8'));
  } catch (error) {
    return { id: null, problem: `it is not JSON (${errorMessage(error)})` };
  }
  if (!isObject(reply)) return { id: null, problem: 'it is not a JSON object' };
  const id = typeof reply.id === 'number' || typeof reply.id === 'string' ? reply.id : null;
  if ('error' in reply) {
    if (!isObject(reply.error)) return { id, problem: "its 'error' is not an object" };
    return { id, error: reply.error };
  }
  if ('result' in reply) return { id, result: reply.result };
  return { id, problem: "it has neither 'result' nor 'error'" };
}

/**
 * The params as JSON, or a TypeError naming what JSON cannot hold (a BigInt, a cycle).
 * @param {unknown} params
 */
function encodeParams(params) {
  if (!isObject(params)) throw new TypeError(`params must be an object, not ${describe(params)}`);
  try {
    return JSON.stringify(params);
  } catch (error) {
    throw new TypeError(`params cannot be sent as JSON: ${errorMessage(error)}`, { cause: error });
  }
}

/**
 * @param {string} endpoint
 * @param {string} method
 * @param {number} wait
 * @param {boolean} idempotent
 * @param {number} attempts
 */
function noReplyMessage(endpoint, method, wait, idempotent, attempts) {
  const within = `within ${wait / 1000}s`;
  const message = idempotent
    ? `No reply from the daemon at ${endpoint} to ${method} ${within}` +
      (attempts > 1 ? `, in ${attempts} attempts (each retry on a fresh socket).` : '.')
    : `No reply from the daemon at ${endpoint} to ${method} ${within}. It may have been carried ` +
      'out all the same; it is not sent again.';
  return message + noReplyHint(endpoint);
}

/**
 * A TypeError for a timeout that is not a number of ms a timer can wait: over `MAX_TIMER_MS`,
 * Node's `setTimeout` would fire after 1 ms instead.
 * @param {unknown} timeout
 * @param {string} name
 */
function checkTimeout(timeout, name) {
  if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout <= 0 || timeout > MAX_TIMER_MS) {
    throw new TypeError(
      `${name} must be a number of milliseconds > 0 and <= ${MAX_TIMER_MS}, not ${describe(timeout)}`);
  }
}

/** @param {unknown} retries */
function checkRetries(retries) {
  if (!Number.isInteger(retries) || /** @type {number} */ (retries) < 0) {
    throw new TypeError(`retries must be an integer >= 0, not ${String(retries)}`);
  }
}

/**
 * @param {unknown} value
 * @returns {value is Record<string, unknown>}
 */
function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** @param {unknown} value */
function describe(value) {
  return Array.isArray(value) ? 'an array' : value === null ? 'null' : `${typeof value} ${String(value)}`;
}

/** @param {unknown} error */
function errorMessage(error) {
  return error instanceof Error ? error.message : String(error);
}

module.exports = {
  Transport,
  IDEMPOTENT_METHODS,
  DEFAULT_TIMEOUT_MS,
  DEFAULT_RETRIES,
  MESSAGE_MAX_BYTES,
  checkTimeout,
  isObject,
};
