'use strict';
// The client side of the Clone pattern, sans I/O: a mirror of the daemon's state and the rules
// that keep it exact. `watch.js` owns the socket; it feeds this module what arrives, asks it
// what to do next, and passes on what it hands back. A port of clients/python/clone.py.
//
// The recipe (PROTOCOL.md, "Mirroring the state"; the ZeroMQ Guide's Clone pattern):
//
// 1. subscribe to `assistant.` (the state events) and `daemon.` (welcomes and heartbeats);
// 2. wait until every subscription is live: any message on its prefix proves it, as the daemon
//    filters on its side; the `daemon.welcome` it sends on each new subscription's own prefix
//    makes sure one comes;
// 3. take a snapshot (getSnapshot), drop queued state events with `seq` <= the snapshot's,
//    apply the rest in order;
// 4. take a new snapshot on a gap (a state event that is not the last one plus one, or a
//    heartbeat whose `seq` is ahead of the mirror), on a new epoch (the daemon restarted), or
//    after three heartbeat intervals without a word from the daemon.
//
// Times are milliseconds of a monotonic clock (`performance.now()`), passed in by the caller.

const { performance } = require('node:perf_hooks');
const { isDeepStrictEqual } = require('node:util');
const { DAEMON_TOPIC_PREFIX, STATE_TOPIC_PREFIX, decodeEvent, isStateTopic } = require('./events');

/** @typedef {import('../types/protocol').Assistant} Assistant */
/** @typedef {import('../types/protocol').InvalidFile} InvalidFile */
/** @typedef {import('../types/protocol').Snapshot} Snapshot */
/** @typedef {import('../types/watch').StateChange} StateChange */
/** @typedef {import('../types/watch').WatchEvent} WatchEvent */
/** @typedef {import('../types/watch').Synced} Synced */
/** @typedef {import('../types/watch').SyncReason} SyncReason */
/** @typedef {import('../types/watch').MirrorChange} MirrorChange */
/** @typedef {import('../types/watch').MirrorView} MirrorView */
/** @typedef {import('../types/watch').AssistantChange} AssistantChange */
/** @typedef {import('../types/watch').InvalidChange} InvalidChange */
/** @typedef {import('../types/watch').Skipped} Skipped */
/** @typedef {Pick<MirrorChange, 'assistants' | 'invalid'>} Changes */

/** The protocol's heartbeat interval in milliseconds (HEARTBEAT_INTERVAL, protocol/events.py). */
const HEARTBEAT_INTERVAL = 1000;
/** Heartbeat intervals without any message after which the mirror is no longer trusted. */
const SILENCE_HEARTBEATS = 3;
/** The topic of the watch's own notification that it took a snapshot (not a wire event). */
const SYNCED_TOPIC = 'client.synced';

/**
 * The daemon's state as far as the events tell: what getSnapshot would return now.
 * `assistants` and `invalid` are keyed by assistant id; `seq` is the last state event applied
 * (or the snapshot's), `epoch` the daemon's (null before the first snapshot).
 */
class Mirror {
  constructor() {
    /** @type {string | null} */
    this.epoch = null;
    this.seq = 0;
    /** @type {Map<string, Assistant>} */
    this.assistants = new Map();
    /** @type {Map<string, InvalidFile>} */
    this.invalid = new Map();
  }

  /**
   * Replace everything with a snapshot's.
   * @param {Snapshot} snapshot
   * @returns {Changes} what differs from before
   */
  reset(snapshot) {
    const before = { assistants: this.assistants, invalid: this.invalid };
    this.epoch = snapshot.epoch;
    this.seq = snapshot.seq;
    this.assistants = new Map(snapshot.assistants.map((assistant) => [assistant.id, assistant]));
    this.invalid = new Map(snapshot.invalid.map((file) => [file.assistant_id, file]));
    return {
      assistants: differences(before.assistants, this.assistants),
      invalid: differences(before.invalid, this.invalid),
    };
  }

