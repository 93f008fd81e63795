'use strict';
// Finding the daemon: the rules of PROTOCOL.md "Finding the daemon", as pure functions of the
// environment, and then for real: a client made with no options in a process whose
// environment names the runtime dir reaches the daemon there.

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { describe, test } = require('node:test');

const { AssistantdClient, UnavailableError, commandEndpoint, eventsEndpoint } = require('assistantd-client');
const { checkReachable, defaultRuntimeDir, tempDir } = require('../src/discovery');
const { shortDir, startDaemon } = require('./support/daemon');

const T = { timeout: 20_000 };
const PACKAGE = path.resolve(__dirname, '..');
const UID = /** @type {() => number} */ (process.getuid)();

describe('the rules, first match wins', () => {
  const env = {
    ASSISTANTD_RUNTIME_DIR: '/env/runtime',
    XDG_RUNTIME_DIR: '/run/user/1000',
    TMPDIR: '/var/tmp',
  };

  test('1. an explicit endpoint', T, () => {
    assert.equal(commandEndpoint({ command: 'tcp://10.0.0.2:5555', runtimeDir: '/given', env }), 'tcp://10.0.0.2:5555');
    assert.equal(eventsEndpoint({ events: 'tcp://10.0.0.2:5556', runtimeDir: '/given', env }), 'tcp://10.0.0.2:5556');
  });

  test('2. the socket in an explicit runtime dir (made absolute)', T, () => {
    assert.equal(commandEndpoint({ runtimeDir: '/given', env }), 'ipc:///given/command.sock');
    assert.equal(eventsEndpoint({ runtimeDir: '/given', env }), 'ipc:///given/events.sock');
    assert.equal(commandEndpoint({ runtimeDir: 'relative', env }), `ipc://${path.join(process.cwd(), 'relative', 'command.sock')}`);
  });

  test('3. $ASSISTANTD_RUNTIME_DIR', T, () => {
    assert.equal(commandEndpoint({ env }), 'ipc:///env/runtime/command.sock');
    assert.equal(eventsEndpoint({ env }), 'ipc:///env/runtime/events.sock');
  });

  test('4. $XDG_RUNTIME_DIR/assistantd, when absolute', T, () => {
    const xdg = { XDG_RUNTIME_DIR: '/run/user/1000', TMPDIR: '/var/tmp' };
    assert.equal(commandEndpoint({ env: xdg }), 'ipc:///run/user/1000/assistantd/command.sock');
    assert.equal(commandEndpoint({ env: { ...xdg, ASSISTANTD_RUNTIME_DIR: '' } }), 'ipc:///run/user/1000/assistantd/command.sock');
    assert.equal(defaultRuntimeDir({ XDG_RUNTIME_DIR: 'run/relative' }, 1000), '/tmp/assistantd-1000');
  });

  test('5. assistantd-$UID in the temp dir ($TMPDIR, $TEMP, $TMP when absolute, else /tmp)', T, () => {
    assert.equal(commandEndpoint({ env: {} }), `ipc:///tmp/assistantd-${UID}/command.sock`);
    assert.equal(defaultRuntimeDir({ TMPDIR: '/var/tmp' }, 1000), '/var/tmp/assistantd-1000');
    assert.equal(tempDir({ TMPDIR: 'relative', TEMP: '/temp' }), '/temp');
    assert.equal(tempDir({ TMP: '/tmp2' }), '/tmp2');
    assert.equal(tempDir({}), '/tmp');
  });

  test('the client takes its endpoints from these rules', T, () => {
    const client = new AssistantdClient({ runtimeDir: '/given' });
    assert.equal(client.endpoint, 'ipc:///given/command.sock');
    assert.equal(client.eventsEndpoint, 'ipc:///given/events.sock');
    const explicit = new AssistantdClient({ command: 'ipc:///a/c.sock', events: 'ipc:///a/e.sock' });
    assert.equal(explicit.endpoint, 'ipc:///a/c.sock');
    assert.equal(explicit.eventsEndpoint, 'ipc:///a/e.sock');
    client.close();
    explicit.close();
  });
});

describe('a missing daemon', () => {
  test('an ipc endpoint without a socket file fails at once: daemon_not_running', T, () => {
    const dir = shortDir('adn-none-');
    assert.throws(() => checkReachable(`ipc://${dir}/command.sock`), (error) =>
      error instanceof UnavailableError && error.code === 'daemon_not_running' && error.status === 503 &&
      error.message.includes(`${dir}/command.sock`));
    checkReachable('tcp://127.0.0.1:1'); // over TCP only a timeout can tell
    fs.writeFileSync(path.join(dir, 'command.sock'), '');
    checkReachable(`ipc://${dir}/command.sock`);
  });
});

describe('the environment of a real process', () => {
  /**
   * Ping with `new AssistantdClient()` in a node whose environment is `env` (none of this
   * process's ASSISTANTD_ and XDG_ variables); what it printed.
   * @param {Record<string, string>} env
   */
  function pingFrom(env) {
    const clean = Object.fromEntries(Object.entries(process.env).filter(([key]) =>
      !key.startsWith('ASSISTANTD_') && !key.startsWith('XDG_')));
    const code = `
      const { AssistantdClient } = require('assistantd-client');
      const client = new AssistantdClient({ timeout: 5000 });
      client.ping().then((ping) => console.log(client.endpoint, ping.protocol_version),
                         (error) => console.log(client.endpoint, error.code)).finally(() => client.close());`;
    const child = spawn(process.execPath, ['-e', code], { cwd: PACKAGE, env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.on('data', (chunk) => { output += chunk; });
    return new Promise((resolve) => child.on('exit', () => resolve(output.trim())));
  }

  test('$ASSISTANTD_RUNTIME_DIR, then $XDG_RUNTIME_DIR/assistantd', T, async () => {
    const daemon = await startDaemon();
    try {
      assert.equal(await pingFrom({ ASSISTANTD_RUNTIME_DIR: daemon.runtimeDir }), `${daemon.command} 1`);
    } finally {
      await daemon.stop();
    }
    const xdg = shortDir('adn-xdg-');
    const underXdg = await startDaemon({ runtimeDir: path.join(xdg, 'assistantd') });
    try {
      assert.equal(await pingFrom({ XDG_RUNTIME_DIR: xdg }), `${underXdg.command} 1`);
      // The explicit variable wins over XDG's.
      const elsewhere = shortDir('adn-else-');
      assert.equal(await pingFrom({ XDG_RUNTIME_DIR: xdg, ASSISTANTD_RUNTIME_DIR: elsewhere }),
        `ipc://${elsewhere}/command.sock daemon_not_running`);
    } finally {
      await underXdg.stop();
    }
  });
});
