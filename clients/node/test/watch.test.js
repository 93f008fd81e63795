'use strict';
// The watch (src/watch.js) against a real daemon: real files, real sockets, the Clone pattern
// end to end; and against a fake publisher for what a daemon never sends. Every wait has a
// deadline (the recorder's `next`, `waitForLog`); nothing sleeps to let something happen.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { once } = require('node:events');
const fs = require('node:fs');
const path = require('node:path');

const { startDaemon, shortDir } = require('./support/daemon');
const { commands } = require('./support/snapshot');
const {
  record, caughtUp, assertMirrors, stopDaemon, writeDefinition, Relay, FakePublisher,
} = require('./support/watching');
const { AssistantdClient } = require('../src/client');
const { FakeDaemon } = require('./support/fake-daemon');
const { Watch } = require('../src/watch');
const { InternalError, UnavailableError } = require('../src/errors');

const T = { timeout: 30_000 };
const isWatching = (line) => line.event === 'watching';

/**
 * Run `script` in a child node with `env`; its exit and what it printed. It must exit by
 * itself within `ms`.
 */
async function runChild(script, env = {}, ms = 10_000) {
  const child = spawn(process.execPath, ['-e', script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk) => { out += chunk; });
  const exit = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the child did not exit by itself; it printed: ${out}`));
    }, ms);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
  return { ...exit, out };
}

const SRC = path.join(__dirname, '..', 'src');
const SUPPORT = path.join(__dirname, 'support');

/** A daemon, its commands and a watch on it; `end()` closes them all. */
async function watching(options = {}, daemonOptions = {}) {
  const daemon = await startDaemon(daemonOptions);
  const cmds = commands(daemon.command);
  const watch = new Watch({ endpoint: daemon.events, getSnapshot: cmds.getSnapshot, ...options });
  const seen = record(watch);
  return {
    daemon, cmds, watch, seen,
    async end() {
      await watch.close();
      cmds.close();
      await stopDaemon(daemon);
    },
  };
}

test('the mirror follows commands and hand edits, and equals getSnapshot', T, async () => {
  const { daemon, cmds, watch, seen, end } = await watching();
  try {
    await daemon.waitForLog(isWatching);
    await watch.ready();
    const start = await seen.synced();
    assert.equal(start.reason, 'start');
    assert.deepEqual([...watch.state.assistants.keys()], ['jan']);
    assert.equal(watch.state.epoch, (await cmds.call('ping')).epoch);

    await cmds.call('createAssistant', { id: 'ada', name: 'Ada' });
    await cmds.call('modifyAssistant', { assistant_id: 'ada', name: 'Ada 2' });
    await cmds.call('deleteAssistant', { assistant_id: 'ada' });
    const created = await seen.event('assistant.created');
    const modified = await seen.next(({ kind, value }) => kind === 'change' && value.source.topic === 'assistant.updated');
    const removed = await seen.event('assistant.deleted');
    assert.deepEqual([created.seq, modified.seq, removed.seq], [start.seq + 1, start.seq + 2, start.seq + 3]);
    assert.deepEqual([created.assistant.name, created.cause], ['Ada', 'request']);
    assert.deepEqual(
      modified.assistants.map(({ id, before, after }) => [id, before.name, after.name]),
      [['ada', 'Ada', 'Ada 2']],
    );
    assert.equal(removed.assistant_id, 'ada');
    assert.equal(watch.state.assistants.has('ada'), false);

    writeDefinition(daemon.root, 'bob', { name: 'Bob', model: 'llama3' });
    const handMade = await seen.event('assistant.created');
    assert.deepEqual([handMade.assistant.id, handMade.cause], ['bob', 'file']);
    writeDefinition(daemon.root, 'bob', { name: 'Bob Lovelace', model: 'llama3' });
    assert.equal((await seen.event('assistant.updated')).assistant.name, 'Bob Lovelace');
    writeDefinition(daemon.root, 'bob', '{not json');
    const broken = await seen.event('assistant.invalid');
    assert.deepEqual([broken.assistant_id, broken.served], ['bob', true]);
    assert.deepEqual([...watch.state.invalid.keys()], ['bob']);
    assert.equal(watch.state.assistants.get('bob').name, 'Bob Lovelace'); // still served
    assertMirrors(watch, await caughtUp(watch, cmds));

    writeDefinition(daemon.root, 'bob', { name: 'Bob, fixed' });
    assert.equal((await seen.event('assistant.updated')).assistant.name, 'Bob, fixed');
    assert.equal(watch.state.invalid.size, 0);
    fs.rmSync(path.join(daemon.root, 'bob'), { recursive: true });
    assert.equal((await seen.event('assistant.deleted')).assistant_id, 'bob');
    assert.deepEqual([...watch.state.assistants.keys()], ['jan']);

    assertMirrors(watch, await caughtUp(watch, cmds));
    assert.equal(watch.inSync, true);
    assert.deepEqual(seen.of('synced').map((synced) => synced.reason), ['start']);
    assert.equal(watch.skippedCount, 0);
  } finally {
    await end();
  }
});

test('a late joiner gets the whole state, file problems included', T, async () => {
  const { daemon, cmds, watch, seen, end } = await watching();
  let late;
  try {
    await daemon.waitForLog(isWatching);
    await watch.ready();
    for (const id of ['a1', 'a2', 'a3']) await cmds.call('createAssistant', { id, name: id.toUpperCase() });
    await cmds.call('deleteAssistant', { assistant_id: 'a2' });
    writeDefinition(daemon.root, 'junk', '[]');
    await seen.event('assistant.invalid');

    late = new Watch({ endpoint: daemon.events, getSnapshot: cmds.getSnapshot });
    await late.ready();
    assert.deepEqual([...late.state.assistants.keys()].sort(), ['a1', 'a3', 'jan']);
    assert.deepEqual([...late.state.invalid.keys()], ['junk']);
    assert.equal(late.state.invalid.get('junk').served, false);
    assertMirrors(late, await caughtUp(late, cmds));
    assert.deepStrictEqual(late.toJSON(), watch.toJSON());
  } finally {
    if (late) await late.close();
    await end();
  }
});

test('a daemon restart re-syncs the mirror to the new epoch', { timeout: 60_000 }, async () => {
  const root = shortDir('adn-root-');
  const runtimeDir = shortDir('adn-run-');
  let daemon = await startDaemon({ root, runtimeDir });
  const cmds = commands(daemon.command);
  const watch = new Watch({ endpoint: daemon.events, getSnapshot: cmds.getSnapshot });
  const seen = record(watch);
  try {
    const start = await seen.synced();
    await cmds.call('createAssistant', { id: 'ada', name: 'Ada' });
    await seen.event('assistant.created');

    await daemon.stop();
    // Stopped: the watch hears it go, and keeps the last state it knew.
    const stopping = await seen.event('daemon.stopping');
    assert.deepEqual([stopping.epoch, stopping.seq], [start.epoch, start.seq + 1]);
    assert.equal(watch.inSync, false);
    assert.ok(watch.state.assistants.has('ada'));

    // Changed while no daemon runs: only a snapshot can tell.
    fs.rmSync(path.join(root, 'ada'), { recursive: true });
    writeDefinition(root, 'bob', { name: 'Bob' });
    daemon = await startDaemon({ root, runtimeDir });
    const resynced = await seen.synced(15_000);
    assert.equal(resynced.reason, 'epoch');
    assert.notEqual(resynced.epoch, start.epoch);
    assert.deepEqual([...watch.state.assistants.keys()].sort(), ['bob', 'jan']);
    const change = seen.of('change').at(-1);
    assert.equal(change.source, resynced);
    assert.deepEqual(change.assistants.map(({ id, after }) => [id, after === undefined]).sort(), [['ada', true], ['bob', false]]);
    assertMirrors(watch, await caughtUp(watch, cmds));

    // And the new daemon's events follow.
    await cmds.call('modifyAssistant', { assistant_id: 'bob', name: 'Bob 2' });
    const updated = await seen.event('assistant.updated');
    assert.deepEqual([updated.epoch, updated.seq], [resynced.epoch, resynced.seq + 1]);
    assert.equal(watch.state.assistants.get('bob').name, 'Bob 2');
  } finally {
    await watch.close();
    cmds.close();
    await stopDaemon(daemon);
  }
});

test('a dropped event is a gap: the watch re-syncs', T, async () => {
  const daemon = await startDaemon();
  const relay = await new Relay(daemon.events).start();
  const cmds = commands(daemon.command);
  const watch = new Watch({ endpoint: relay.endpoint, getSnapshot: cmds.getSnapshot });
  const seen = record(watch);
  try {
    await seen.synced();
    relay.dropNext = 1;
    await cmds.call('createAssistant', { id: 'lost' });
    await cmds.call('createAssistant', { id: 'found' });
    const resynced = await seen.synced();
    assert.equal(resynced.reason, 'gap');
    assert.deepEqual(seen.of('event'), [], 'nothing past the gap is passed on');
    assert.ok(watch.state.assistants.has('lost') && watch.state.assistants.has('found'));
    assertMirrors(watch, await caughtUp(watch, cmds));
  } finally {
    await watch.close();
    await relay.close();
    cmds.close();
    await stopDaemon(daemon);
  }
});

test('a dropped last event shows at the next heartbeat', T, async () => {
  const daemon = await startDaemon();
  const relay = await new Relay(daemon.events).start();
  const cmds = commands(daemon.command);
  const watch = new Watch({ endpoint: relay.endpoint, getSnapshot: cmds.getSnapshot });
  const seen = record(watch);
  try {
    await seen.synced();
    relay.dropNext = 1;
    await cmds.call('createAssistant', { id: 'last' });
    const resynced = await seen.synced(3000); // a heartbeat comes every second
    assert.equal(resynced.reason, 'gap');
    assert.ok(watch.state.assistants.has('last'));
  } finally {
    await watch.close();
    await relay.close();
    cmds.close();
    await stopDaemon(daemon);
  }
});

test('three missed heartbeats re-sync the mirror', T, async () => {
  const daemon = await startDaemon();
  const relay = await new Relay(daemon.events).start();
  const cmds = commands(daemon.command);
  const watch = new Watch({ endpoint: relay.endpoint, getSnapshot: cmds.getSnapshot });
  const seen = record(watch);
  try {
    await seen.synced();
    relay.paused = true;
    await cmds.call('createAssistant', { id: 'unheard' });
    const resynced = await seen.synced(10_000); // three heartbeats, and a bit
    assert.equal(resynced.reason, 'silence');
    assert.ok(watch.state.assistants.has('unheard'));
    relay.paused = false;
    await cmds.call('createAssistant', { id: 'heard' });
    assert.equal((await seen.event('assistant.created')).assistant.id, 'heard');
    assertMirrors(watch, await caughtUp(watch, cmds));
  } finally {
    await watch.close();
    await relay.close();
    cmds.close();
    await stopDaemon(daemon);
  }
});

test('worker events come when the prefix takes them in, and are not mirrored', T, async () => {
  const { daemon, cmds, watch, seen, end } = await watching({ prefix: 'worker.' });
  try {
    await daemon.waitForLog(isWatching);
    await watch.ready();
    writeDefinition(daemon.root, 'talker', { name: 'Talker' });
    fs.mkdirSync(path.join(daemon.root, 'talker', 'src'));
    fs.writeFileSync(
      path.join(daemon.root, 'talker', 'src', 'process.js'),
      "console.log('hello from talker');\nprocess.send({ said: 'hi' });\nprocess.on('message', () => {});\n",
    );
    await seen.next(({ kind, value }) => kind === 'change' && value.assistants.some((one) => one.id === 'talker'));
    const seqBefore = watch.state.seq;
    await cmds.call('startAssistant', { assistant_id: 'talker' });
    // Its stdout and its IPC channel are two pipes: either may come first.
    const log = await seen.any(({ kind, value }) => kind === 'event' && value.topic === 'worker.log' && value.line === 'hello from talker');
    assert.deepEqual([log.assistant_id, log.stream], ['talker', 'stdout']);
    const message = await seen.any(({ kind, value }) => kind === 'event' && value.topic === 'worker.message');
    assert.deepEqual(message.message, { said: 'hi' });
    const running = await seen.any(({ kind, value }) => kind === 'change' && value.source.topic === 'assistant.state');
    assert.deepEqual(running.assistants.map(({ before, after }) => [before.state, after.state]), [['ready', 'running']]);
    assert.equal(watch.state.assistants.get('talker').state, 'running');
    // The state events are mirrored, not passed on; the worker events are passed on, not
    // mirrored (they have no seq).
    assert.deepEqual(seen.of('event').filter((event) => !event.topic.startsWith('worker.')), []);
    assert.ok(watch.state.seq > seqBefore);
    assertMirrors(watch, await caughtUp(watch, cmds));
    await cmds.call('stopAssistant', { assistant_id: 'talker' });
    await seen.event('worker.exited');
  } finally {
    await end();
  }
});

test('the async iterator yields events and Synced, and ends on close', T, async () => {
  const { cmds, watch, end } = await watching({ prefix: 'assistant.' });
  try {
    const iterator = watch[Symbol.asyncIterator]();
    const first = await iterator.next();
    assert.deepEqual([first.value.topic, first.value.reason], ['client.synced', 'start']);
    await cmds.call('createAssistant', { id: 'it' });
    const second = await iterator.next();
    assert.deepEqual([second.value.topic, second.value.assistant.id], ['assistant.created', 'it']);

    // One begun later starts with the mirror as it is; leaving it leaves the watch running.
    for await (const notification of watch) {
      assert.deepEqual(
        [notification.topic, notification.reason, notification.seq],
        ['client.synced', 'start', watch.state.seq],
      );
      break;
    }
    assert.equal(watch.closed, false);

    const pending = iterator.next();
    const after = iterator.next(); // a second caller waits its turn
    await watch.close();
    assert.deepEqual(await pending, { value: undefined, done: true });
    assert.deepEqual(await after, { value: undefined, done: true });
    assert.deepEqual(await iterator.next(), { value: undefined, done: true });
    // Iterating a closed watch ends at once.
    for await (const notification of watch) assert.fail(`got ${notification.topic}`);
  } finally {
    await end();
  }
});

test('a `for await` loop over a fresh watch sees its start, then its events', T, async () => {
  const { cmds, watch, end } = await watching();
  try {
    const topics = [];
    for await (const notification of watch) {
      topics.push(notification.topic);
      if (notification.topic === 'client.synced') await cmds.call('createAssistant', { id: 'loop' });
      if (notification.topic === 'assistant.created') await watch.close();
    }
    assert.deepEqual(topics, ['client.synced', 'assistant.created']);
  } finally {
    await end();
  }
});

test('the process exits by itself once the watch is closed', T, async () => {
  const daemon = await startDaemon();
  try {
    const script = `
      const { Watch } = require(${JSON.stringify(path.join(SRC, 'watch'))});
      const { commands } = require(${JSON.stringify(path.join(SUPPORT, 'snapshot'))});
      (async () => {
        const cmds = commands(process.env.COMMAND);
        const watch = new Watch({ endpoint: process.env.EVENTS, getSnapshot: cmds.getSnapshot });
        await watch.ready();
        console.log('assistants', watch.state.assistants.size);
        await watch.close();
        cmds.close();
      })();
    `;
    const { out, ...exit } = await runChild(script, { COMMAND: daemon.command, EVENTS: daemon.events });
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.equal(out, 'assistants 1\n');
  } finally {
    await stopDaemon(daemon);
  }
});

test('client.watch() mirrors through the client\'s own getSnapshot', T, async () => {
  const daemon = await startDaemon();
  const client = new AssistantdClient({ runtimeDir: daemon.runtimeDir });
  const watch = client.watch({ prefix: 'assistant.' });
  const seen = record(watch);
  try {
    assert.ok(watch instanceof Watch);
    await watch.ready();
    await client.createAssistant({ id: 'via', name: 'Via the client' });
    assert.equal((await seen.event('assistant.created')).assistant.name, 'Via the client');
    assertMirrors(watch, await caughtUp(watch, { getSnapshot: () => client.getSnapshot() }));
  } finally {
    await watch.close();
    client.close();
    await stopDaemon(daemon);
  }
  const empty = shortDir();
  const nowhere = new AssistantdClient({ runtimeDir: empty });
  try {
    assert.throws(() => nowhere.watch(), (error) => error instanceof UnavailableError && error.code === 'daemon_not_running');
  } finally {
    nowhere.close();
    fs.rmSync(empty, { recursive: true, force: true });
  }
});

// --- what a daemon never sends: a fake publisher ------------------------------------------

test('messages a watch cannot use are skipped; its mirror and its events go on', T, async () => {
  const fake = await new FakePublisher().start();
  const watch = new Watch({ endpoint: fake.endpoint, getSnapshot: fake.getSnapshot });
  const seen = record(watch);
  try {
    await watch.ready();
    const bad = [
      ['assistant.created'],
      ['assistant.created', '{not json', 'extra'],
      ['assistant.created', '{not json'],
      ['assistant.created', '"a string"'],
      ['assistant.deleted', JSON.stringify({ topic: 'assistant.created', epoch: 'fake', time: 0, seq: 1, cause: 'file', assistant: { id: 'x' } })],
      ['assistant.created', JSON.stringify({ topic: 'assistant.created', epoch: 'fake', time: 0, seq: 'one', cause: 'file', assistant: { id: 'x' } })],
      ['assistant.created', JSON.stringify({ topic: 'assistant.created', epoch: 'fake', time: 0, seq: 1, cause: 'file' })],
      ['assistant.invalid', JSON.stringify({ topic: 'assistant.invalid', epoch: 'fake', time: 0, seq: 1, cause: 'file', assistant_id: 'x' })],
      ['worker.log', JSON.stringify({ topic: 'worker.log', epoch: 'fake', time: 0 })],
    ];
    for (const frames of bad) await fake.send(frames);
    await fake.publish({ topic: 'assistant.created', seq: 1, cause: 'file', assistant: { id: 'good', created_at: 1 } });
    const good = await seen.event('assistant.created');
    assert.equal(good.assistant.id, 'good');
    const skipped = seen.of('skipped');
    assert.equal(skipped.length, bad.length);
    assert.equal(watch.skippedCount, bad.length);
    assert.match(skipped[0].reason, /1 frames/);
    assert.match(skipped[4].reason, /topic frame "assistant\.deleted" does not match/);
    assert.match(skipped[5].reason, /`seq`/);
    assert.deepEqual(watch.toJSON(), {
      object: 'snapshot', epoch: 'fake', seq: 1, assistants: [{ id: 'good', created_at: 1 }], invalid: [],
    });
    assert.equal(watch.inSync, true);
    assert.deepEqual(seen.of('error'), []);
  } finally {
    await watch.close();
    await fake.close();
  }
});

test('no welcome within the start timeout: ready() rejects with UnavailableError', T, async () => {
  const fake = await new FakePublisher({ welcome: false }).start();
  try {
    const watch = new Watch({ endpoint: fake.endpoint, getSnapshot: fake.getSnapshot, startTimeout: 300 });
    const closed = new Promise((resolve) => watch.once('close', resolve));
    await assert.rejects(watch.ready(), (error) => error instanceof UnavailableError && error.code === 'timeout');
    await closed;
    assert.equal(watch.closed, true);
    assert.equal(fake.snapshots, 0);
    await assert.rejects(watch.ready(), UnavailableError);
    await assert.rejects(watch[Symbol.asyncIterator]().next(), UnavailableError);

    // With an 'error' listener, it is told there too.
    const heard = new Watch({ endpoint: fake.endpoint, getSnapshot: fake.getSnapshot, startTimeout: 100 });
    const error = await new Promise((resolve) => heard.once('error', resolve));
    assert.ok(error instanceof UnavailableError);
    assert.equal(heard.error, error);
  } finally {
    await fake.close();
  }
});

test('the start is bounded by startTimeout as a whole: the first getSnapshot is sent once', T, async () => {
  const commands = await FakeDaemon.start(); // never answers
  const events = await new FakePublisher().start(); // welcomes at once
  const snapshotsAsked = () => commands.requests.filter((request) => request.body?.method === 'getSnapshot');
  try {
    // The client's timeout is the start timeout: with its retries the first snapshot alone
    // would take three of them.
    const client = new AssistantdClient({ command: commands.command, events: events.endpoint, timeout: 300 });
    try {
      const watch = client.watch();
      assert.equal((await commands.next()).body.method, 'getSnapshot');
      await assert.rejects(watch.ready(), (error) => error instanceof UnavailableError && error.code === 'timeout');
      assert.equal(snapshotsAsked().length, 1);
      // Nothing else was sent after it: the next request the daemon gets is this ping.
      const ping = client.ping().catch((error) => error);
      assert.equal((await commands.next()).body.method, 'ping');
      client.close();
      await ping;
      await watch.close();
    } finally {
      client.close();
    }
    // A client that waits longer than the start timeout: the first snapshot waits only
    // what is left of the start timeout (else ready() would wait a minute, three times).
    const patient = new AssistantdClient({ command: commands.command, events: events.endpoint, timeout: 60_000 });
    try {
      const watch = patient.watch({ startTimeout: 300 });
      await assert.rejects(watch.ready(), (error) => error instanceof UnavailableError && error.code === 'timeout');
      assert.equal(snapshotsAsked().length, 2);
      await watch.close();
    } finally {
      patient.close();
    }
  } finally {
    commands.close();
    await events.close();
  }
});

test('watch options are checked: an unknown one is a TypeError', T, async () => {
  const fake = await new FakePublisher().start();
  const client = new AssistantdClient({ runtimeDir: shortDir(), events: fake.endpoint });
  try {
    assert.throws(() => client.watch({ prefx: 'worker.' }), /unknown watch option 'prefx'; known: prefix, startTimeout, heartbeatInterval/);
    // Where and how to connect are the client's, not options.
    assert.throws(() => client.watch({ endpoint: 'ipc:///elsewhere' }), /unknown watch option 'endpoint'/);
    assert.throws(() => client.watch({ getSnapshot: fake.getSnapshot }), /unknown watch option 'getSnapshot'/);
    assert.throws(() => client.watch({ socketOptions: {} }), /unknown watch option 'socketOptions'/);
    // @ts-expect-error on purpose
    assert.throws(() => client.watch('worker.'), /watch options must be an object/);
    assert.throws(
      () => new Watch({ endpoint: fake.endpoint, getSnapshot: fake.getSnapshot, prefx: 'worker.' }),
      /unknown Watch option 'prefx'/,
    );
    // @ts-expect-error on purpose
    assert.throws(() => new Watch(), /Watch options must be an object/);
    const watch = client.watch({ prefix: 'worker.', startTimeout: 5_000, heartbeatInterval: 1_000 });
    try {
      assert.equal(watch.prefix, 'worker.');
      assert.equal(watch.endpoint, fake.endpoint);
    } finally {
      await watch.close();
    }
  } finally {
    client.close();
    await fake.close();
  }
});

test('a watch of a runtime dir with no daemon fails at once', T, () => {
  const dir = shortDir();
  try {
    assert.throws(
      () => new Watch({ endpoint: `ipc://${dir}/events.sock`, getSnapshot: async () => ({}) }),
      (error) => error instanceof UnavailableError && error.code === 'daemon_not_running',
    );
    assert.throws(() => new Watch({ endpoint: `ipc://${dir}/x`, getSnapshot: null }), TypeError);
    assert.throws(() => new Watch({ endpoint: `ipc://${dir}/x`, getSnapshot: async () => ({}), prefix: 3 }), TypeError);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a malformed snapshot: ready() rejects before the start, a retry after it', T, async () => {
  const fake = await new FakePublisher().start();
  try {
    fake.snapshot = { object: 'snapshot', epoch: 'fake', seq: 'zero', assistants: [], invalid: [] };
    const early = new Watch({ endpoint: fake.endpoint, getSnapshot: fake.getSnapshot });
    await assert.rejects(early.ready(), (error) => error instanceof InternalError && error.code === 'invalid_reply');

    fake.snapshot = { object: 'snapshot', epoch: 'fake', seq: 0, assistants: [{ id: 'a', created_at: 1 }], invalid: [] };
    const watch = new Watch({ endpoint: fake.endpoint, getSnapshot: fake.getSnapshot });
    const seen = record(watch);
    await watch.ready();
    // A heartbeat ahead of the mirror asks for a snapshot; the answer cannot be used...
    fake.snapshot = { epoch: 'fake', seq: 1, assistants: 'all of them', invalid: [] };
    await fake.publish({ topic: 'daemon.heartbeat', seq: 1 });
    const skipped = await seen.next(({ kind }) => kind === 'skipped');
    assert.match(skipped.reason, /getSnapshot: the snapshot has no list of `assistants`/);
    assert.deepEqual([...watch.state.assistants.keys()], ['a']);
    assert.equal(watch.inSync, false);
    // ... so the next message from the daemon brings another try.
    fake.snapshot = { object: 'snapshot', epoch: 'fake', seq: 1, assistants: [{ id: 'b', created_at: 1 }], invalid: [] };
    await fake.publish({ topic: 'daemon.heartbeat', seq: 1 });
    assert.equal((await seen.synced()).reason, 'gap');
    assert.deepEqual([...watch.state.assistants.keys()], ['b']);
    assert.equal(watch.error, null);
    await watch.close();
  } finally {
    await fake.close();
  }
});

