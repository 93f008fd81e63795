'use strict';
// The Clone pattern's rules (src/mirror.js, src/events.js), fed frames directly: no socket,
// and a clock that is a number passed in. The Python twin is tests/clients/test_clone.py.

const test = require('node:test');
const assert = require('node:assert/strict');

const { CloneSync, Mirror, subscriptionsFor } = require('../src/mirror');
const { decodeEvent } = require('../src/events');

const EPOCH = 'e1';
const T = { timeout: 5000 };

/** The two frames of an event, on its own topic unless told. */
function frames(event, topic = event.topic) {
  return [Buffer.from(topic), Buffer.from(JSON.stringify(event))];
}

function assistant(id, fields = {}) {
  return { id, object: 'assistant', created_at: 1, name: null, state: 'ready', ...fields };
}

const state = (topic, seq, fields, epoch = EPOCH) => ({ topic, epoch, time: 0, seq, cause: 'file', ...fields });
const created = (seq, id, fields = {}, epoch = EPOCH) => state('assistant.created', seq, { assistant: assistant(id, fields) }, epoch);
const updated = (seq, id, fields = {}) => state('assistant.updated', seq, { assistant: assistant(id, fields) });
const deleted = (seq, id) => state('assistant.deleted', seq, { assistant_id: id });
const invalid = (seq, id, served = true) =>
  state('assistant.invalid', seq, { assistant_id: id, path: `/r/${id}/assistant.json`, reason: 'is not valid JSON', served });
const moved = (seq, id, previous, to) =>
  ({ ...state('assistant.state', seq, { assistant: assistant(id, { state: to }), previous, error: null }), cause: 'daemon' });
const welcome = (seq, subscription, epoch = EPOCH) => ({ topic: 'daemon.welcome', epoch, time: 0, seq, subscription });
const heartbeat = (seq, epoch = EPOCH) => ({ topic: 'daemon.heartbeat', epoch, time: 0, seq });
const stopping = (seq, epoch = EPOCH) => ({ topic: 'daemon.stopping', epoch, time: 0, seq });
const workerLog = (id = 'a') =>
  ({ topic: 'worker.log', epoch: EPOCH, time: 0, assistant_id: id, pid: 42, stream: 'stdout', line: 'hello' });
const snapshot = (seq, ids, epoch = EPOCH, invalidFiles = []) =>
  ({ object: 'snapshot', epoch, seq, assistants: ids.map((id) => assistant(id)), invalid: invalidFiles });

/** Every subscription welcomed, each on its own prefix, as the daemon does. */
function welcomed(clone, seq, epoch = EPOCH, now = 0) {
  for (const prefix of clone.subscriptions) {
    const { events, change, skipped } = clone.receive(frames(welcome(seq, prefix, epoch), prefix), now);
    assert.deepEqual([events, change, skipped], [[], null, null]);
  }
}

function syncedClone(seq = 0, ids = [], prefix = 'assistant.') {
  const clone = new CloneSync({ prefix, now: 0 });
  welcomed(clone, seq);
  assert.equal(clone.nextStep(0), 'snapshot');
  const { events: [synced], change } = clone.snapshotTaken(snapshot(seq, ids), 0);
  assert.equal(synced.topic, 'client.synced');
  assert.equal(synced.reason, 'start');
  assert.ok(change, 'the first snapshot is a change');
  return clone;
}

const topics = (received) => received.events.map((event) => event.topic);

test('subscriptions cover the mirror and the caller\'s prefix once', T, () => {
  assert.deepEqual(subscriptionsFor(''), ['']);
  assert.deepEqual(subscriptionsFor('assistant.'), ['assistant.', 'daemon.']);
  assert.deepEqual(subscriptionsFor('daemon.stopping'), ['assistant.', 'daemon.']);
  assert.deepEqual(subscriptionsFor('assist'), ['daemon.', 'assist']);
  assert.deepEqual(subscriptionsFor('worker.'), ['assistant.', 'daemon.', 'worker.']);
});

