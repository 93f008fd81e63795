'use strict';
// `client.watch()`: a zeromq Subscriber on the daemon's events, and the loop that moves
// messages and snapshots between it and the Clone pattern's rules (`mirror.js`). The rules
// are there; this module only does I/O and hands out what the rules return, to listeners
// (EventEmitter) and to iterators (`for await`). Its Python twin is clients/python/awatch.py.

const { EventEmitter } = require('node:events');
const { performance } = require('node:perf_hooks');
const zmq = require('zeromq');

const { checkReachable } = require('./discovery');
const { InternalError, UnavailableError } = require('./errors');
const { snapshotProblem } = require('./events');
const { CloneSync, HEARTBEAT_INTERVAL, SILENCE_HEARTBEATS, SYNCED_TOPIC } = require('./mirror');
const { checkKeys } = require('./options');
const { MAX_TIMER_MS } = require('./waits');

/** @typedef {import('../types/protocol').Snapshot} Snapshot */
/** @typedef {import('../types/watch').WatchInit} WatchInit */
/** @typedef {import('../types/watch').WatchEvent} WatchEvent */
/** @typedef {import('../types/watch').WatchNotification} WatchNotification */
/** @typedef {import('../types/watch').Synced} Synced */
/** @typedef {import('../types/watch').MirrorView} MirrorView */
/** @typedef {import('./mirror').Mirror} Mirror */
/** @typedef {import('./mirror').Received} Received */

/** ms to wait for the welcome and the first snapshot: the clients' default timeout. */
const DEFAULT_START_TIMEOUT = 10_000;
/** The longest one receive waits before the rules are asked again (ZMQ_RCVTIMEO is an int32). */
const LONGEST_WAIT = 60_000;
/** What a caller may pass to `client.watch()` (types/watch.d.ts, WatchOptions). */
const WATCH_OPTIONS = Object.freeze(['prefix', 'startTimeout', 'heartbeatInterval']);
/** What `new Watch()` takes: those, and where and how to connect (WatchInit). */
const WATCH_INIT = Object.freeze(['endpoint', 'socketOptions', 'getSnapshot', ...WATCH_OPTIONS]);

/**
 * The daemon's events as they come, and a mirror of its state kept exact with them (the
 * ZeroMQ Guide's Clone pattern: PROTOCOL.md, "Mirroring the state").
 *
 * It subscribes when created and runs until `close()`, across daemon restarts. It emits
 * `'event'` (each event whose topic starts with the prefix, but for the state events a
 * snapshot brings in: those that come while it is out of sync, or that it already holds),
 * `'synced'` (after each snapshot), `'change'` (the mirror changed: by one state event, or by
 * a snapshot), `'skipped'` (a message it could not use), `'error'` (it failed and stopped)
 * and `'close'`; `for await` yields the events and the `Synced` notifications.
 *
 * @example
 *   const watch = client.watch();
 *   watch.on('change', () => win.webContents.send('assistants', watch.toJSON()));
 *   await watch.ready();
 */
class Watch extends EventEmitter {
  /**
   * Made by `AssistantdClient.watch(options)`; throws `UnavailableError` at once when an
   * `ipc://` endpoint has no socket file, and a TypeError for an option it does not take.
   * @param {WatchInit} init
   */
  constructor(init) {
    checkKeys(init, WATCH_INIT, 'Watch option');
    const {
      endpoint,
      socketOptions = {},
      getSnapshot,
      prefix = '',
      startTimeout = DEFAULT_START_TIMEOUT,
      heartbeatInterval = HEARTBEAT_INTERVAL,
    } = init;
    super();
    if (typeof prefix !== 'string') throw new TypeError('watch: `prefix` must be a string');
    if (typeof getSnapshot !== 'function') throw new TypeError('watch: `getSnapshot` must be a function');
    if (!(typeof startTimeout === 'number' && startTimeout >= 0)) {
      throw new TypeError('watch: `startTimeout` must be a number of milliseconds, 0 or more');
    }
    if (!(typeof heartbeatInterval === 'number' && heartbeatInterval > 0)) {
      throw new TypeError('watch: `heartbeatInterval` must be a number of milliseconds, over 0');
    }
    checkReachable(endpoint);
    this.endpoint = endpoint;
    this.prefix = prefix;
    this._getSnapshot = getSnapshot;
    this._startTimeout = startTimeout;
    this._clone = new CloneSync({ prefix, heartbeatInterval, startTimeout, now: performance.now() });
    this._closed = false;
    /** @type {Error | null} */
    this._error = null;
    this._skippedCount = 0;
    /** @type {Set<NotificationQueue>} */
    this._queues = new Set();
    /** @type {Deferred<void> | null} the promise of `ready()`, until it is settled */
    this._ready = null;
    /** @type {Deferred<void>} resolved by `close()`: a snapshot under way is not waited for */
    this._closing = deferred();
    this._socket = new zmq.Subscriber();
    try {
      // Nothing to deliver on close: a subscriber sends nothing but its subscriptions.
      this._socket.linger = 0;
      Object.assign(this._socket, socketOptions);
      this._socket.connect(endpoint);
      for (const subscription of this._clone.subscriptions) this._socket.subscribe(subscription);
    } catch (error) {
      this._socket.close();
      throw error;
    }
    // Owned here and awaited by close(); errors end in _fail, never as an unhandled rejection.
    this._done = this._run().catch((error) => this._fail(error)).finally(() => this._ended());
  }