test('a snapshot that times out after the start is retried; other errors end the watch', T, async () => {
  const fake = await new FakePublisher().start();
  try {
    const watch = new Watch({ endpoint: fake.endpoint, getSnapshot: fake.getSnapshot });
    const seen = record(watch);
    await watch.ready();
    fake.snapshot = () => {
      throw new UnavailableError('no reply', { code: 'timeout' });
    };
    let asked = once(fake, 'snapshot');
    await fake.publish({ topic: 'daemon.heartbeat', seq: 3 }); // ahead of the mirror: a gap
    await asked;
    asked = once(fake, 'snapshot');
    await fake.publish({ topic: 'daemon.heartbeat', seq: 3 }); // the daemon speaks: try again
    await asked;
    assert.equal(watch.closed, false);
    fake.snapshot = () => {
      throw new InternalError('the daemon broke');
    };
    await fake.publish({ topic: 'daemon.heartbeat', seq: 3 });
    const error = await seen.next(({ kind }) => kind === 'error');
    assert.equal(error.message, 'the daemon broke');
    assert.equal(fake.snapshots, 4); // the start's, two that timed out, the one that failed
    await seen.next(({ kind }) => kind === 'close');
    assert.equal(watch.closed, true);
    assert.equal(watch.error, error);
  } finally {
    await fake.close();
  }
});

