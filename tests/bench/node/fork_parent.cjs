'use strict';
/*
 * The floor of the workers benchmark: Node itself as the parent of a worker, doing with
 * child_process.fork() what the daemon does with its own spawn and channel.
 *
 *   node fork_parent.cjs      (commands on stdin, answers on stdout, one JSON line each)
 *
 * Every child is forked exactly as the daemon starts a worker: the same node, file, cwd and
 * environment, `--require preload.cjs`, the IPC channel in JSON mode, stdin from /dev/null,
 * stdout and stderr as pipes that are read, a session of its own. Times are taken here, inside
 * the parent, with process.hrtime, as the benchmark takes the daemon's inside its own loop.
 *
 *   {"op": "spawn", "child": C}     fork, wait for the first message (the preload's "ready"),
 *     -> {"ready_us": N, "stop_us": N}   then disconnect and wait for the exit
 *   {"op": "open", "child": C}      fork the echo child and wait for its first message
 *     -> {"ready_us": N}
 *   {"op": "echo", "count": N, "payload": P}
 *     -> {"samples_us": [...]}      N round trips, one after the other: an invoke of "echo"
 *                                   with [P], answered by a result with the same id
 *   {"op": "close"} -> {"stop_us": N}   disconnect the echo child and wait for its exit
 *
 * where C is {"file", "cwd", "env", "exec_argv"}. Anything that goes wrong ends this process
 * with the reason on stderr.
 */

const { fork } = require('child_process');
const readline = require('readline');

const now = () => process.hrtime.bigint();
const micros = (start) => Number(now() - start) / 1000;

function start(child) {
  const worker = fork(child.file, [], {
    cwd: child.cwd,
    env: child.env,
    execArgv: child.exec_argv,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    serialization: 'json',
    detached: true,
  });
  worker.stdout.resume();
  worker.stderr.resume();
  return worker;
}

function firstMessage(worker) {
  return new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('exit', (code, signal) => reject(new Error(`the child exited (${code ?? signal})`)));
  });
}

function stop(worker) {
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  worker.disconnect();
  return exited;
}

let echoChild = null;
let waiting = null; // {id, resolve} of the round trip under way

function roundTrip(id, payload) {
  return new Promise((resolve) => {
    waiting = { id, resolve };
    echoChild.send({ type: 'invoke', id, method: 'echo', args: [payload] });
  });
}

const commands = {
  async spawn({ child }) {
    const started = now();
    const worker = start(child);
    await firstMessage(worker);
    const ready_us = micros(started);
    const stopping = now();
    await stop(worker);
    return { ready_us, stop_us: micros(stopping) };
  },
  async open({ child }) {
    const started = now();
    echoChild = start(child);
    await firstMessage(echoChild);
    const ready_us = micros(started);
    echoChild.on('message', (message) => {
      if (waiting !== null && message.id === waiting.id) {
        const { resolve } = waiting;
        waiting = null;
        resolve(message.result);
      }
    });
    return { ready_us };
  },
  async echo({ count, payload }) {
    const samples_us = new Array(count);
    for (let index = 0; index < count; index += 1) {
      const started = now();
      await roundTrip(index + 1, payload);
      samples_us[index] = micros(started);
    }
    return { samples_us };
  },
  async close() {
    const stopping = now();
    await stop(echoChild);
    echoChild = null;
    return { stop_us: micros(stopping) };
  },
};

async function main() {
  // One command at a time: the next is read only once this one has been answered.
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const command = JSON.parse(line);
    const answer = await commands[command.op](command);
    process.stdout.write(`${JSON.stringify(answer)}\n`);
  }
}

main().catch((error) => {
  process.stderr.write(`fork_parent.cjs: ${error.stack}\n`);
  process.exit(1);
});