  /** The live mirror: changed in place; `'change'` says when (read its maps each time: a
   *  snapshot replaces them). */
  get state() {
    return this._clone.mirror;
  }

  /** Whether a first snapshot was taken. */
  get started() {
    return this._clone.started;
  }

  /** False from a sign of lost events (or a stopped daemon) until the snapshot that repairs
   *  the mirror. */
  get inSync() {
    return this._clone.inSync;
  }

  get closed() {
    return this._closed;
  }

  /** How many messages were skipped as unusable (each also emitted as `'skipped'`). */
  get skippedCount() {
    return this._skippedCount;
  }

  /** The error that ended the watch, if one did. */
  get error() {
    return this._error;
  }

  /** @returns {MirrorView} the mirror as plain data, in getSnapshot's shape */
  toJSON() {
    return this._clone.mirror.toJSON();
  }

  /**
   * Resolves after the first snapshot; rejects with `UnavailableError` when none could be
   * taken within `startTimeout`, or when the watch is closed first.
   * @returns {Promise<void>}
   */
  ready() {
    if (this._clone.started) return Promise.resolve();
    if (this._error) return Promise.reject(this._error);
    if (this._closed) return Promise.reject(closedBeforeStart());
    if (this._ready === null) this._ready = deferred();
    return this._ready.promise;
  }

  /**
   * Close the socket and end the iterators; resolves once the watch has stopped (the process
   * can exit then). Calling it again does nothing.
   * @returns {Promise<void>}
   */
  async close() {
    if (!this._closed) {
      this._closed = true;
      this._closing.resolve();
      this._socket.close(); // a receive under way rejects, and the loop ends
      if (this._ready !== null) this._ready.reject(closedBeforeStart());
      this._ready = null;
      for (const queue of this._queues) queue.end();
      this._queues.clear();
    }
    await this._done;
  }

  /**
   * Every notification from now on: the events whose topic starts with the prefix and a
   * `Synced` after each snapshot. An iteration that begins once the watch is in sync starts
   * with a `Synced` (reason `start`) for the mirror as it is, so that a consumer always
   * begins with the whole state. It ends when the watch is closed (what is still queued is
   * dropped), and throws the error of a watch that failed. Leaving a `for await` loop ends
   * that iteration, not the watch.
   * @returns {AsyncIterableIterator<WatchNotification>}
   */
  [Symbol.asyncIterator]() {
    const queue = new NotificationQueue(() => this._queues.delete(queue), () => this._behind());
    if (this._error) {
      queue.fail(this._error);
    } else if (this._closed) {
      queue.end();
    } else {
      this._queues.add(queue);
      if (this._clone.started && this._clone.inSync) {
        queue.push(this._mirrorSynced('start'));
      }
    }
    return queue;
  }

  /**
   * A `Synced` for the mirror as it is now.
   * @param {'start' | 'behind'} reason
   * @returns {Synced}
   */
  _mirrorSynced(reason) {
    const { epoch, seq } = this._clone.mirror;
    return { topic: SYNCED_TOPIC, reason, epoch: epoch || '', seq, time: Date.now() / 1000 };
  }

  /** What an iteration that fell too far behind gets instead of its backlog. */
  _behind() {
    return this._mirrorSynced('behind');
  }

  // --- the loop -------------------------------------------------------------------------