test('no snapshot before every subscription is live', T, () => {
  const clone = new CloneSync({ prefix: 'assistant.', now: 0 });
  clone.receive(frames(welcome(3, 'daemon.'), 'daemon.'), 0);
  clone.receive(frames(heartbeat(3)), 100);
  assert.notEqual(clone.nextStep(100), 'snapshot');
  // Any message on the prefix proves the subscription, as the daemon filters on its side.
  clone.receive(frames(created(4, 'a')), 200);
  assert.equal(clone.nextStep(200), 'snapshot');
});

test('events up to the snapshot are dropped and later ones applied', T, () => {
  const clone = syncedClone(2, ['a', 'b']);
  assert.deepEqual(clone.receive(frames(created(2, 'b')), 100).events, []);
  const out = clone.receive(frames(updated(3, 'a', { name: 'A' })), 100);
  assert.deepEqual(topics(out), ['assistant.updated']);
  assert.equal(clone.mirror.seq, 3);
  assert.equal(clone.mirror.assistants.get('a').name, 'A');
  assert.ok(clone.inSync);
  // The change says what moved, for a renderer that patches rather than redraws.
  assert.equal(out.change.source, out.events[0]);
  assert.deepEqual(out.change.assistants, [
    { id: 'a', before: assistant('a'), after: assistant('a', { name: 'A' }) },
  ]);
  assert.deepEqual(out.change.invalid, []);
  assert.equal(out.change.seq, 3);
});

test('the apply rules follow the daemon\'s live state', T, () => {
  const mirror = new Mirror();
  mirror.reset(snapshot(0, ['a']));
  mirror.apply(invalid(1, 'a'));
  mirror.apply(invalid(2, 'new', false));
  assert.deepEqual([...mirror.invalid.keys()].sort(), ['a', 'new']);
  const fixed = mirror.apply(updated(3, 'a', { name: 'fixed' })); // a valid version clears the broken one
  assert.deepEqual([...mirror.invalid.keys()], ['new']);
  assert.deepEqual(fixed.invalid.map((change) => [change.id, change.after]), [['a', undefined]]);
  mirror.apply(created(4, 'new'));
  assert.equal(mirror.invalid.size, 0);
  mirror.apply(invalid(5, 'new'));
  const gone = mirror.apply(deleted(6, 'new')); // gone with its folder, broken file and all
  assert.deepEqual([...mirror.assistants.keys()], ['a']);
  assert.equal(mirror.invalid.size, 0);
  assert.deepEqual(gone.assistants.map((change) => [change.id, change.after]), [['new', undefined]]);
  const running = mirror.apply(moved(7, 'a', 'ready', 'running'));
  assert.equal(mirror.assistants.get('a').state, 'running');
  assert.deepEqual(running.assistants.map(({ before, after }) => [before.state, after.state]), [['ready', 'running']]);
  assert.equal(mirror.seq, 7);
  assert.equal(mirror.invalid.size, 0);
});

test('the mirror takes the snapshot\'s invalid files, and reads back as a snapshot', T, () => {
  const mirror = new Mirror();
  const broken = { assistant_id: 'x', path: '/r/x/assistant.json', reason: 'r', served: false };
  const older = { ...assistant('b'), created_at: 0 };
  const taken = { ...snapshot(4, ['c', 'a'], EPOCH, [broken]), assistants: [assistant('c'), assistant('a'), older] };
  mirror.reset(taken);
  assert.deepEqual([...mirror.invalid], [['x', broken]]);
  assert.deepEqual([mirror.epoch, mirror.seq], [EPOCH, 4]);
  // By created_at, then id, as getSnapshot lists them; plain data, ready for JSON or IPC.
  assert.deepEqual(mirror.toJSON(), {
    object: 'snapshot', epoch: EPOCH, seq: 4, assistants: [older, assistant('a'), assistant('c')], invalid: [broken],
  });
  assert.deepEqual(JSON.parse(JSON.stringify(mirror)), mirror.toJSON());
});

