'use strict';
// Finding the daemon's endpoints the way the daemon chose them (PROTOCOL.md, "Finding the
// daemon"; the Python client's discovery.py and protocol/endpoints.py), first match wins:
// an explicit endpoint; the socket in an explicit runtime dir; in $ASSISTANTD_RUNTIME_DIR;
// in $XDG_RUNTIME_DIR/assistantd; in <temp dir>/assistantd-$UID.

const fs = require('node:fs');
const path = require('node:path');
const { UnavailableError } = require('./errors');

const COMMAND_SOCKET = 'command.sock';
const EVENTS_SOCKET = 'events.sock';
const ENV_RUNTIME_DIR = 'ASSISTANTD_RUNTIME_DIR';

/** @typedef {Record<string, string | undefined>} Environment */

/**
 * `command` if given, else `command.sock` in `runtimeDir` or the default runtime dir.
 * @param {{ command?: string | null, runtimeDir?: string | null, env?: Environment }} [options]
 * @returns {string}
 */
function commandEndpoint({ command, runtimeDir, env } = {}) {
  if (command) return command;
  return inRuntimeDir(COMMAND_SOCKET, runtimeDir, env);
}

/**
 * `events` if given, else `events.sock` in `runtimeDir` or the default runtime dir (beside
 * `command.sock` when both are found there).
 * @example eventsEndpoint({ runtimeDir: '/run/user/1000/assistantd' })
 *   // 'ipc:///run/user/1000/assistantd/events.sock'
 * @param {{ events?: string | null, runtimeDir?: string | null, env?: Environment }} [options]
 * @returns {string}
 */
function eventsEndpoint({ events, runtimeDir, env } = {}) {
  if (events) return events;
  return inRuntimeDir(EVENTS_SOCKET, runtimeDir, env);
}

/**
 * `$ASSISTANTD_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/assistantd` (an absolute one: the XDG
 * spec says to ignore relative ones), else `assistantd-$UID` in the temp dir.
 * @param {Environment} [env]
 * @param {number} [uid]
 * @returns {string}
 */
function defaultRuntimeDir(env = process.env, uid = currentUid()) {
  const explicit = env[ENV_RUNTIME_DIR];
  if (explicit) return explicit;
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg && xdg.startsWith('/')) return path.join(xdg, 'assistantd');
  return path.join(tempDir(env), `assistantd-${uid}`);
}

/**
 * The system's temp dir as Python's `tempfile` finds it (the daemon's rule, which is not
 * Node's `os.tmpdir()`): the first absolute one of `$TMPDIR`, `$TEMP`, `$TMP`, else `/tmp`.
 * @param {Environment} [env]
 * @returns {string}
 */
function tempDir(env = process.env) {
  for (const name of ['TMPDIR', 'TEMP', 'TMP']) {
    const value = env[name];
    if (value && value.startsWith('/')) return value;
  }
  return '/tmp';
}

/**
 * @param {string} name
 * @param {string | null | undefined} runtimeDir
 * @param {Environment | undefined} env
 */
function inRuntimeDir(name, runtimeDir, env) {
  const found = runtimeDir ? runtimeDir : defaultRuntimeDir(env ?? process.env);
  return `ipc://${path.join(path.resolve(found), name)}`;
}

/**
 * Throw `UnavailableError` (`daemon_not_running`) at once when an `ipc://` endpoint has no
 * socket file: ZeroMQ would otherwise wait for a peer to appear, and the caller would learn
 * of the problem only when its timeout ran out. (A socket file that is there does not prove
 * that a daemon runs: under socket activation it stays after the daemon stops.)
 * @param {string} endpoint
 */
function checkReachable(endpoint) {
  if (!endpoint.startsWith('ipc://')) return;
  const socketPath = endpoint.slice('ipc://'.length);
  if (!fs.existsSync(socketPath)) {
    throw new UnavailableError(
      `No daemon is listening at ${endpoint} (no socket file). Is assistantd running, with the ` +
        'same runtime dir (--runtime-dir, ASSISTANTD_RUNTIME_DIR)?',
      { code: 'daemon_not_running' },
    );
  }
}

function currentUid() {
  // process.getuid is missing only on Windows, where the daemon does not run.
  return typeof process.getuid === 'function' ? process.getuid() : 0;
}

module.exports = {
  COMMAND_SOCKET,
  EVENTS_SOCKET,
  commandEndpoint,
  eventsEndpoint,
  defaultRuntimeDir,
  tempDir,
  checkReachable,
};