  async _run() {
    const clone = this._clone;
    while (!this._closed) {
      const step = clone.nextStep(performance.now());
      if (step === 'snapshot') {
        await this._snapshot();
        continue;
      }
      this._socket.receiveTimeout = Math.min(LONGEST_WAIT, Math.max(0, Math.ceil(step)));
      let frames;
      try {
        frames = await this._socket.receive();
      } catch (error) {
        if (this._closed) return;
        if (/** @type {{ code?: string }} */ (error).code !== 'EAGAIN') throw error;
        if (clone.waited(performance.now())) {
          throw new UnavailableError(
            `The daemon's event stream (${this.endpoint}) did not welcome this subscriber in ` +
              'time: is the daemon running? (its events endpoint may be left over from one that is not)',
            { code: 'timeout' },
          );
        }
        continue;
      }
      if (this._closed) return;
      this._deliver(clone.receive(frames, performance.now()));
    }
  }

  /**
   * Take the snapshot the rules asked for, and hand on what it brings. The first one is due
   * within what is left of the start timeout: getSnapshot is told so (its `timeout`).
   */
  async _snapshot() {
    const clone = this._clone;
    const left = clone.startTimeLeft(performance.now());
    if (left !== null && left <= 0) {
      throw new UnavailableError(
        `The watch took no first snapshot within its start timeout (${this._startTimeout} ms).`,
        { code: 'timeout' },
      );
    }
    /** @type {unknown} */
    let snapshot;
    try {
      const asked = left === null
        ? this._getSnapshot()
        : this._getSnapshot({ timeout: Math.min(Math.ceil(left), MAX_TIMER_MS) });
      snapshot = await Promise.race([asked, this._closing.promise]);
    } catch (error) {
      if (this._closed) return;
      // Before the first snapshot, say at once that the watch cannot start; after it, wait for
      // the daemon to come back (a closed client cannot, so that ends the watch too).
      const code = /** @type {{ code?: unknown }} */ (error).code;
      if (!clone.started || !(error instanceof UnavailableError) || code === 'client_closed') throw error;
      clone.snapshotFailed(performance.now());
      return;
    }
    if (this._closed) return;
    const problem = snapshotProblem(snapshot);
    if (problem !== null) {
      if (!clone.started) throw new InternalError(`getSnapshot: ${problem}`, { code: 'invalid_reply' });
      this._deliver({ events: [], change: null, skipped: { topic: null, reason: `getSnapshot: ${problem}` } });
      clone.snapshotFailed(performance.now());
      return;
    }
    this._deliver(clone.snapshotTaken(/** @type {Snapshot} */ (snapshot), performance.now()));
  }

  /**
   * Hand on what one message or snapshot brought: `'skipped'`, `'change'`, then each event.
   * @param {Received} received
   */
  _deliver({ events, change, skipped }) {
    if (skipped !== null) {
      this._skippedCount += 1;
      this._emit('skipped', skipped);
    }
    if (change !== null) this._emit('change', change);
    for (const event of events) {
      if (event.topic === SYNCED_TOPIC) {
        this._emit('synced', event);
        if (this._ready !== null) {
          this._ready.resolve();
          this._ready = null;
        }
      } else {
        this._emit('event', event);
      }
      for (const queue of this._queues) queue.push(event);
    }
  }

  /**
   * Emit to the listeners; one that throws does not break the loop (whose state would then be
   * half updated): its error is thrown again outside, as an uncaught exception, like a
   * throwing listener of any Node socket.
   * @param {string} name
   * @param {unknown} value
   */
  _emit(name, value) {
    try {
      this.emit(name, value);
    } catch (error) {
      process.nextTick(() => {
        throw error;
      });
    }
  }

  /**
   * The watch failed: the ones waiting on it hear it; `'error'` is emitted when there is a
   * listener for it, or when nobody else would hear it (no pending `ready()`, no iteration),
   * in which case Node throws it, as for any emitter.
   * @param {unknown} reason
   */
  _fail(reason) {
    if (this._closed) return; // closed meanwhile: what failed is of no interest
    const error = reason instanceof Error ? reason : new Error(String(reason));
    this._error = error;
    const heard = this._ready !== null || this._queues.size > 0;
    if (this._ready !== null) this._ready.reject(error);
    this._ready = null;
    for (const queue of this._queues) queue.fail(error);
    this._queues.clear();
    if (this.listenerCount('error') > 0 || !heard) this._emit('error', error);
  }

