'use strict';
// How long a client waits for a reply: its own timeout, plus the time the daemon may spend on
// the work by its own rules (the Python client's waits.py, in milliseconds).
//
// Most methods are answered at once, and the client's `timeout` is all the wait they need. The
// worker commands are not: an invoke may run for its whole `timeout_ms` (up to an hour), and a
// start waits for the worker to be up. Cutting such a call off at the client's timeout would
// report "no reply" for a call the daemon is still carrying out. A cancel waits for the
// download to end; an import or export copies a whole assistant before it answers.

// The daemon's defaults for its [workers] settings (daemon/workers/settings.py). A client cannot
// ask a daemon for its configured values: with a daemon configured for longer ones, give the
// client a longer `timeout`.
const DAEMON_START_TIMEOUT_MS = 30_000;
const DAEMON_STOP_TIMEOUT_MS = 5_000;
const STOP_STEPS = 3; // disconnect, SIGTERM, SIGKILL
const DAEMON_INVOKE_TIMEOUT_MS = 60_000;
const CANCEL_WORK_TIME_MS = 5_000;
const TRANSFER_WORK_TIME_MS = 600_000;
/** The longest `timeout_ms` the daemon takes (protocol/limits.py, INVOKE_TIMEOUT_MAX_MS): it
 *  refuses a longer one at once, with a 400, so waiting longer for that answer is of no use. */
const INVOKE_TIMEOUT_MAX_MS = 3_600_000;
/** The longest delay `setTimeout` keeps (a signed 32-bit int): a longer one fires after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Milliseconds the daemon may spend on `method` before it answers, beyond the usual moment.
 * @param {string} method
 * @param {Record<string, unknown>} params
 * @returns {number}
 */
function workTime(method, params) {
  const stop = STOP_STEPS * DAEMON_STOP_TIMEOUT_MS;
  switch (method) {
    case 'invokeAssistant': {
      const timeoutMs = params.timeout_ms;
      if (typeof timeoutMs === 'number' && Number.isFinite(timeoutMs)) {
        return Math.min(Math.max(timeoutMs, 0), INVOKE_TIMEOUT_MAX_MS);
      }
      return DAEMON_INVOKE_TIMEOUT_MS;
    }
    case 'sendToAssistant':
      return DAEMON_INVOKE_TIMEOUT_MS; // a send waits as long for a restarting worker
    case 'startAssistant':
      return DAEMON_START_TIMEOUT_MS;
    case 'stopAssistant':
      return stop;
    case 'restartAssistant':
      return stop + DAEMON_START_TIMEOUT_MS;
    case 'cancelDownload':
      return CANCEL_WORK_TIME_MS;
    case 'importAssistant':
    case 'exportAssistant':
      return TRANSFER_WORK_TIME_MS;
    default:
      return 0;
  }
}

/**
 * How long to wait for the reply to `method` with `params`: `workTime` plus the client's
 * `timeoutMs`, never more than a timer can hold (`MAX_TIMER_MS`, some 24.8 days).
 * @example replyTimeout('invokeAssistant', { method: 'm', timeout_ms: 90_000 }, 10_000) // 100_000
 * @param {string} method
 * @param {Record<string, unknown>} params
 * @param {number} timeoutMs
 */
function replyTimeout(method, params, timeoutMs) {
  return Math.min(workTime(method, params) + timeoutMs, MAX_TIMER_MS);
}

module.exports = {
  DAEMON_START_TIMEOUT_MS,
  DAEMON_STOP_TIMEOUT_MS,
  DAEMON_INVOKE_TIMEOUT_MS,
  CANCEL_WORK_TIME_MS,
  TRANSFER_WORK_TIME_MS,
  INVOKE_TIMEOUT_MAX_MS,
  MAX_TIMER_MS,
  workTime,
  replyTimeout,
};
