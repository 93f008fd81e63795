'use strict';
/*
 * The Node side of the Node client benchmark: round trips timed inside Node, in blocks that
 * alternate between three measures, the first going first in turn.
 *
 *   node client_roundtrip.cjs PACKAGE_DIR DAEMON_ENDPOINT ECHO_ENDPOINT ROUNDS PER_ROUND
 *     -> one JSON line on stdout: {"bare_echo": [[us...]...], "client_echo": [...], "client_daemon": [...]}
 *
 * - bare_echo: a bare zeromq.js Request sending a pre-encoded getAssistant to the pyzmq echo
 *   floor and reading the reply frame (not decoded): the least a Node program pays.
 * - client_echo: AssistantdClient.getAssistant("jan") against the same echo (the client's own
 *   cost: encoding, the id match, JSON.parse of the reply, its timer).
 * - client_daemon: AssistantdClient.getAssistant("jan") against the daemon.
 */

const path = require('path');

async function main() {
  const [packageDir, daemonEndpoint, echoEndpoint, rounds, perRound] = process.argv.slice(2);
  const zmq = require(path.join(packageDir, 'node_modules', 'zeromq'));
  const { AssistantdClient } = require(packageDir);
  const request = Buffer.from(JSON.stringify(
    { id: 1, method: 'getAssistant', params: { assistant_id: 'jan' } }));

  const bare = new zmq.Request({ linger: 0, receiveTimeout: 10_000 });
  bare.connect(echoEndpoint);
  const toEcho = new AssistantdClient({ command: echoEndpoint });
  const toDaemon = new AssistantdClient({ command: daemonEndpoint });

  const now = () => process.hrtime.bigint();
  const block = async (once) => {
    const samples = new Array(Number(perRound));
    for (let i = 0; i < samples.length; i++) {
      const start = now();
      await once();
      samples[i] = Number(now() - start) / 1000;
    }
    return samples;
  };
  const measures = {
    bare_echo: async () => { await bare.send(request); await bare.receive(); },
    client_echo: () => toEcho.getAssistant('jan'),
    client_daemon: () => toDaemon.getAssistant('jan'),
  };
  const names = Object.keys(measures);
  for (const name of names) await block(measures[name]); // warm up every path first
  const results = Object.fromEntries(names.map((name) => [name, []]));
  for (let round = 0; round < Number(rounds); round++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(round + k) % names.length];
      results[name].push(await block(measures[name]));
    }
  }
  bare.close();
  toEcho.close();
  toDaemon.close();
  process.stdout.write(`${JSON.stringify(results)}\n`);
}

main().catch((error) => {
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
