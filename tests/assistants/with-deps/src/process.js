// Needs an npm package: the daemon runs `npm install --omit=dev` before the first start.
const shout = require('shout');

exports.shout = (text) => shout(text);
