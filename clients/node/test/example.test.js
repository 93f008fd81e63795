'use strict';
// examples/mirror-state.js, run as a user would run it (`require('assistantd-client')`, the
// daemon found through ASSISTANTD_RUNTIME_DIR) against a real daemon: it prints a line per
// change and exits 0 on SIGTERM and SIGINT.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const { WatchedChild } = require('./support/child');
const { startDaemon, shortDir } = require('./support/daemon');
const { commands } = require('./support/snapshot');
const { stopDaemon, writeDefinition } = require('./support/watching');

const EXAMPLE = path.join(__dirname, '..', 'examples', 'mirror-state.js');

/** The example as a child, its stdout lines as they come, its stderr as one text. */
function runExample(env) {
  const child = spawn(process.execPath, [EXAMPLE], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const example = new WatchedChild(child, child.stdout, undefined, 'the example');
  example.stderr = '';
  child.stderr.on('data', (chunk) => { example.stderr += chunk; });
  return example;
}

test('the example prints each change and exits 0 on SIGTERM', { timeout: 60_000 }, async () => {
  const daemon = await startDaemon();
  const cmds = commands(daemon.command);
  const example = runExample({ ASSISTANTD_RUNTIME_DIR: daemon.runtimeDir });
  try {
    await example.waitFor((line) => line.startsWith('mirroring epoch '));
    assert.equal(example.lines[0], 'synced (start): 1 assistants, 0 invalid');

    await cmds.call('startAssistant', { assistant_id: 'jan' });
    await example.waitFor((line) => line === 'jan ready -> running');
    await cmds.call('createAssistant', { id: 'ada', name: 'Ada' });
    await example.waitFor((line) => line === 'ada created (ready)');
    await daemon.waitForLog((line) => line.event === 'watching');
    writeDefinition(daemon.root, 'ada', '{not json');
    await example.waitFor((line) => line.startsWith('ada invalid: '));
    await cmds.call('deleteAssistant', { assistant_id: 'ada' });
    await example.waitFor((line) => line === 'ada deleted');

    assert.deepEqual(await example.stop('SIGTERM'), { code: 0, signal: null });
    assert.equal(example.stderr, '');
  } finally {
    if (example.child.exitCode === null) example.child.kill('SIGKILL');
    cmds.close();
    await stopDaemon(daemon);
  }
});

test('the example exits 0 on SIGINT, and 1 with a reason when no daemon runs', { timeout: 30_000 }, async () => {
  const daemon = await startDaemon();
  try {
    const example = runExample({ ASSISTANTD_RUNTIME_DIR: daemon.runtimeDir });
    await example.waitFor((line) => line.startsWith('mirroring epoch '));
    assert.deepEqual(await example.stop('SIGINT'), { code: 0, signal: null });
  } finally {
    await stopDaemon(daemon);
  }
  const empty = shortDir();
  try {
    const nobody = runExample({ ASSISTANTD_RUNTIME_DIR: empty });
    assert.deepEqual(await nobody.exited, { code: 1, signal: null });
    assert.match(nobody.stderr, /^cannot watch the daemon: No daemon is listening at ipc:\/\//);
  } finally {
    fs.rmSync(empty, { recursive: true, force: true });
  }
});
