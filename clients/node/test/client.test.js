'use strict';
// AssistantdClient against a real daemon: every method, the errors it answers with, and a
// process that closes its client exits by itself.

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { after, before, describe, test } = require('node:test');
const zmq = require('zeromq');

const {
  AssistantdClient,
  AssistantdError,
  ConflictError,
  GatewayTimeoutError,
  InvalidRequestError,
  NotFoundError,
  PayloadTooLargeError,
  PermissionDeniedError,
  UnavailableError,
  WorkerError,
} = require('assistantd-client');
const { startDaemon, shortDir } = require('./support/daemon');
const { writeAssistant, writeConfig } = require('./support/workers');

const PACKAGE = path.resolve(__dirname, '..');
const T = { timeout: 20_000 };

// A Jan-style module: invokeAssistant calls its exports by name.
const MODULE_CODE = `
exports.add = (a, b) => a + b;
exports.fail = () => { const error = new Error('boom'); error.code = 'E_BOOM'; throw error; };
exports.hang = () => new Promise(() => {});
`;

/** @type {Awaited<ReturnType<typeof startDaemon>>} */
let daemon;
/** @type {AssistantdClient} */
let client;

before(async () => {
  const root = shortDir('adn-root-');
  writeAssistant(root, 'plain'); // no code: the default worker
  writeAssistant(root, 'calc', MODULE_CODE);
  daemon = await startDaemon({ root, args: ['--config', writeConfig()] });
  client = new AssistantdClient({ runtimeDir: daemon.runtimeDir });
});

after(async () => {
  client?.close();
  await daemon?.stop();
});

/**
 * The first event on `events` whose topic starts with `prefix` and that satisfies `predicate`;
 * `start()` resolves once the subscription is live (its welcome came), so nothing published
 * after it can be missed.
 * @param {string} prefix
 * @param {(event: any) => boolean} predicate
 */
function eventWaiter(prefix, predicate, timeoutMs = 15_000) {
  const subscriber = new zmq.Subscriber({ linger: 0 });
  subscriber.connect(daemon.events);
  subscriber.subscribe(prefix);
  let welcomed;
  const live = new Promise((resolve) => { welcomed = resolve; });
  const found = (async () => {
    const timer = setTimeout(() => subscriber.close(), timeoutMs);
    try {
      for await (const [, body] of subscriber) {
        const event = JSON.parse(body.toString());
        if (event.topic === 'daemon.welcome') welcomed();
        else if (predicate(event)) return event;
      }
      throw new Error(`no such event within ${timeoutMs} ms`);
    } finally {
      clearTimeout(timer);
      subscriber.close();
    }
  })();
  return { live, found };
}

