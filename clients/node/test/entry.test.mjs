// The ES module entry point: `import { ... } from 'assistantd-client'` gives the same classes as
// `require` does (one implementation, so `instanceof` holds across both), and a client made
// through it talks to a real daemon.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';

import entry, {
  AssistantdClient,
  AssistantdError,
  NotFoundError,
  UnavailableError,
  Watch,
  commandEndpoint,
} from 'assistantd-client';

const require = createRequire(import.meta.url);
const { startDaemon } = require('./support/daemon.js');

test('the named exports are the CommonJS entry point\'s', { timeout: 5_000 }, () => {
  const cjs = require('assistantd-client');
  assert.equal(entry, cjs);
  assert.equal(AssistantdClient, cjs.AssistantdClient);
  assert.equal(NotFoundError, cjs.NotFoundError);
  assert.equal(UnavailableError, cjs.UnavailableError);
  assert.equal(Watch, cjs.Watch);
  assert.equal(commandEndpoint({ runtimeDir: '/r' }), 'ipc:///r/command.sock');
});

test('a client imported as an ES module talks to a daemon', { timeout: 20_000 }, async () => {
  const daemon = await startDaemon();
  const client = new AssistantdClient({ runtimeDir: daemon.runtimeDir });
  try {
    assert.equal((await client.ping()).protocol_version, 1);
    const error = await client.getAssistant('nobody').catch((e) => e);
    assert.ok(error instanceof NotFoundError);
    assert.ok(error instanceof AssistantdError);
    assert.equal(error.status, 404);
  } finally {
    client.close();
    await daemon.stop();
  }
});
