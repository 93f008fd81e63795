'use strict';
// The transport against a fake daemon (a ROUTER that answers only what the test says): Lazy
// Pirate (a lost reply retires the socket; reads are sent again, writes never), replies out of
// order, replies that cannot be read, close() with calls pending; and the reply waits.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { after, before, beforeEach, describe, test } = require('node:test');

const {
  AssistantdClient,
  AssistantdError,
  ConflictError,
  InternalError,
  NotFoundError,
  PayloadTooLargeError,
  UnavailableError,
} = require('assistantd-client');
const { INVOKE_TIMEOUT_MAX_MS, MAX_TIMER_MS, replyTimeout, workTime } = require('../src/waits');
const { FakeDaemon } = require('./support/fake-daemon');
const { shortDir } = require('./support/daemon');

const T = { timeout: 10_000 };
/** Short: every lost reply in these tests costs this long. */
const LOST = 300;
const PING = { daemon_version: '0.1.0', protocol_version: 1, epoch: 'e', uptime: 1 };

/** @type {FakeDaemon} */
let fake;
/** @type {AssistantdClient[]} */
const clients = [];

before(async () => {
  fake = await FakeDaemon.start();
});

beforeEach(() => fake.forget());

after(() => {
  for (const client of clients) client.close();
  fake?.close();
});

/** A client of the fake daemon, closed at the end. @param {object} [options] */
function fakeClient(options = {}) {
  const client = new AssistantdClient({ command: fake.command, timeout: LOST, ...options });
  clients.push(client);
  return client;
}

/** The requests the fake has received for `method`. @param {string} method */
function received(method) {
  return fake.requests.filter((request) => request.body?.method === method);
}

describe('Lazy Pirate', () => {
  test('a lost reply to a read: sent again on a fresh socket, and answered', T, async () => {
    const client = fakeClient();
    const call = client.getAssistant('jan');
    const lost = await fake.next(); // dropped
    const again = await fake.next();
    assert.equal(again.body.method, 'getAssistant');
    assert.deepEqual(again.body.params, { assistant_id: 'jan' });
    assert.notEqual(again.body.id, lost.body.id);
    assert.notDeepEqual(again.identity, lost.identity, 'the retry must come from a fresh socket');
    await fake.answer(again, { result: { id: 'jan' } });
    assert.deepEqual(await call, { id: 'jan' });

    // The fresh socket is the one calls go to now.
    const ping = client.ping();
    const next = await fake.next();
    assert.deepEqual(next.identity, again.identity);
    await fake.answer(next, { result: PING });
    assert.deepEqual(await ping, PING);
  });

  test('a read that never gets a reply: retries + 1 sends, each on its own socket, then timeout', T, async () => {
    const before = received('ping').length;
    const client = fakeClient({ retries: 2 });
    const error = await client.ping().catch((e) => e);
    assert.ok(error instanceof UnavailableError, String(error));
    assert.equal(error.code, 'timeout');
    assert.match(error.message, /in 3 attempts/);
    const sent = received('ping').slice(before);
    assert.equal(sent.length, 3);
    assert.equal(new Set(sent.map((request) => request.identity.toString('hex'))).size, 3);
  });

  test('retries: 0 sends a read once; a per-call timeout replaces the client\'s', T, async () => {
    const before = received('getSnapshot').length;
    const client = fakeClient({ retries: 0, timeout: 60_000 });
    await assert.rejects(client.getSnapshot({ timeout: LOST }), (error) =>
      error instanceof UnavailableError && error.code === 'timeout');
    assert.equal(received('getSnapshot').length - before, 1);
  });

  test('a lost reply to a write: rejected, never sent twice, and said so', T, async () => {
    const client = fakeClient();
    const call = client.createAssistant({ name: 'once' });
    const sent = await fake.next(); // dropped
    assert.equal(sent.body.method, 'createAssistant');
    const error = await call.catch((e) => e);
    assert.ok(error instanceof UnavailableError, String(error));
    assert.equal(error.code, 'timeout');
    assert.match(error.message, /may have been carried out/);
    // The next request the fake gets is this ping (on a fresh socket), not the create again.
    const ping = client.ping();
    const next = await fake.next();
    assert.equal(next.body.method, 'ping');
    assert.notDeepEqual(next.identity, sent.identity);
    await fake.answer(next, { result: PING });
    await ping;
    assert.equal(received('createAssistant').filter((r) => r.body.params.name === 'once').length, 1);
  });

  test('a retired socket still delivers the replies of the calls that wait on it', T, async () => {
    const client = fakeClient();
    // A slow write (the daemon may take the invoke's timeout_ms) and a read on one socket.
    const slow = client.invokeAssistant('jan', 'think', [], { timeoutMs: 5_000 });
    const slowRequest = await fake.next();
    const read = client.getAssistant('jan');
    const lostRead = await fake.next(); // dropped: the socket is retired when its wait runs out
    assert.deepEqual(lostRead.identity, slowRequest.identity);
    const retried = await fake.next();
    assert.notDeepEqual(retried.identity, slowRequest.identity);
    await fake.answer(retried, { result: { id: 'jan' } });
    assert.deepEqual(await read, { id: 'jan' });
    // A late reply to the lost read, then the invoke's reply, on the retired socket.
    await fake.answer(lostRead, { result: { id: 'late' } });
    // (Private, looked at for the one thing no reply can show: the retired socket is closed.)
    const transport = /** @type {any} */ (client)._transport;
    assert.equal(transport._connections.size, 2);
    await fake.answer(slowRequest, { result: { result: 42 } });
    assert.equal(await slow, 42);
    assert.equal(transport._connections.size, 1);
  });
});

