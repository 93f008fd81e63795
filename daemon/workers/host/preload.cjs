'use strict';
/*
 * The preload for an assistant's own code: the daemon runs `node --require <this> src/process.js`
 * (never through NODE_OPTIONS, so the worker's own children do not inherit it), with Node's IPC
 * channel and the assistant's folder as cwd. The file runs as the main module, exactly as under
 * `node src/process.js` or Electron's fork/utilityProcess: `require.main === module`,
 * `process.argv[1]` is the file, ESM stays ESM.
 *
 * It does two things:
 *
 * 1. It gives the code `process.parentPort`, as Electron's utility process has it (parentport.cjs).
 *
 * 2. Once the main module has been evaluated (top-level await included), it tells the daemon the
 *    worker is up, and picks the style the code is written in:
 *
 *    - Jan module style: the module exports at least one function and listens to no messages
 *      itself. The preload then serves the daemon's invokes against its exports and calls its
 *      dispose() on stop (serve.cjs, which sends {"type": "ready", "style": "module",
 *      "methods": [...]}).
 *    - Otherwise fork / utilityProcess style: the code talks for itself (process.send,
 *      process.on('message'), process.parentPort). The preload sends
 *      {"type": "ready", "style": "process", "methods": []} and does nothing more.
 *
 * "Evaluated" is found from the first turn of the event loop. A CommonJS main has been
 * evaluated synchronously before it, and Node keeps it as process.mainModule (this file's own
 * require.main was fixed before there was a main). An ES module main (.mjs, "type": "module",
 * or ESM syntax Node detected in a .js) has no process.mainModule; import() of its URL hands
 * back the instance Node is evaluating, once that evaluation (top-level await included) is
 * done. Never require() it: with require(esm) (Node 20.19+, 22.12+) that throws while Node is
 * still loading the main ("not yet fully loaded"), and the worker would never say it is up.
 * A main module that throws while loading ends the process before the preload says anything:
 * the daemon sees an exit before "ready", with Node's report on stderr.
 */

require('./parentport.cjs');

const path = require('path');
const { pathToFileURL } = require('url');
const { serve } = require('./serve.cjs');

function loaded(file) {
  const main = process.mainModule; // set by Node for a CommonJS main only
  if (main !== undefined && main !== null) return Promise.resolve(main.exports);
  return import(pathToFileURL(file).href);
}

function exportsFunctions(module) {
  const candidates = [module];
  if (module !== null && typeof module === 'object' && Object.hasOwn(module, 'default')) {
    candidates.push(module.default); // ESM's `export default {...}`
  }
  return candidates.some(
    (object) =>
      object !== null &&
      (typeof object === 'object' || typeof object === 'function') &&
      Object.keys(object).some((key) => typeof object[key] === 'function'),
  );
}

const main = process.argv[1] === undefined ? undefined : path.resolve(process.argv[1]);

if (main !== undefined && typeof process.send === 'function') {
  setImmediate(() => {
    loaded(main).then(
      (module) => {
        if (!process.connected) return;
        if (exportsFunctions(module) && process.listenerCount('message') === 0) {
          serve(module, 'module');
        } else {
          process.send({ type: 'ready', style: 'process', methods: [] }, undefined, undefined, () => {});
        }
      },
      () => {}, // Node reports the main module's own failure, and exits
    );
  });
}
