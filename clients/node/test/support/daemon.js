'use strict';
// A real assistantd process for the tests: its own root and runtime dir in a short temp path
// (a Unix socket path holds at most 107 bytes), JSON logs read as they come, stopped with
// SIGTERM at the end. The daemon is the repository's: `.venv/bin/python -m assistantd.daemon`
// (as `python3 dev.py test` sets it up), or the Python in $ASSISTANTD_PYTHON.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

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

class DaemonProcess {
  constructor(child, root, runtimeDir) {
    this.child = child;
    this.root = root;
    this.runtimeDir = runtimeDir;
    this.command = `ipc://${path.join(runtimeDir, 'command.sock')}`;
    this.events = `ipc://${path.join(runtimeDir, 'events.sock')}`;
    this.logs = [];
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    this._waiters = new Set();
    readline.createInterface({ input: child.stderr }).on('line', (raw) => {
      let line;
      try {
        line = JSON.parse(raw);
      } catch {
        line = { event: raw, level: 'raw' };
      }
      this.logs.push(line);
      for (const waiter of this._waiters) waiter();
    });
  }

  /** The first log line (already logged or still to come) that satisfies `predicate`. */
  waitForLog(predicate, timeoutMs = 10_000) {
    return new Promise((resolve, reject) => {
      let seen = 0;
      const check = () => {
        for (; seen < this.logs.length; seen++) {
          if (predicate(this.logs[seen])) {
            done();
            resolve(this.logs[seen]);
            return;
          }
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no such log line within ${timeoutMs} ms; the daemon logged:\n` +
          this.logs.map((line) => JSON.stringify(line)).join('\n')));
      }, timeoutMs);
      const onExit = () => {
        check();
        if (this._waiters.has(check)) {
          done();
          reject(new Error(`the daemon exited; it logged:\n${this.logs.map((l) => JSON.stringify(l)).join('\n')}`));
        }
      };
      const done = () => {
        clearTimeout(timer);
        this._waiters.delete(check);
      };
      this._waiters.add(check);
      this.exited.then(onExit);
      check();
    });
  }

  /** SIGTERM, and its exit; SIGKILL (and an error) if it is not gone in time. */
  async stop(timeoutMs = STOP_TIMEOUT_MS) {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    let timer;
    const late = new Promise((resolve) => { timer = setTimeout(resolve, timeoutMs, 'late'); });
    const outcome = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (outcome === 'late') {
      this.child.kill('SIGKILL');
      await this.exited;
      throw new Error('the daemon did not stop on SIGTERM');
    }
    return outcome;
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