describe('reads and writes', () => {
  test('ping answers with the protocol version and the epoch', T, async () => {
    const ping = await client.ping();
    assert.equal(ping.protocol_version, 1);
    assert.match(ping.epoch, /^[0-9a-f]{32}$/);
    assert.equal(typeof ping.uptime, 'number');
  });

  test('create, get, modify, delete: the plain objects of the protocol', T, async () => {
    const created = await client.createAssistant({ name: 'Math tutor', model: 'llama3', metadata: { team: 'edu' } });
    assert.match(created.id, /^asst_[A-Za-z0-9]{24}$/);
    assert.equal(created.object, 'assistant');
    assert.deepEqual(created.models, ['llama3']);
    assert.equal(created.state, 'ready');
    assert.deepEqual(await client.getAssistant(created.id), created);

    const modified = await client.modifyAssistant(created.id, { instructions: 'Answer briefly.', name: null });
    assert.equal(modified.instructions, 'Answer briefly.');
    assert.equal(modified.name, created.id); // null falls back to the id
    assert.deepEqual(modified.metadata, { team: 'edu' });

    assert.deepEqual(await client.deleteAssistant(created.id), {
      id: created.id, object: 'assistant.deleted', deleted: true, state: 'to_download',
    });
    await assert.rejects(client.getAssistant(created.id), NotFoundError);
  });

  test('createAssistant takes the id of its folder', T, async () => {
    const created = await client.createAssistant({ id: 'named-one', name: 'Named' });
    assert.equal(created.id, 'named-one');
    assert.ok(fs.existsSync(path.join(daemon.root, 'named-one', 'assistant.json')));
    await client.deleteAssistant('named-one');
  });

  test('listAssistants pages with limit, order, after and before; iterAssistants visits each once', T, async () => {
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await client.createAssistant({ id: `page-${i}` })).id);
    try {
      const first = await client.listAssistants({ limit: 2, order: 'asc' });
      assert.equal(first.object, 'list');
      assert.equal(first.data.length, 2);
      assert.equal(first.has_more, true);
      const next = await client.listAssistants({ limit: 2, order: 'asc', after: first.last_id ?? undefined });
      assert.notEqual(next.first_id, first.first_id);
      const back = await client.listAssistants({ limit: 2, order: 'asc', before: next.first_id ?? undefined });
      assert.deepEqual(back.data.map((a) => a.id), first.data.map((a) => a.id));

      const everything = (await client.listAssistants({ limit: 100, order: 'desc' })).data.map((a) => a.id);
      const iterated = [];
      for await (const assistant of client.iterAssistants({ pageSize: 2 })) iterated.push(assistant.id);
      assert.deepEqual(iterated, everything);
      for (const id of ids) assert.ok(iterated.includes(id));
      const ascending = [];
      for await (const assistant of client.iterAssistants({ order: 'asc', pageSize: 3 })) ascending.push(assistant.id);
      assert.deepEqual(ascending, [...everything].reverse());
    } finally {
      for (const id of ids) await client.deleteAssistant(id);
    }
  });

  test('getSnapshot holds every assistant and the seq it reflects', T, async () => {
    const snapshot = await client.getSnapshot();
    assert.equal(snapshot.object, 'snapshot');
    assert.equal(typeof snapshot.seq, 'number');
    assert.equal(snapshot.epoch, (await client.ping()).epoch);
    const ids = snapshot.assistants.map((a) => a.id);
    assert.ok(ids.includes('plain') && ids.includes('calc'), ids.join(','));
    assert.deepEqual(snapshot.invalid, []);
  });

  test('request sends any method with raw params', T, async () => {
    const page = await client.request('listAssistants', { limit: 1 });
    assert.equal(page.data.length, 1);
    const assistant = await client.request('getAssistant', { assistant_id: 'plain' });
    assert.equal(assistant.id, 'plain');
  });
});

