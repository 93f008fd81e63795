'use strict';
/*
 * The host for Jan module-style worker code: `node module-host.cjs <path-to-module>`, started by
 * the daemon with Node's IPC channel and the assistant's folder as cwd.
 *
 * The module only exports functions (sync or async); the daemon calls them by name, as Jan's
 * executeOnMain(module, method, ...args) does, with the invoke protocol described in serve.cjs.
 * Its exported dispose(), if any, is called when the daemon asks (a "dispose" message) and when
 * the channel closes.
 *
 * Loading: a .mjs file is imported as ESM; anything else is require()d, and imported as ESM
 * when require() refuses it for being ESM (a .js file under "type": "module" in Node 20;
 * ERR_REQUIRE_ASYNC_MODULE for one with top-level await in Nodes that require() ESM).
 */

const path = require('path');
const { pathToFileURL } = require('url');
const { serve } = require('./serve.cjs');

const ESM_REFUSALS = new Set(['ERR_REQUIRE_ESM', 'ERR_REQUIRE_ASYNC_MODULE']);

async function load(given) {
  if (given === undefined) throw new Error('usage: node module-host.cjs <path-to-module>');
  const file = path.resolve(given);
  const url = pathToFileURL(file).href;
  if (file.endsWith('.mjs')) return import(url);
  try {
    return require(file);
  } catch (thrown) {
    if (thrown && ESM_REFUSALS.has(thrown.code)) return import(url);
    throw thrown;
  }
}

serve(load(process.argv[2]));
