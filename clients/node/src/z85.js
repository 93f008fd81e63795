'use strict';
// Z85 (ZeroMQ RFC 32), the text form of CURVE keys: 4 bytes as 5 characters, big-endian base 85.

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';
const VALUES = new Map([...ALPHABET].map((character, index) => [character, index]));

/**
 * The bytes a Z85 text stands for, or null when it is not Z85 (a length that is not a
 * multiple of 5, a character outside the alphabet, a group over 2^32 - 1).
 * @param {string} text
 * @returns {Buffer | null}
 */
function decodeZ85(text) {
  if (text.length % 5 !== 0) return null;
  const bytes = Buffer.alloc((text.length / 5) * 4);
  for (let group = 0; group < text.length / 5; group++) {
    let value = 0;
    for (let i = 0; i < 5; i++) {
      const digit = VALUES.get(text[group * 5 + i]);
      if (digit === undefined) return null;
      value = value * 85 + digit;
    }
    if (value > 0xffffffff) return null;
    bytes.writeUInt32BE(value, group * 4);
  }
  return bytes;
}

/**
 * The Z85 text of `bytes` (a multiple of 4 long).
 * @param {Uint8Array} bytes
 * @returns {string}
 */
function encodeZ85(bytes) {
  if (bytes.length % 4 !== 0) throw new RangeError('Z85 encodes a multiple of 4 bytes');
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  let text = '';
  for (let offset = 0; offset < view.length; offset += 4) {
    let value = view.readUInt32BE(offset);
    let group = '';
    for (let i = 0; i < 5; i++) {
      group = ALPHABET[value % 85] + group;
      value = Math.floor(value / 85);
    }
    text += group;
  }
  return text;
}

module.exports = { decodeZ85, encodeZ85 };