describe('errors arrive as AssistantdError with the daemon\'s status and code', () => {
  test('no such assistant: NotFoundError, 404, not_found, with the error object', T, async () => {
    const error = await client.getAssistant('nobody').catch((e) => e);
    assert.ok(error instanceof NotFoundError);
    assert.ok(error instanceof AssistantdError);
    assert.equal(error.name, 'NotFoundError');
    assert.equal(error.status, 404);
    assert.equal(error.code, 'not_found');
    assert.equal(error.param, 'assistant_id');
    assert.equal(error.type, 'invalid_request_error');
    assert.deepEqual(error.error, {
      message: error.message, type: 'invalid_request_error', param: 'assistant_id', code: 'not_found', status: 404,
    });
  });

  test('a taken id: ConflictError, 409, id_taken', T, async () => {
    await assert.rejects(client.createAssistant({ id: 'plain' }), (error) =>
      error instanceof ConflictError && error.status === 409 && error.code === 'id_taken');
  });

  test('the default assistant cannot be deleted: PermissionDeniedError, 403', T, async () => {
    const root = shortDir('adn-root-');
    const fresh = await startDaemon({ root });
    const other = new AssistantdClient({ runtimeDir: fresh.runtimeDir });
    try {
      await assert.rejects(other.deleteAssistant('jan'), (error) =>
        error instanceof PermissionDeniedError && error.status === 403 && error.code === 'default_assistant');
    } finally {
      other.close();
      await fresh.stop();
    }
  });

  test('a misspelt field is refused: InvalidRequestError, unknown_parameter', T, async () => {
    // @ts-expect-error on purpose
    await assert.rejects(client.createAssistant({ nmae: 'x' }), (error) =>
      error instanceof InvalidRequestError && error.code === 'unknown_parameter' && error.param === 'nmae');
  });

  test('a value of the wrong type: invalid_type, naming the param', T, async () => {
    // @ts-expect-error on purpose
    await assert.rejects(client.listAssistants({ limit: 'many' }), (error) =>
      error instanceof InvalidRequestError && error.status === 400 && error.code === 'invalid_type' && error.param === 'limit');
  });

  test('a timeoutMs over the protocol\'s hour comes back as the daemon\'s 400, not a timeout', T, async () => {
    // 3e9 ms is past what a timer holds (2^31-1): waited for as such, the call would time out
    // at once; the client waits for the daemon's hour at most, and the daemon answers first.
    const error = await client.invokeAssistant('plain', 'ping', [], { timeoutMs: 3_000_000_000 }).catch((e) => e);
    assert.ok(error instanceof InvalidRequestError, `${error}`);
    assert.equal(error.status, 400);
    assert.equal(error.param, 'timeout_ms');
  });

  test('a client timeout over 2^31-1 ms (what a timer holds) is a TypeError', T, async () => {
    assert.throws(() => new AssistantdClient({ timeout: 3_000_000_000 }), /timeout must be .*<= 2147483647/);
    await assert.rejects(client.ping({ timeout: 2 ** 31 }), TypeError);
    const longest = new AssistantdClient({ runtimeDir: daemon.runtimeDir, timeout: 2 ** 31 - 1 });
    try {
      assert.equal((await longest.ping()).protocol_version, 1);
    } finally {
      longest.close();
    }
  });

  test('an unknown method: NotFoundError, unknown_method', T, async () => {
    await assert.rejects(client.request('noSuchMethod'), (error) =>
      error instanceof NotFoundError && error.code === 'unknown_method' && error.param === 'method');
  });

  test('a request over 2 MiB is answered 413 by the daemon; one over 8 MiB is refused here', T, async () => {
    await assert.rejects(client.createAssistant({ instructions: 'x'.repeat(3 * 1024 * 1024) }), (error) =>
      error instanceof PayloadTooLargeError && error.status === 413 && error.code === 'request_too_large');
    await assert.rejects(client.createAssistant({ instructions: 'x'.repeat(9 * 1024 * 1024) }), (error) =>
      error instanceof PayloadTooLargeError && /8388608/.test(error.message));
    assert.equal((await client.ping()).protocol_version, 1); // the socket still serves
  });

  test('bad arguments are a TypeError before anything is sent', T, async () => {
    // @ts-expect-error on purpose
    assert.throws(() => new AssistantdClient({ runtime_dir: '/x' }), /unknown AssistantdClient option 'runtime_dir'/);
    assert.throws(() => new AssistantdClient({ timeout: 0 }), TypeError);
    assert.throws(() => new AssistantdClient({ retries: -1 }), TypeError);
    // @ts-expect-error on purpose
    await assert.rejects(client.ping({ timeuot: 5 }), /unknown call option 'timeuot'/);
    // @ts-expect-error on purpose
    await assert.rejects(client.createAssistant('name'), /must be an object/);
    const cycle = {};
    cycle.self = cycle;
    await assert.rejects(client.sendToAssistant('plain', cycle), /cannot be sent as JSON/);
  });
});