test('a listener that throws does not break the watch', T, async () => {
  // In a child: the error comes back as an uncaught exception, which node:test would take
  // for a failure of its own.
  const script = `
    const { Watch } = require(${JSON.stringify(path.join(SRC, 'watch'))});
    const { FakePublisher } = require(${JSON.stringify(path.join(SUPPORT, 'watching'))});
    process.on('uncaughtException', (error) => console.log('uncaught:', error.message));
    (async () => {
      const fake = await new FakePublisher().start();
      const watch = new Watch({ endpoint: fake.endpoint, getSnapshot: fake.getSnapshot });
      watch.on('event', (event) => {
        throw new Error('a renderer bug at ' + event.seq);
      });
      await watch.ready();
      const second = new Promise((resolve) => watch.on('change', (change) => change.seq === 2 && resolve()));
      for (const [seq, id] of [[1, 'a'], [2, 'b']]) {
        await fake.publish({ topic: 'assistant.created', seq, cause: 'file', assistant: { id, created_at: seq } });
      }
      await second;
      await new Promise((resolve) => setImmediate(resolve));
      const { seq, assistants } = watch.toJSON();
      console.log('mirror:', seq, watch.inSync, assistants.map((one) => one.id).join());
      await watch.close();
      await fake.close();
    })();
  `;
  const { out, ...exit } = await runChild(script);
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.equal(out, 'uncaught: a renderer bug at 1\nuncaught: a renderer bug at 2\nmirror: 2 true a,b\n');
});