describe('replies', () => {
  test('pipelined calls are matched by id, whatever the order of the replies', T, async () => {
    const client = fakeClient({ timeout: 5_000 });
    const calls = ['a', 'b', 'c'].map((id) => client.getAssistant(id));
    const requests = [await fake.next(), await fake.next(), await fake.next()];
    for (const request of requests.reverse()) {
      await fake.answer(request, { result: { id: request.body.params.assistant_id } });
    }
    assert.deepEqual(await Promise.all(calls), [{ id: 'a' }, { id: 'b' }, { id: 'c' }]);
  });

  test('an error reply becomes the class of its status, with every field', T, async () => {
    const client = fakeClient({ timeout: 5_000 });
    const call = client.startAssistant('x');
    const request = await fake.next();
    const error = { message: 'No.', type: 'invalid_request_error', param: null, code: 'illegal_transition', status: 409, details: { from: 'to_download' } };
    await fake.answer(request, { error });
    const caught = await call.catch((e) => e);
    assert.ok(caught instanceof ConflictError);
    assert.equal(caught.message, 'No.');
    assert.equal(caught.code, 'illegal_transition');
    assert.deepEqual(caught.details, { from: 'to_download' });
    assert.deepEqual(caught.error, error);

    const other = client.ping();
    await fake.answer(await fake.next(), { error: { message: 'teapot', type: 'x', param: null, code: 'tea', status: 418 } });
    const teapot = await other.catch((e) => e);
    assert.equal(teapot.constructor, AssistantdError);
    assert.equal(teapot.status, 418);
  });

  /**
   * A call answered with `frames`: what it settles with.
   * @param {(request: import('./support/fake-daemon').ReceivedRequest) => (string | Buffer)[]} frames
   */
  async function answeredWith(frames) {
    const client = fakeClient({ timeout: 5_000, retries: 0 });
    const call = client.getAssistant('jan');
    const request = await fake.next();
    await fake.sendRaw(request, ...frames(request));
    return call.then((result) => ({ result }), (error) => ({ error }));
  }

  for (const [what, frames, problem] of /** @type {const} */ ([
    ['not JSON', () => ['', '{"id": 1, "res'], /not JSON/],
    ['not an object', () => ['', '[1, 2]'], /not a JSON object/],
    ['neither result nor error', (/** @type {any} */ r) => ['', JSON.stringify({ id: r.body.id })], /neither 'result' nor 'error'/],
    ['an error that is not an object', (/** @type {any} */ r) => ['', JSON.stringify({ id: r.body.id, error: 'bad' })], /'error' is not an object/],
    ['three frames', (/** @type {any} */ r) => ['', 'x', JSON.stringify({ id: r.body.id, result: 1 })], /3 frames/],
    ['no empty frame', (/** @type {any} */ r) => [JSON.stringify({ id: r.body.id, result: 1 })], /1 frames/],
  ])) {
    test(`a reply that is ${what}: InternalError (invalid_reply) for its call`, T, async () => {
      const { error } = await answeredWith(frames);
      assert.ok(error instanceof InternalError, String(error));
      assert.equal(error.code, 'invalid_reply');
      assert.match(error.message, problem);
    });
  }

  test('an error reply without an id is for the only call waiting', T, async () => {
    const error = { message: 'unreadable', type: 'invalid_request_error', param: null, code: 'invalid_json', status: 400 };
    const { error: caught } = await answeredWith(() => ['', JSON.stringify({ id: null, error })]);
    assert.equal(caught.code, 'invalid_json');
  });

  test('replies for no call waiting, and garbage with several waiting, are dropped', T, async () => {
    const client = fakeClient({ timeout: 5_000 });
    const first = client.getAssistant('one');
    const second = client.getAssistant('two');
    const [a, b] = [await fake.next(), await fake.next()];
    await fake.answer(a, { id: 999_999, result: 'for nobody' });
    await fake.answer(a, { id: 'a string id', result: 'for nobody' });
    await fake.sendRaw(a, '', 'garbage: two calls wait, it can be for either');
    await fake.sendRaw(a, '', JSON.stringify({ id: null, error: { message: 'x', status: 400 } }));
    await fake.answer(b, { result: { id: 'two' } });
    await fake.answer(a, { result: { id: 'one' } });
    assert.deepEqual(await Promise.all([first, second]), [{ id: 'one' }, { id: 'two' }]);
    await fake.answer(a, { result: 'again, late' }); // already settled: dropped
    const ping = client.ping();
    await fake.answer(await fake.next(), { result: PING });
    assert.deepEqual(await ping, PING);
  });
});