describe('workers', () => {
  test('start, invoke, send, restart, stop with the default worker', T, async () => {
    const started = await client.startAssistant('plain');
    assert.equal(started.state, 'running');
    assert.equal(started.runtime?.style, 'default');
    assert.equal(await client.invokeAssistant('plain', 'ping'), 'pong');
    const definition = /** @type {any} */ (await client.invokeAssistant('plain', 'getDefinition', [], { timeoutMs: 5_000 }));
    assert.equal(definition.name, 'Test plain');
    assert.deepEqual(await client.sendToAssistant('plain', { hello: ['world'] }), {
      assistant_id: 'plain', object: 'assistant.message.sent',
    });
    const restarted = await client.restartAssistant('plain');
    assert.equal(restarted.state, 'running');
    assert.notEqual(restarted.runtime?.pid, started.runtime?.pid);
    const stopped = await client.stopAssistant('plain');
    assert.equal(stopped.state, 'ready');
    assert.equal(stopped.runtime?.status, 'stopped');
    await assert.rejects(client.invokeAssistant('plain', 'ping'), (error) =>
      error instanceof ConflictError && error.code === 'assistant_not_running');
  });

  test('a module worker: its result, its thrown error, an unknown method, a timeout', T, async () => {
    await client.startAssistant('calc');
    try {
      assert.equal(await client.invokeAssistant('calc', 'add', [2, 3]), 5);
      const failed = await client.invokeAssistant('calc', 'fail').catch((e) => e);
      assert.ok(failed instanceof WorkerError, String(failed));
      assert.equal(failed.status, 502);
      assert.equal(failed.code, 'worker_error');
      assert.equal(failed.details?.message, 'boom');
      assert.equal(failed.details?.code, 'E_BOOM');
      await assert.rejects(client.invokeAssistant('calc', 'nothing'), (error) =>
        error instanceof NotFoundError && error.code === 'method_not_found');
      await assert.rejects(client.invokeAssistant('calc', 'hang', [], { timeoutMs: 200 }), (error) =>
        error instanceof GatewayTimeoutError && error.status === 504 && error.code === 'invoke_timeout');
    } finally {
      await client.stopAssistant('calc');
    }
  });

  test('close() rejects the calls still waiting, and every call after it', T, async () => {
    const own = new AssistantdClient({ runtimeDir: daemon.runtimeDir });
    await own.startAssistant('calc');
    try {
      const waiting = own.invokeAssistant('calc', 'hang', [], { timeoutMs: 60_000 });
      own.close();
      await assert.rejects(waiting, (error) => error instanceof UnavailableError && error.code === 'client_closed');
      await assert.rejects(own.ping(), (error) => error instanceof UnavailableError && error.code === 'client_closed');
      assert.equal(own.closed, true);
    } finally {
      await client.stopAssistant('calc');
    }
  });
});