test('a gap asks for a new snapshot', T, () => {
  const clone = syncedClone(1, ['a']);
  const skipped = clone.receive(frames(updated(3, 'a', { name: 'lost 2' })), 100);
  assert.deepEqual([skipped.events, skipped.change], [[], null]);
  assert.equal(clone.mirror.assistants.get('a').name, null, 'nothing applied past the gap');
  assert.equal(clone.inSync, false);
  // Whatever comes until the snapshot is in it.
  assert.deepEqual(clone.receive(frames(updated(4, 'a')), 150).events, []);
  assert.equal(clone.nextStep(150), 'snapshot');
  const { events: [synced], change } = clone.snapshotTaken(snapshot(4, ['a', 'b']), 200);
  assert.deepEqual([synced.reason, synced.seq], ['gap', 4]);
  assert.deepEqual(change.assistants.map((one) => one.id), ['b']);
  assert.equal(change.source, synced);
  assert.ok(clone.inSync);
  assert.deepEqual(topics(clone.receive(frames(deleted(5, 'b')), 300)), ['assistant.deleted']);
});

test('a snapshot that changes nothing is no change', T, () => {
  const clone = syncedClone(1, ['a']);
  clone.receive(frames(heartbeat(2)), 100);
  const { events: [synced], change } = clone.snapshotTaken(snapshot(2, ['a']), 200);
  assert.equal(synced.reason, 'gap');
  assert.equal(change, null);
});

test('a heartbeat ahead of the mirror is a gap', T, () => {
  const clone = syncedClone(1, ['a']);
  clone.receive(frames(heartbeat(1)), 500);
  assert.ok(clone.inSync);
  clone.receive(frames(heartbeat(2)), 1000); // the last event of a burst was lost
  assert.equal(clone.inSync, false);
  assert.equal(clone.snapshotTaken(snapshot(2, ['a']), 1100).events[0].reason, 'gap');
});

test('a new epoch asks for a snapshot of the new daemon', T, () => {
  const clone = syncedClone(5, ['a']);
  assert.deepEqual(clone.receive(frames(created(1, 'b', {}, 'e2')), 1000).events, []);
  assert.equal(clone.inSync, false);
  // The event proves `assistant.` live at the new daemon, not yet `daemon.`.
  assert.notEqual(clone.nextStep(1000), 'snapshot');
  clone.receive(frames(welcome(1, 'daemon.', 'e2'), 'daemon.'), 1100);
  assert.equal(clone.nextStep(1100), 'snapshot');
  const { events: [synced], change } = clone.snapshotTaken(snapshot(1, ['b'], 'e2'), 1200);
  assert.deepEqual([synced.reason, synced.epoch], ['epoch', 'e2']);
  assert.deepEqual([...clone.mirror.assistants.keys()], ['b']);
  assert.deepEqual(change.assistants.map(({ id, after }) => [id, after === undefined]), [['b', false], ['a', true]]);
});

test('stopping is passed on and the next daemon awaited', T, () => {
  const clone = syncedClone(2, ['a'], '');
  const out = clone.receive(frames(stopping(2)), 1000);
  assert.deepEqual(topics(out), ['daemon.stopping']);
  assert.equal(clone.inSync, false);
  // No snapshot attempts while no daemon welcomes us, however long that takes.
  for (const now of [2000, 10_000, 100_000]) {
    assert.notEqual(clone.nextStep(now), 'snapshot');
    assert.equal(clone.waited(now), false);
  }
  welcomed(clone, 0, 'e2', 101_000);
  assert.equal(clone.nextStep(101_000), 'snapshot');
});

test('a snapshot from another daemon than the welcome is not trusted', T, () => {
  const clone = syncedClone(2, ['a']);
  clone.receive(frames(heartbeat(2)), 3500);
  for (const now of [3600, 6600]) clone.waited(now);
  assert.equal(clone.nextStep(6600), 'snapshot'); // silence
  // The daemon restarted between its last message and our snapshot request.
  assert.deepEqual(clone.snapshotTaken(snapshot(0, ['b'], 'e2'), 6700).events, []);
  assert.deepEqual([...clone.mirror.assistants.keys()], ['a']);
  assert.notEqual(clone.nextStep(6700), 'snapshot');
  welcomed(clone, 0, 'e2', 6800);
  assert.equal(clone.snapshotTaken(snapshot(0, ['b'], 'e2'), 6900).events[0].topic, 'client.synced');
  assert.deepEqual([...clone.mirror.assistants.keys()], ['b']);
});

