'use strict';
// The one check of every options object the package takes: a misspelt option is a TypeError,
// never dropped quietly (as the daemon refuses unknown params).

const { isObject } = require('./transport');

/**
 * A TypeError for an options object that is not one, or has keys it does not take.
 * @example checkKeys({ prefx: 'worker.' }, ['prefix'], 'watch option') // TypeError: unknown watch option 'prefx'; known: prefix
 * @param {unknown} options
 * @param {readonly string[]} known
 * @param {string} what
 */
function checkKeys(options, known, what) {
  if (!isObject(options)) throw new TypeError(`${what}s must be an object`);
  const unknown = Object.keys(options).filter((key) => !known.includes(key));
  if (unknown.length > 0) {
    throw new TypeError(`unknown ${what}${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')}; ` +
      `known: ${known.join(', ')}`);
  }
}

module.exports = { checkKeys };
