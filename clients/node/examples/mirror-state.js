'use strict';
// An Electron-style main process, in plain Node: it mirrors the daemon's state with
// `client.watch()` and prints one line per change (`jan ready -> running`), until SIGINT or
// SIGTERM, on which it closes its sockets and exits 0.
//
//   ASSISTANTD_RUNTIME_DIR=/run/user/1000/assistantd node examples/mirror-state.js
//
// In Electron the same code runs in the main process, and the renderer gets the mirror over
// IPC, as plain data (`watch.toJSON()` is getSnapshot's shape):
//
//   // main.js
//   const { app, BrowserWindow, ipcMain } = require('electron');
//   ipcMain.handle('assistants:get', () => watch.toJSON());        // the first render
//   watch.on('change', () => win.webContents.send('assistants:changed', watch.toJSON()));
//   app.on('before-quit', () => { watch.close(); client.close(); });
//
//   // renderer (with ipcRenderer exposed by the preload script)
//   render(await ipcRenderer.invoke('assistants:get'));
//   ipcRenderer.on('assistants:changed', (_event, state) => render(state));

const { AssistantdClient } = require('assistantd-client');

/** @typedef {import('assistantd-client').Watch} Watch */
/** @typedef {import('../types/watch').MirrorChange} MirrorChange */

/**
 * One line per assistant or file problem that changed.
 * @param {MirrorChange} change
 * @returns {string[]}
 */
function describe(change) {
  const lines = [];
  for (const { id, before, after } of change.assistants) {
    if (before === undefined && after !== undefined) lines.push(`${id} created (${after.state})`);
    else if (after === undefined) lines.push(`${id} deleted`);
    else if (before !== undefined && before.state !== after.state) lines.push(`${id} ${before.state} -> ${after.state}`);
    else lines.push(`${id} updated`);
  }
  for (const { id, after } of change.invalid) {
    if (after !== undefined) lines.push(`${id} invalid: ${after.reason}`);
    else if (change.assistants.every((one) => one.id !== id)) lines.push(`${id} file fixed`);
  }
  return lines;
}

async function main() {
  const client = new AssistantdClient(); // the daemon of this user, found as the CLI finds it
  /** @type {Watch} */
  let watch;
  try {
    // `daemon.` passes on `daemon.stopping` (welcomes and heartbeats are used up inside); the
    // state comes through 'change' whatever the prefix.
    watch = client.watch({ prefix: 'daemon.' });
  } catch (error) {
    console.error(`cannot watch the daemon: ${/** @type {Error} */ (error).message}`); // none runs
    client.close();
    process.exitCode = 1;
    return;
  }

  watch.on('change', (change) => {
    if (change.source.topic === 'client.synced') {
      const { assistants, invalid } = watch.toJSON();
      console.log(`synced (${change.source.reason}): ${assistants.length} assistants, ${invalid.length} invalid`);
      if (change.source.reason === 'start') return; // the whole state: nothing changed yet
    }
    for (const line of describe(change)) console.log(line);
    // Electron: win.webContents.send('assistants:changed', watch.toJSON());
  });
  watch.on('event', (event) => {
    if (event.topic === 'daemon.stopping') console.log('the daemon stopped; waiting for it to come back');
  });

  let stopping = false;
  /** @param {number} code */
  const shutdown = async (code) => {
    if (stopping) return;
    stopping = true;
    await watch.close();
    client.close();
    process.exitCode = code; // nothing is left open: the process ends by itself
  };
  watch.on('error', (error) => {
    console.error(`the watch stopped: ${error.message}`);
    void shutdown(1);
  });
  process.once('SIGINT', () => void shutdown(0));
  process.once('SIGTERM', () => void shutdown(0));

  const started = await watch.ready().then(() => true, () => false); // a failure: see 'error'
  if (started) console.log(`mirroring epoch ${watch.state.epoch}`);
}

void main();
