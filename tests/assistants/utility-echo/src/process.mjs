// Written for Electron's utilityProcess: process.parentPort, and MessageEvent-like events.
process.parentPort.on('message', (event) => {
  process.parentPort.postMessage({ echo: event.data, ports: event.ports.length });
});
