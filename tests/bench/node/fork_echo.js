'use strict';
/*
 * The benchmark's fork-style worker (copied into a temp assistant as src/process.js): it listens
 * to messages itself, so the preload says {"type": "ready", "style": "process"} for it, and it
 * answers each invoke with its first argument, in the shape of the invoke protocol (serve.cjs)
 * so that the daemon's WorkerProcess.invoke can wait for the answer as it does for any worker.
 * The Node floor (fork_parent.cjs) forks this very file and sends it the very same messages.
 */

process.on('message', (message) => {
  process.send({ type: 'result', id: message.id, result: message.args[0] });
});