describe('giving up', () => {
  test('close() rejects every call still waiting, and every call after it', T, async () => {
    const client = fakeClient({ timeout: 60_000 });
    const calls = [client.ping(), client.invokeAssistant('jan', 'x')];
    await fake.next();
    await fake.next();
    client.close();
    for (const call of calls) {
      await assert.rejects(call, (error) => error instanceof UnavailableError && error.code === 'client_closed');
    }
    await assert.rejects(client.getAssistant('jan'), (error) => error instanceof UnavailableError && error.code === 'client_closed');
  });

  test('no socket file: daemon_not_running at once, not after the timeout', T, async () => {
    const client = new AssistantdClient({ runtimeDir: shortDir('adn-empty-'), timeout: 60_000 });
    clients.push(client);
    const error = await client.ping().catch((e) => e);
    assert.ok(error instanceof UnavailableError);
    assert.equal(error.code, 'daemon_not_running');
    assert.match(error.message, /no socket file/);
  });

  test('a request too large for the daemon is refused here, unsent', T, async () => {
    const client = fakeClient();
    const before = fake.requests.length;
    await assert.rejects(client.createAssistant({ instructions: 'x'.repeat(8 * 1024 * 1024) }), PayloadTooLargeError);
    const ping = client.ping();
    const next = await fake.next();
    assert.equal(next.body.method, 'ping');
    assert.equal(fake.requests.length, before + 1);
    await fake.answer(next, { result: PING });
    await ping;
  });

  test('an endpoint ZeroMQ cannot use: connection_failed', T, async () => {
    const client = fakeClient({ command: 'nonsense://x' });
    await assert.rejects(client.ping(), (error) => error instanceof UnavailableError && error.code === 'connection_failed');
  });
});

describe('reply waits', () => {
  test('the daemon\'s work time is added to the client\'s timeout, as the Python client does', T, () => {
    assert.equal(replyTimeout('getAssistant', { assistant_id: 'jan' }, 10_000), 10_000);
    assert.equal(replyTimeout('invokeAssistant', { method: 'm', timeout_ms: 90_000 }, 10_000), 100_000);
    assert.equal(replyTimeout('invokeAssistant', { method: 'm' }, 10_000), 70_000);
    assert.equal(replyTimeout('exportAssistant', { assistant_id: 'jan', path: '/tmp/j.zip' }, 10_000), 610_000);
    assert.equal(workTime('importAssistant', {}), 600_000);
    assert.equal(workTime('startAssistant', {}), 30_000);
    assert.equal(workTime('stopAssistant', {}), 15_000);
    assert.equal(workTime('restartAssistant', {}), 45_000);
    assert.equal(workTime('sendToAssistant', {}), 60_000);
    assert.equal(workTime('cancelDownload', {}), 5_000);
    assert.equal(workTime('ping', {}), 0);
  });

  test('a huge timeout_ms waits for the daemon\'s longest; no wait exceeds what a timer holds', T, () => {
    // The daemon refuses a timeout_ms over INVOKE_TIMEOUT_MAX_MS with a 400 at once.
    const limits = fs.readFileSync(path.join(__dirname, '..', '..', '..', 'protocol', 'limits.py'), 'utf8');
    const [, daemonMax] = /^INVOKE_TIMEOUT_MAX_MS: Final = ([\d_]+)$/m.exec(limits) ?? [];
    assert.ok(daemonMax, 'protocol/limits.py states INVOKE_TIMEOUT_MAX_MS');
    assert.equal(INVOKE_TIMEOUT_MAX_MS, Number(daemonMax.replaceAll('_', '')));
    assert.equal(workTime('invokeAssistant', { method: 'm', timeout_ms: 3_000_000_000 }), INVOKE_TIMEOUT_MAX_MS);
    assert.equal(replyTimeout('invokeAssistant', { method: 'm', timeout_ms: 3_000_000_000 }, 10_000), 3_610_000);
    assert.equal(MAX_TIMER_MS, 2 ** 31 - 1);
    assert.equal(replyTimeout('invokeAssistant', { method: 'm', timeout_ms: 3_600_000 }, MAX_TIMER_MS), MAX_TIMER_MS);
    assert.equal(replyTimeout('exportAssistant', {}, MAX_TIMER_MS - 1), MAX_TIMER_MS);
  });

  test('an invoke waits for its timeoutMs on top of the timeout', T, async () => {
    const client = fakeClient({ timeout: 50, retries: 0 });
    const call = client.invokeAssistant('jan', 'slow', [], { timeoutMs: 5_000 });
    const request = await fake.next();
    assert.equal(request.body.params.timeout_ms, 5_000);
    // A ping with the same 50 ms runs out first: the invoke's reply, later, is still taken.
    await assert.rejects(client.ping(), (error) => error instanceof UnavailableError && error.code === 'timeout');
    await fake.next(); // that ping, never answered
    await fake.answer(request, { result: { result: 'done' } });
    assert.equal(await call, 'done');
  });
});
