'use strict';
/*
 * Preload shim for Electron utilityProcess-style worker code, passed as `node --require <this>`
 * (never through NODE_OPTIONS, so the worker's own children do not inherit it).
 *
 * It defines `process.parentPort` as Electron's utility process has it, over Node's own IPC
 * channel to the daemon:
 *
 *   process.parentPort.on('message', (e) => e.data)   // e is {data, ports: []}, Electron's
 *                                                     // MessageEvent shape
 *   process.parentPort.once / off / removeListener / removeAllListeners (an EventEmitter)
 *   process.parentPort.postMessage(message)           // -> process.send(message)
 *   process.parentPort.start()                        // a no-op, for compatibility
 *
 * Fork-style code (process.on('message') / process.send()) works as before: the shim adds its
 * own listener to `process` only while `parentPort` has 'message' listeners, so a worker that
 * listens to neither exits when it has nothing left to do, exactly as without the shim, and
 * one that uses both styles gets every message in both.
 *
 * postMessage is fire and forget, as in Electron: once the channel is closed a message is
 * dropped instead of raising ERR_IPC_CHANNEL_CLOSED as an 'error' on `process`. A message that
 * JSON cannot hold (a BigInt, a circular object) still throws at the call, as process.send does.
 */

const { EventEmitter } = require('events');

if (process.parentPort === undefined) {
  const port = new EventEmitter();
  const relay = (message) => port.emit('message', { data: message, ports: [] });
  let relaying = false;

  port.on('newListener', (event) => {
    if (event === 'message' && !relaying) {
      relaying = true;
      process.on('message', relay);
    }
  });
  port.on('removeListener', (event) => {
    if (event === 'message' && relaying && port.listenerCount('message') === 0) {
      relaying = false;
      process.removeListener('message', relay);
    }
  });

  port.postMessage = function postMessage(message) {
    if (typeof process.send !== 'function' || !process.connected) return;
    process.send(message, undefined, undefined, () => {});
  };
  port.start = function start() {};

  Object.defineProperty(process, 'parentPort', {
    value: port,
    enumerable: false,
    configurable: true,
    writable: false,
  });
}