  _ended() {
    this._closed = true;
    if (!this._socket.closed) this._socket.close();
    for (const queue of this._queues) queue.end();
    this._queues.clear();
    this._emit('close', undefined);
  }
}

/**
 * Notifications an iteration may have waiting before it is deemed too far behind: as many as
 * the daemon queues for a slow subscriber.
 */
const ITERATION_BACKLOG = 10_000;

/**
 * One iteration's queue: what the watch hands on, until its consumer takes it. Bounded, as
 * the mirror never waits for a consumer: one that falls `backlog` notifications behind has
 * them replaced by a single `Synced` (reason `behind`) for the mirror as it is then, which
 * holds what they did; state events that mirror already holds are then not queued again.
 * Activity events (`worker.*`, `download.progress`) in the backlog are lost, as they are for
 * a subscriber the daemon finds too slow.
 * @implements {AsyncIterableIterator<WatchNotification>}
 */
class NotificationQueue {
  /**
   * @param {() => void} release called once it ends, to forget it
   * @param {() => Synced} behind the `Synced` that replaces a backlog that grew too long
   * @param {number} [backlog]
   */
  constructor(release, behind, backlog = ITERATION_BACKLOG) {
    this._release = release;
    this._behind = behind;
    this._backlog = backlog;
    /** State events up to this `seq` are in the mirror the last `behind` Synced stood for. */
    this._heldThrough = -1;
    /** @type {WatchNotification[]} */
    this._items = [];
    /** @type {Deferred<IteratorResult<WatchNotification, undefined>>[]} the `next()` calls waiting, in order */
    this._waiting = [];
    this._ended = false;
    /** @type {Error | null} thrown by the next `next()`, once */
    this._error = null;
  }

  /** @param {WatchNotification} item */
  push(item) {
    if (this._ended) return;
    if (item.topic !== SYNCED_TOPIC && 'seq' in item && item.seq <= this._heldThrough) return;
    const waiting = this._waiting.shift();
    if (waiting !== undefined) {
      waiting.resolve({ value: item, done: false });
    } else if (this._items.length < this._backlog) {
      this._items.push(item);
    } else {
      // Built now, the Synced holds `item` and every event before it (the watch applies an
      // event to the mirror before it hands it on).
      const synced = this._behind();
      this._items = [synced];
      this._heldThrough = synced.seq;
    }
  }

  /** End it now: what is queued is dropped. */
  end() {
    if (this._ended) return;
    this._ended = true;
    this._items = [];
    this._release();
    for (const waiting of this._waiting.splice(0)) waiting.resolve({ value: undefined, done: true });
  }

  /** @param {Error} error thrown by the next `next()`; the ones after it are done */
  fail(error) {
    if (this._ended) return;
    const waiting = this._waiting.shift();
    if (waiting !== undefined) waiting.reject(error);
    else this._error = error;
    this.end();
  }

  /** @returns {Promise<IteratorResult<WatchNotification, undefined>>} */
  next() {
    const item = this._items.shift();
    if (item !== undefined) return Promise.resolve({ value: item, done: false });
    if (this._error !== null) {
      const error = this._error;
      this._error = null;
      return Promise.reject(error);
    }
    if (this._ended) return Promise.resolve({ value: undefined, done: true });
    /** @type {Deferred<IteratorResult<WatchNotification, undefined>>} */
    const waiting = deferred();
    this._waiting.push(waiting);
    return waiting.promise;
  }

  /**
   * `break` out of a `for await`: this iteration ends, the watch goes on.
   * @returns {Promise<IteratorResult<WatchNotification, undefined>>} */
  return() {
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator]() {
    return this;
  }
}

/**
 * @template T
 * @typedef {{ promise: Promise<T>, resolve: (value: T) => void, reject: (error: Error) => void }} Deferred
 */

/**
 * @template T
 * @returns {Deferred<T>}
 */
function deferred() {
  /** @type {(value: T) => void} */
  let resolve = () => {};
  /** @type {(error: Error) => void} */
  let reject = () => {};
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function closedBeforeStart() {
  return new UnavailableError('The watch was closed before its first snapshot', { code: 'client_closed' });
}

module.exports = { Watch, NotificationQueue, ITERATION_BACKLOG, WATCH_OPTIONS, DEFAULT_START_TIMEOUT, HEARTBEAT_INTERVAL, SILENCE_HEARTBEATS };