  /**
   * Apply one state event, as the daemon's live state did when it published it.
   * @param {StateChange} event
   * @returns {Changes} what differs from before
   */
  apply(event) {
    /** @type {Changes} */
    const changes = { assistants: [], invalid: [] };
    switch (event.topic) {
      case 'assistant.created':
      case 'assistant.updated':
        // A valid definition read (or written) clears the record of a broken one.
        this._put(event.assistant, changes);
        this._dropInvalid(event.assistant.id, changes);
        break;
      case 'assistant.state':
        this._put(event.assistant, changes);
        break;
      case 'assistant.deleted': {
        const before = this.assistants.get(event.assistant_id);
        if (this.assistants.delete(event.assistant_id)) {
          changes.assistants.push({ id: event.assistant_id, before, after: undefined });
        }
        this._dropInvalid(event.assistant_id, changes);
        break;
      }
      case 'assistant.invalid': {
        const { assistant_id, path, reason, served } = event;
        const after = { assistant_id, path, reason, served };
        const before = this.invalid.get(assistant_id);
        this.invalid.set(assistant_id, after);
        if (!isDeepStrictEqual(before, after)) changes.invalid.push({ id: assistant_id, before, after });
        break;
      }
    }
    this.seq = event.seq;
    return changes;
  }

  /** @returns {MirrorView} getSnapshot's shape, as plain data */
  toJSON() {
    const assistants = [...this.assistants.values()].sort(
      (a, b) => a.created_at - b.created_at || compare(a.id, b.id),
    );
    const invalid = [...this.invalid.values()].sort((a, b) => compare(a.assistant_id, b.assistant_id));
    return { object: 'snapshot', epoch: this.epoch, seq: this.seq, assistants, invalid };
  }

  /**
   * @param {Assistant} assistant
   * @param {Changes} changes
   */
  _put(assistant, changes) {
    const before = this.assistants.get(assistant.id);
    this.assistants.set(assistant.id, assistant);
    if (!isDeepStrictEqual(before, assistant)) {
      changes.assistants.push({ id: assistant.id, before, after: assistant });
    }
  }

  /**
   * @param {string} id
   * @param {Changes} changes
   */
  _dropInvalid(id, changes) {
    const before = this.invalid.get(id);
    if (this.invalid.delete(id)) changes.invalid.push({ id, before, after: undefined });
  }
}

/**
 * @param {string} a
 * @param {string} b
 */
