'use strict';
// Helpers for the watch's tests: a recorder of what a watch emits (waits with deadlines, no
// sleeps), the mirror-equals-snapshot check, a lossy relay between the daemon's events and a
// watch, and a fake publisher that says whatever a test wants.

const assert = require('node:assert/strict');
const { EventEmitter } = require('node:events');
const fs = require('node:fs');
const path = require('node:path');
const zmq = require('zeromq');

const { shortDir } = require('./daemon');

/** ms any one expected event may take (they come within a fraction of one). */
const WAIT = 5000;

/**
 * Everything a watch emits from now on, in order, as `{ kind, value }` (kind: `event`,
 * `synced`, `change`, `skipped`, `error`, `close`); `next(predicate)` waits for the first one
 * after the last one it returned, `any(predicate)` for the first one at all.
 */
function record(watch) {
  const items = [];
  const waiters = new Set();
  let cursor = 0;
  for (const kind of ['event', 'synced', 'change', 'skipped', 'error', 'close']) {
    watch.on(kind, (value) => {
      items.push({ kind, value });
      for (const waiter of waiters) waiter();
    });
  }
  return {
    items,
    /** What was emitted of one kind, so far. */
    of(kind) {
      return items.filter((item) => item.kind === kind).map((item) => item.value);
    },
    /**
     * The first item after the cursor for which `predicate(item)` holds; the items before it
     * are passed over. Rejects after `ms`, listing what came.
     */
    next(predicate, ms = WAIT) {
      return this._wait(predicate, ms, true);
    },
    /** The first item ever recorded for which `predicate(item)` holds; the cursor stays. */
    any(predicate, ms = WAIT) {
      return this._wait(predicate, ms, false);
    },
    _wait(predicate, ms, advance) {
      return new Promise((resolve, reject) => {
        let scanned = advance ? cursor : 0;
        const check = () => {
          for (; scanned < items.length; scanned++) {
            if (predicate(items[scanned])) {
              const found = items[scanned];
              if (advance) cursor = scanned + 1;
              done();
              resolve(found.value);
              return;
            }
          }
          if (advance) cursor = scanned;
        };
        const timer = setTimeout(() => {
          done();
          const seen = items.map(({ kind, value }) => `${kind} ${value && value.topic ? value.topic : ''}`);
          reject(new Error(`not within ${ms} ms; the watch emitted:\n${seen.join('\n')}`));
        }, ms);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    event(topic, ms) {
      return this.next(({ kind, value }) => kind === 'event' && value.topic === topic, ms);
    },
    synced(ms) {
      return this.next(({ kind }) => kind === 'synced', ms);
    },
  };
}

/** A snapshot in one canonical order (the daemon lists invalid files as it found them). */
function canonical(snapshot) {
  const invalid = [...snapshot.invalid].sort((a, b) => (a.assistant_id < b.assistant_id ? -1 : 1));
  return { object: 'snapshot', epoch: snapshot.epoch, seq: snapshot.seq, assistants: snapshot.assistants, invalid };
}

/**
 * A snapshot, once the watch's mirror has reached exactly its seq (events may still be on
 * their way when it is taken: the mirror is waited for, or a newer snapshot taken).
 */
async function caughtUp(watch, commands, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const snapshot = await commands.getSnapshot();
    const behind = () =>
      !watch.inSync || watch.state.epoch !== snapshot.epoch || watch.state.seq < snapshot.seq;
    while (behind()) {
      if (Date.now() > deadline) assert.fail(`the mirror never reached seq ${snapshot.seq}`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()) + 1);
        const wake = () => {
          clearTimeout(timer);
          watch.off('change', wake);
          watch.off('synced', wake);
          resolve();
        };
        watch.on('change', wake);
        watch.on('synced', wake);
      });
    }
    if (watch.state.seq === snapshot.seq) return snapshot;
    // A resync took the mirror past this snapshot: take another.
  }
}

/** The mirror equals the snapshot: the same epoch, seq, assistants and file problems. */
function assertMirrors(watch, snapshot) {
  assert.deepStrictEqual(watch.toJSON(), canonical(snapshot));
}

