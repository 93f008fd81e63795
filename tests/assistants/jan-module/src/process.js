// Written as a Jan extension's node module: only exports, called by name through
// executeOnMain(module, method, ...args) -- here, invokeAssistant.
const fs = require('fs');

exports.greet = (name) => `Hello, ${name}!`;
exports.add = (a, b) => a + b;
exports.later = async (ms, value) => {
  await new Promise((resolve) => setTimeout(resolve, ms));
  return value;
};
exports.dispose = () => {
  fs.writeFileSync('disposed.txt', 'yes');
};