function compare(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The keys whose values differ between two maps, in the order of `after` then of the ones gone.
 * @template T
 * @param {Map<string, T>} before
 * @param {Map<string, T>} after
 * @returns {Array<{ id: string, before: T | undefined, after: T | undefined }>}
 */
function differences(before, after) {
  const changed = [];
  for (const [id, value] of after) {
    const old = before.get(id);
    if (!isDeepStrictEqual(old, value)) changed.push({ id, before: old, after: value });
  }
  for (const [id, old] of before) {
    if (!after.has(id)) changed.push({ id, before: old, after: undefined });
  }
  return changed;
}

/**
 * The prefixes to subscribe to: the two the mirror needs, and the caller's own if those do
 * not cover it; none that another one covers (the daemon would send such messages twice).
 *
 *     subscriptionsFor('')          // ['']
 *     subscriptionsFor('worker.')   // ['assistant.', 'daemon.', 'worker.']
 *
 * @param {string} prefix
 * @returns {string[]}
 */
function subscriptionsFor(prefix) {
  const wanted = [...new Set([STATE_TOPIC_PREFIX, DAEMON_TOPIC_PREFIX, prefix])];
  return wanted.filter(
    (one) => !wanted.some((other) => other !== one && one.startsWith(other)),
  );
}

/**
 * @typedef {object} Received
 * What one message (or one snapshot) brings: the notifications to pass on, in order, the
 * mirror's change if it changed, and the reason the message was skipped if it was.
 * @property {Array<WatchEvent | Synced>} events
 * @property {MirrorChange | null} change
 * @property {Skipped | null} skipped
 */

/** @typedef {'snapshot' | number} Step What to do next: snapshot now, or wait so many ms. */

/**
 * The Clone pattern's state machine for one subscriber: messages and snapshots in, the
 * notifications to pass on out.
 *
 * `prefix` narrows what is passed on, not what is mirrored. `startTimeout` (ms) bounds the wait
 * for the first snapshot (a stale socket file would otherwise make a watch wait forever); once
 * synced, a watch outlives daemon restarts and waits for the next daemon.
 */
class CloneSync {
  /**
   * @param {object} [options]
   * @param {string} [options.prefix]
   * @param {number} [options.heartbeatInterval] ms
   * @param {number | null} [options.startTimeout] ms, or null to wait for ever
   * @param {number} [options.now] the clock's time now (`performance.now()` by default)
   */
  constructor({
    prefix = '', heartbeatInterval = HEARTBEAT_INTERVAL, startTimeout = null, now = performance.now(),
  } = {}) {
    this.prefix = prefix;
    this.subscriptions = subscriptionsFor(prefix);
    this.mirror = new Mirror();
    /** ms without a word from the daemon after which a snapshot is taken. */
    this.silence = SILENCE_HEARTBEATS * heartbeatInterval;
    this._syncedOnce = false;
    /**
     * Why the next snapshot is needed; null while the mirror is in sync.
     * @type {SyncReason | null}
     */
    this._wanted = 'start';
    /** @type {string | null} */
    this._liveEpoch = null;
    /**
     * The subscriptions proved live by a message of `_liveEpoch`.
     * @type {Set<string>}
     */
    this._live = new Set();
    this._lastHeard = now;
    /** @type {number | null} */
    this._retryAt = null;
    /** @type {number | null} */
    this._giveUpAt = startTimeout === null ? null : now + startTimeout;
  }

  /** False from a sign of lost events (or a new daemon) until the snapshot that repairs it. */
  get inSync() {
    return this._wanted === null;
  }

  /** Whether a first snapshot was taken. */
  get started() {
    return this._syncedOnce;
  }

  // --- what happens next ------------------------------------------------------------------

  /**
   * `'snapshot'` when one is needed and may be taken now, else how many ms to wait for a
   * message before calling `waited()`.
   * @param {number} now
   * @returns {Step}
   */
  nextStep(now) {
    if (this._wanted === null) return this._lastHeard + this.silence - now;
    if (this._retryAt !== null) return this._retryAt - now;
    if (this.subscriptions.every((prefix) => this._live.has(prefix))) return 'snapshot';
    if (this._giveUpAt !== null && !this._syncedOnce) return this._giveUpAt - now;
    return this.silence; // nothing to do until the (next) daemon welcomes us
  }

  /**
   * ms left of the start timeout, for the first snapshot (which must come within it, not only
   * begin): null once started, or without a start timeout; 0 or less once it is over.
   * @param {number} now
   * @returns {number | null}
   */
  startTimeLeft(now) {
    return this._syncedOnce || this._giveUpAt === null ? null : this._giveUpAt - now;
  }

  /**
   * The wait that `nextStep()` asked for ran out without a message. Returns true when the
   * watch never started and its start timeout is over: it should give up.
   * @param {number} now
   * @returns {boolean}
   */
  waited(now) {
    if (this._wanted === null) {
      if (now >= this._lastHeard + this.silence) this._wanted = 'silence';
      return false;
    }
    if (this._retryAt !== null && now >= this._retryAt) this._retryAt = null;
    return !this._syncedOnce && this._giveUpAt !== null && now >= this._giveUpAt;
  }

  // --- input ------------------------------------------------------------------------------

  /**
   * One message from the SUB socket.
   * @param {ReadonlyArray<Uint8Array>} frames
   * @param {number} now
   * @returns {Received}
   */
  receive(frames, now) {
    this._lastHeard = now;
    this._retryAt = null; // the daemon speaks: worth asking it again at once
    const decoded = decodeEvent(frames);
    if (!decoded.ok) {
      // If it was a state event, the seq after it shows the gap.
      return received({ skipped: { topic: decoded.topic, reason: decoded.reason } });
    }
    const { topic, event } = decoded;
    if (event.epoch !== this._liveEpoch) {
      this._liveEpoch = event.epoch;
      this._live = new Set();
    }
    for (const prefix of this.subscriptions) {
      if (topic.startsWith(prefix)) this._live.add(prefix);
    }
    if (event.topic === 'daemon.stopping') {
      // Its subscriptions end with it; the next daemon welcomes them anew, and only then is a
      // snapshot worth taking (it would find no daemon before).
      this._live = new Set();
      if (this._wanted !== 'start') this._wanted = 'epoch';
      return received({ events: this._wants(event) ? [event] : [] });
    }
    if (event.topic.startsWith('worker.') || event.topic === 'download.progress') {
      // Not state: no snapshot holds it, so it is passed on also while the mirror waits for
      // one; but only from the first snapshot on, which a watch always passes on first.
      const activity = /** @type {WatchEvent} */ (event);
      return received({ events: this._syncedOnce && this._wants(activity) ? [activity] : [] });
    }
    if (this._wanted !== null) return received({}); // in the snapshot still to be taken
    if (event.epoch !== this.mirror.epoch) {
      this._wanted = 'epoch';
      return received({});
    }
    switch (event.topic) {
      case 'daemon.heartbeat':
      case 'daemon.welcome':
        // Messages from one publisher arrive in order: one that is ahead of the mirror means
        // the state events before it were lost (the last ones of a burst, which no later
        // state event would show).
        if (event.seq > this.mirror.seq) this._wanted = 'gap';
        return received({});
      default:
        return this._stateEvent(event);
    }
  }

  /**
   * The reply to the getSnapshot that `nextStep()` asked for (checked by the caller).
   * @param {Snapshot} snapshot
   * @param {number} now
   * @returns {Received}
   */
  snapshotTaken(snapshot, now) {
    if (snapshot.epoch !== this._liveEpoch) {
      // Another daemon answered than the one our subscriptions are known to be live at: what
      // it published before they reach it would be lost. Wait for its welcome.
      this._liveEpoch = snapshot.epoch;
      this._live = new Set();
      this._wanted = 'epoch';
      return received({});
    }
    const reason = this._wanted || 'start';
    const first = !this._syncedOnce;
    const changes = this.mirror.reset(snapshot);
    this._wanted = null;
    this._syncedOnce = true;
    this._lastHeard = now;
    /** @type {Synced} */
    const synced = {
      topic: SYNCED_TOPIC, reason, epoch: snapshot.epoch, seq: snapshot.seq, time: Date.now() / 1000,
    };
    // The first snapshot is a change whatever it holds: the mirror had no state before.
    const changed = first || changes.assistants.length > 0 || changes.invalid.length > 0;
    return received({ events: [synced], change: changed ? this._change(synced, changes) : null });
  }

  /**
   * getSnapshot got no answer: try again after a silence, or as soon as a message comes.
   * (Before the first snapshot the caller gives up instead: a watch that never started
   * should say so at once.)
   * @param {number} now
   */
  snapshotFailed(now) {
    this._retryAt = now + this.silence;
  }

  // --- rules ------------------------------------------------------------------------------

  /**
   * @param {import('../types/watch').DaemonEvent} event a state event (by its topic)
   * @returns {Received}
   */
  _stateEvent(event) {
    if (!isStateTopic(event.topic)) return received({});
    const change = /** @type {StateChange} */ (event);
    if (change.seq <= this.mirror.seq) return received({}); // in the snapshot already
    if (change.seq !== this.mirror.seq + 1) {
      this._wanted = 'gap';
      return received({});
    }
    const changes = this.mirror.apply(change);
    return received({
      events: this._wants(change) ? [change] : [],
      change: this._change(change, changes),
    });
  }

  /**
   * @param {StateChange | Synced} source
   * @param {Changes} changes
   * @returns {MirrorChange}
   */
  _change(source, changes) {
    return { source, epoch: this.mirror.epoch || '', seq: this.mirror.seq, ...changes };
  }

  /** @param {WatchEvent} event */
  _wants(event) {
    return event.topic.startsWith(this.prefix);
  }
}

/**
 * @param {Partial<Received>} parts
 * @returns {Received}
 */
function received({ events = [], change = null, skipped = null }) {
  return { events, change, skipped };
}

module.exports = {
  CloneSync,
  Mirror,
  HEARTBEAT_INTERVAL,
  SILENCE_HEARTBEATS,
  SYNCED_TOPIC,
  subscriptionsFor,
};
