'use strict';
// A real assistantd process for the tests: its own root and runtime dir in a short temp path
// (a Unix socket path holds at most 107 bytes), JSON logs read as they come, stopped with
// SIGTERM at the end. The daemon is the repository's: `.venv/bin/python -m assistantd.daemon`
// (as `python3 dev.py test` sets it up), or the Python in $ASSISTANTD_PYTHON.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { WatchedChild } = require('./child');

const REPOSITORY = path.resolve(__dirname, '..', '..', '..', '..');
const PYTHON = process.env.ASSISTANTD_PYTHON || path.join(REPOSITORY, '.venv', 'bin', 'python');
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;

/** @type {string[]} the folders shortDir made, removed when the test process exits */
const madeDirs = [];
process.once('exit', () => {
  for (const dir of madeDirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** A fresh private folder with a short path (removed when the process exits). */
function shortDir(prefix = 'adn-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  madeDirs.push(dir);
  return dir;
}

/** A daemon started by `startDaemon`: its JSON log lines as they come (`logs`). */
class DaemonProcess extends WatchedChild {
  constructor(child, root, runtimeDir) {
    super(child, child.stderr, parseLogLine, 'the daemon');
    this.root = root;
    this.runtimeDir = runtimeDir;
    this.command = `ipc://${path.join(runtimeDir, 'command.sock')}`;
    this.events = `ipc://${path.join(runtimeDir, 'events.sock')}`;
  }

  get logs() {
    return this.lines;
  }

  /** The first log line (already logged or still to come) that satisfies `predicate`. */
  waitForLog(predicate, timeoutMs = 10_000) {
    return this.waitFor(predicate, timeoutMs);
  }

  /** SIGTERM, and its exit; SIGKILL (and an error) if it is not gone in time. */
  stop(timeoutMs = STOP_TIMEOUT_MS) {
    return super.stop('SIGTERM', timeoutMs);
  }
}

/** A log line as the daemon writes it (JSON), or its text when it is not JSON. */
function parseLogLine(raw) {
  try {
    return JSON.parse(raw);
  } catch {
    return { event: raw, level: 'raw' };
  }
}

/**
 * Start `assistantd` on `root` (a fresh folder when not given) and wait until it logs `ready`.
 * `args` are added to the command line; `env` to this process's environment.
 */
async function startDaemon({ root, runtimeDir, args = [], env = {} } = {}) {
  root = root || shortDir('adn-root-');
  runtimeDir = runtimeDir || shortDir('adn-run-');
  const child = spawn(
    PYTHON,
    ['-m', 'assistantd.daemon', '--root', root, '--runtime-dir', runtimeDir,
      '--log-format', 'json', '--log-level', 'debug', ...args],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const daemon = new DaemonProcess(child, root, runtimeDir);
  try {
    await daemon.waitForLog((line) => line.event === 'ready', START_TIMEOUT_MS);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return daemon;
}

module.exports = { startDaemon, shortDir, DaemonProcess, REPOSITORY, PYTHON };
