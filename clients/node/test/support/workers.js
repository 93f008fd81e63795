'use strict';
// Assistants with worker code, and a daemon config whose [workers] timeouts are short (as the
// Python end-to-end tests have them: tests/e2e/workers.py), so that a worker that must be
// stopped or that fails costs a second, not minutes.

const fs = require('node:fs');
const path = require('node:path');
const { shortDir } = require('./daemon');

const FAST_WORKERS = {
  'start-timeout': 20,
  'stop-timeout': 1,
  'invoke-timeout': 5,
  'restart-limit': 2,
  'restart-window': 60,
  'backoff-initial': 0.02,
  'backoff-max': 0.2,
  'stable-after': 30,
  'install-timeout': 60,
};

/**
 * A config file with FAST_WORKERS, and `extra` lines at its top (`command = "tcp://..."`);
 * its path.
 * @param {string[]} [extra]
 */
function writeConfig(extra = []) {
  const file = path.join(shortDir('adn-conf-'), 'assistantd.toml');
  const workers = Object.entries(FAST_WORKERS).map(([key, value]) => `${key} = ${value}`);
  fs.writeFileSync(file, [...extra, '', '[workers]', ...workers, ''].join('\n'));
  return file;
}

/**
 * An assistant folder `<root>/<id>` with `assistant.json` and, if given, `src/process.js`;
 * made beside the root and renamed in, so a daemon watching the root never sees it half made.
 * @param {string} root
 * @param {string} id
 * @param {string} [code]
 */
function writeAssistant(root, id, code) {
  const staging = path.join(path.dirname(root), `.making-${id}-${process.pid}`);
  fs.mkdirSync(staging);
  fs.writeFileSync(path.join(staging, 'assistant.json'), JSON.stringify({ name: `Test ${id}`, model: '*', created_at: 1_700_000_000 }));
  if (code !== undefined) {
    fs.mkdirSync(path.join(staging, 'src'));
    fs.writeFileSync(path.join(staging, 'src', 'process.js'), code);
  }
  fs.renameSync(staging, path.join(root, id));
  return path.join(root, id);
}

module.exports = { FAST_WORKERS, writeConfig, writeAssistant };