describe('download, cancel, import, export', () => {
  test('export to a zip, import it back under a new id, from a relative path', T, async () => {
    const folder = shortDir('adn-out-');
    const archive = path.join(folder, 'calc.zip');
    const exported = await client.exportAssistant('calc', path.relative(process.cwd(), archive));
    assert.equal(exported.object, 'assistant.export');
    assert.equal(exported.path, archive);
    assert.equal(exported.format, 'zip');
    assert.ok(exported.files >= 2 && exported.bytes > 0);
    await assert.rejects(client.exportAssistant('calc', archive), (error) =>
      error instanceof ConflictError && error.code === 'path_exists');

    const imported = await client.importAssistant(path.relative(process.cwd(), archive), { assistantId: 'calc-copy' });
    assert.equal(imported.id, 'calc-copy');
    assert.equal(imported.state, 'ready');
    assert.ok(fs.existsSync(path.join(daemon.root, 'calc-copy', 'src', 'process.js')));
    await client.deleteAssistant('calc-copy');
    await assert.rejects(client.importAssistant(path.join(folder, 'missing')), (error) =>
      error instanceof NotFoundError && error.code === 'path_not_found');
  });

  test('a download runs to ready; the assistant is downloading at once', T, async () => {
    const folder = shortDir('adn-srv-');
    const archive = path.join(folder, 'served.zip');
    await client.exportAssistant('plain', archive);
    const server = http.createServer((request, response) => {
      response.writeHead(200, { 'content-type': 'application/zip' });
      response.end(fs.readFileSync(archive));
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
    const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
    const ready = eventWaiter('assistant.state', (event) => event.assistant.id === 'fetched' && event.assistant.state === 'ready');
    try {
      await ready.live;
      const registered = await client.downloadAssistant({ url: `http://127.0.0.1:${port}/served.zip`, assistantId: 'fetched' });
      assert.equal(registered.id, 'fetched');
      assert.equal(registered.state, 'downloading');
      assert.equal(registered.download?.url, `http://127.0.0.1:${port}/served.zip`);
      await ready.found;
      assert.equal((await client.getAssistant('fetched')).state, 'ready');
      await client.deleteAssistant('fetched');
    } finally {
      server.close();
    }
  });

  test('cancelDownload stops a download under way', T, async () => {
    // The server sends the head of a body and then nothing: the download stays under way.
    /** @type {http.ServerResponse[]} */
    const responses = [];
    let requested;
    const arrived = new Promise((resolve) => { requested = resolve; });
    const server = http.createServer((request, response) => {
      response.writeHead(200, { 'content-length': '1000000' });
      response.write(Buffer.alloc(1000));
      responses.push(response);
      requested();
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
    const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
    try {
      const registered = await client.downloadAssistant({ url: `http://127.0.0.1:${port}/slow.zip`, start: false });
      assert.equal(registered.id, 'slow');
      await arrived;
      const cancelled = await client.cancelDownload('slow');
      assert.equal(cancelled.state, 'to_download');
      assert.equal(/** @type {any} */ (cancelled.download?.error)?.code, 'cancelled');
      await assert.rejects(client.cancelDownload('plain'), (error) =>
        error instanceof ConflictError && error.code === 'not_downloading');
      await client.deleteAssistant('slow');
    } finally {
      for (const response of responses) response.destroy();
      server.close();
    }
  });
});

describe('entry points and process life', () => {
  test('require() gives the package, with the same classes as src/', T, () => {
    const entry = require('assistantd-client');
    assert.equal(entry.AssistantdClient, require('../src/client').AssistantdClient);
    assert.equal(entry.UnavailableError, require('../src/errors').UnavailableError);
    assert.equal(typeof entry.Watch, 'function');
  });

  /**
   * Run `code` in a fresh node and wait for it to exit by itself.
   * @param {string} code
   */
  function runAlone(code, timeoutMs = 10_000) {
    const child = spawn(process.execPath, ['-e', code], { cwd: PACKAGE, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => { output += chunk; });
    child.stderr.on('data', (chunk) => { output += chunk; });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the process did not exit by itself within ${timeoutMs} ms; it wrote:\n${output}`));
      }, timeoutMs);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, output });
      });
    });
  }

  test('a process that closes its client exits by itself, also with calls pending', T, async () => {
    const dir = JSON.stringify(daemon.runtimeDir);
    const simple = await runAlone(`
      const { AssistantdClient } = require('assistantd-client');
      const client = new AssistantdClient({ runtimeDir: ${dir} });
      client.ping().then((ping) => { console.log('version', ping.protocol_version); client.close(); });`);
    assert.deepEqual(simple, { code: 0, output: 'version 1\n' });

    const pending = await runAlone(`
      const { AssistantdClient } = require('assistantd-client');
      const client = new AssistantdClient({ runtimeDir: ${dir} });
      client.startAssistant('calc').then(() => {
        client.invokeAssistant('calc', 'hang', [], { timeoutMs: 60000 }).catch((e) => console.log(e.code));
        setImmediate(() => client.close());
      });`);
    assert.deepEqual(pending, { code: 0, output: 'client_closed\n' });
    await client.stopAssistant('calc');
  });
});