test('three silent heartbeat intervals ask for a snapshot', T, () => {
  const clone = syncedClone(0, ['a']);
  clone.receive(frames(heartbeat(0)), 10_000);
  assert.equal(clone.nextStep(10_000), 3000);
  clone.waited(12_900);
  assert.ok(clone.inSync);
  clone.waited(13_000);
  assert.equal(clone.nextStep(13_000), 'snapshot');
  assert.equal(clone.snapshotTaken(snapshot(0, ['a']), 13_100).events[0].reason, 'silence');
});

test('the silence follows the heartbeat interval given', T, () => {
  const clone = new CloneSync({ heartbeatInterval: 50, now: 0 });
  welcomed(clone, 0);
  clone.snapshotTaken(snapshot(0, []), 0);
  assert.equal(clone.nextStep(0), 150);
  clone.waited(150);
  assert.equal(clone.nextStep(150), 'snapshot');
});

test('a failed snapshot is retried after a silence or at the next message', T, () => {
  const clone = syncedClone(0, ['a']);
  clone.waited(3000);
  assert.equal(clone.nextStep(3000), 'snapshot');
  clone.snapshotFailed(3000);
  assert.equal(clone.nextStep(3000), 3000);
  clone.waited(6000);
  assert.equal(clone.nextStep(6000), 'snapshot');
  clone.snapshotFailed(6000);
  clone.receive(frames(heartbeat(0)), 6500);
  assert.equal(clone.nextStep(6500), 'snapshot');
});

test('no welcome before the start timeout is the end', T, () => {
  const clone = new CloneSync({ startTimeout: 2000, now: 0 });
  assert.equal(clone.nextStep(0), 2000);
  assert.equal(clone.waited(1900), false);
  assert.equal(clone.waited(2000), true);
});

test('the prefix narrows what is passed on, not what is mirrored', T, () => {
  const clone = syncedClone(0, ['a'], 'assistant.deleted');
  const createdB = clone.receive(frames(created(1, 'b')), 100);
  assert.deepEqual(createdB.events, []);
  assert.ok(createdB.change, 'mirrored all the same');
  assert.deepEqual(clone.receive(frames(updated(2, 'a', { name: 'A' })), 100).events, []);
  assert.deepEqual(topics(clone.receive(frames(deleted(3, 'b')), 100)), ['assistant.deleted']);
  assert.deepEqual([...clone.mirror.assistants.keys()], ['a']);
  assert.equal(clone.mirror.assistants.get('a').name, 'A');
  assert.deepEqual(clone.receive(frames(stopping(3)), 200).events, []);
});

test('activity events are passed on when the prefix takes them in, never mirrored', T, () => {
  const workers = syncedClone(0, ['a'], 'worker.');
  const log = workers.receive(frames(workerLog()), 100);
  assert.deepEqual([topics(log), log.change], [['worker.log'], null]);
  assert.equal(workers.mirror.seq, 0);
  const all = syncedClone(0, ['a'], '');
  assert.deepEqual(topics(all.receive(frames(workerLog()), 100)), ['worker.log']);
  const state = syncedClone(0, ['a'], 'assistant.');
  assert.deepEqual(state.receive(frames(workerLog()), 100).events, []);
  // Not before the first snapshot, which a watch always passes on first.
  const fresh = new CloneSync({ prefix: '', now: 0 });
  assert.deepEqual(fresh.receive(frames(workerLog()), 0).events, []);
});

