// Written for child_process.fork(): the parent's messages arrive on process.on('message'),
// and process.send() answers.
process.on('message', (message) => {
  if (message && typeof message.ping === 'number') {
    process.send({ pong: message.ping });
  } else if (message && message.type === 'invoke' && message.method === 'upper') {
    // This code answers invokes itself (see PROTOCOL.md, "Workers").
    process.send({ type: 'result', id: message.id, result: String(message.args[0]).toUpperCase() });
  }
});
process.send({ hello: 'fork-echo is up' });