/** Stop a test's daemon, and remove its root and runtime dir. */
async function stopDaemon(daemon) {
  await daemon.stop();
  for (const dir of [daemon.root, daemon.runtimeDir]) fs.rmSync(dir, { recursive: true, force: true });
}

/** Write an assistant.json by hand: a new file renamed over the old one. */
function writeDefinition(root, id, document) {
  const folder = path.join(root, id);
  fs.mkdirSync(folder, { recursive: true });
  const text = typeof document === 'string' ? document : JSON.stringify(document);
  fs.writeFileSync(path.join(folder, '.assistant.json.new'), text);
  fs.renameSync(path.join(folder, '.assistant.json.new'), path.join(folder, 'assistant.json'));
}

/**
 * A lossy hop between the daemon's events and a watch: an XSUB/XPUB forwarder that passes
 * subscriptions up and messages down, except the state events it is told to drop, and
 * nothing at all while paused.
 */
class Relay {
  constructor(upstream) {
    this.dir = shortDir('adn-relay-');
    this.endpoint = `ipc://${path.join(this.dir, 'relay.sock')}`;
    this.upstream = upstream;
    this.dropNext = 0;
    this.paused = false;
    this.down = new zmq.XPublisher({ linger: 0, verbosity: 'allSubs' });
    this.up = new zmq.XSubscriber({ linger: 0 });
  }

  async start() {
    await this.down.bind(this.endpoint);
    this.up.connect(this.upstream);
    this._pumps = Promise.all([this._pump(this.down, this.up, () => true), this._pump(this.up, this.down, (frames) => this._passes(frames))]);
    return this;
  }

  _passes(frames) {
    if (this.paused) return false;
    if (this.dropNext > 0 && frames[0].toString().startsWith('assistant.')) {
      this.dropNext -= 1;
      return false;
    }
    return true;
  }

  async _pump(from, to, passes) {
    for (;;) {
      let frames;
      try {
        frames = await from.receive();
      } catch {
        return; // closed
      }
      if (passes(frames) && !to.closed) await to.send(frames).catch(() => {});
    }
  }

  async close() {
    this.down.close();
    this.up.close();
    await this._pumps;
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A publisher that says what a test tells it: it welcomes each subscription (unless told not
 * to), and `send(frames)` publishes anything. `snapshot` is what its `getSnapshot` returns (or
 * a function that returns or throws it); each call is emitted as `'snapshot'`.
 */
class FakePublisher extends EventEmitter {
  constructor({ welcome = true, epoch = 'fake' } = {}) {
    super();
    this.dir = shortDir('adn-fake-');
    this.endpoint = `ipc://${path.join(this.dir, 'events.sock')}`;
    this.epoch = epoch;
    this.seq = 0;
    this.welcome = welcome;
    this.snapshot = { object: 'snapshot', epoch, seq: 0, assistants: [], invalid: [] };
    this.snapshots = 0;
    this.socket = new zmq.XPublisher({ linger: 0, verbosity: 'allSubs' });
    this.getSnapshot = async () => {
      this.snapshots += 1;
      this.emit('snapshot', this.snapshots);
      return typeof this.snapshot === 'function' ? this.snapshot() : this.snapshot;
    };
  }

  async start() {
    await this.socket.bind(this.endpoint);
    this._welcomer = (async () => {
      for (;;) {
        let message;
        try {
          [message] = await this.socket.receive();
        } catch {
          return;
        }
        // Closed meanwhile (a test that closes at once): nobody is left to welcome.
        if (message[0] === 1 && this.welcome && !this.socket.closed) {
          const subscription = message.subarray(1).toString();
          await this.publish({ topic: 'daemon.welcome', seq: this.seq, subscription }, subscription);
        }
      }
    })();
    return this;
  }

  /** Publish an event of this epoch (on its own topic unless told). */
  publish(fields, topic = fields.topic) {
    return this.send([topic, JSON.stringify({ epoch: this.epoch, time: Date.now() / 1000, ...fields })]);
  }

  send(frames) {
    return this.socket.send(frames);
  }

  async close() {
    this.socket.close();
    await this._welcomer;
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

module.exports = {
  WAIT, record, canonical, caughtUp, assertMirrors, stopDaemon, writeDefinition, Relay, FakePublisher,
};