test('messages it cannot read are skipped with a reason, and change nothing', T, () => {
  const clone = syncedClone(0, ['a'], '');
  const bad = [
    [[Buffer.from('worker.log'), Buffer.from('{"topic": "worker.log", "epoch": "e1"}')], /worker\.log: bad or missing/],
    [[Buffer.from('assistant.created'), Buffer.from('not json')], /not JSON/],
    [[Buffer.from('one frame')], /1 frames/],
    [[Buffer.from('a'), Buffer.from('b'), Buffer.from('c')], /3 frames/],
    [[Buffer.from('assistant.created'), Buffer.from('[1, 2]')], /not a JSON object/],
    [[Buffer.from('assistant.created'), Buffer.from('{"epoch": "e1"}')], /no `topic`/],
    [frames(created(1, 'b'), 'assistant.deleted'), /topic frame "assistant\.deleted" does not match "assistant\.created"/],
    [frames(welcome(0, 'daemon.'), 'assistant.'), /topic frame "assistant\." does not match "daemon\."/],
    [frames({ ...created(1, 'b'), seq: 1.5 }), /`seq`/],
    [frames({ ...created(1, 'b'), seq: '1' }), /`seq`/],
    [frames({ ...created(1, 'b'), seq: -1 }), /`seq`/],
    [frames({ ...created(1, 'b'), cause: 'magic' }), /`cause`/],
    [frames({ ...created(1, 'b'), epoch: 7 }), /`epoch`/],
    [frames({ ...created(1, 'b'), assistant: { name: 'no id' } }), /`assistant`/],
    [frames({ ...created(1, 'b'), assistant: null }), /`assistant`/],
    [frames({ ...deleted(1, 'b'), assistant_id: 5 }), /`assistant_id`/],
    [frames({ ...invalid(1, 'b'), served: 'yes' }), /`served`/],
    [frames({ ...moved(1, 'a', 'ready', 'running'), error: 'boom' }), /`error`/],
    [frames({ ...heartbeat(1), seq: null }), /`seq`/],
    [frames({ ...workerLog(), pid: '42' }), /`pid`/],
    [frames({ ...stopping(0), topic: 'daemon.exploded' }, 'daemon.exploded'), /unknown topic/],
    [[Buffer.from('assistant.created'), Buffer.from([0xff, 0xfe, 0x00])], /not JSON/],
  ];
  const before = JSON.stringify(clone.mirror);
  for (const [message, reason] of bad) {
    const out = clone.receive(message, 100);
    assert.deepEqual([out.events, out.change], [[], null], reason.source);
    assert.match(out.skipped.reason, reason);
  }
  assert.equal(JSON.stringify(clone.mirror), before);
  assert.ok(clone.inSync);
  // A state event that could not be read shows as a gap at the next one.
  assert.deepEqual(clone.receive(frames(created(2, 'b')), 200).events, []);
  assert.equal(clone.inSync, false);
});

test('a skipped message still says the daemon lives; it proves no subscription', T, () => {
  const clone = syncedClone(0, ['a']);
  clone.receive([Buffer.from('daemon.heartbeat'), Buffer.from('{')], 2900);
  assert.equal(clone.nextStep(2900), 3000);
  const fresh = new CloneSync({ prefix: 'assistant.', now: 0 });
  for (const prefix of fresh.subscriptions) fresh.receive([Buffer.from(prefix), Buffer.from('{')], 0);
  assert.notEqual(fresh.nextStep(0), 'snapshot');
});

test('a welcome is read on the prefix it answers, the daemon\'s topic otherwise', T, () => {
  const ok = decodeEvent(frames(welcome(0, ''), ''));
  assert.equal(ok.ok, true);
  assert.equal(decodeEvent(frames(welcome(0, 'worker.'), 'worker.')).ok, true);
  assert.equal(decodeEvent(frames(heartbeat(0))).ok, true);
  assert.equal(decodeEvent(frames(heartbeat(0), '')).ok, false);
});

test('a daemon stopping before the repair is awaited too', T, () => {
  const clone = syncedClone(1, ['a']);
  clone.receive(frames(updated(3, 'a')), 100); // a gap: a snapshot is due
  assert.equal(clone.nextStep(100), 'snapshot');
  clone.receive(frames(stopping(3), 'daemon.stopping'), 200);
  assert.notEqual(clone.nextStep(200), 'snapshot');
  welcomed(clone, 0, 'e2', 300);
  assert.equal(clone.snapshotTaken(snapshot(0, ['b'], 'e2'), 400).events[0].reason, 'epoch');
});

test('a daemon stopping before the start is still a start', T, () => {
  const clone = new CloneSync({ prefix: 'assistant.', now: 0 });
  clone.receive(frames(stopping(0), 'daemon.stopping'), 100);
  welcomed(clone, 0, 'e2', 200);
  assert.equal(clone.snapshotTaken(snapshot(0, [], 'e2'), 300).events[0].reason, 'start');
});
