'use strict';
// CURVE for a client's tcp:// sockets: which keys, and the zeromq.js socket options that use
// them; the same rules as the Python client (clients/python/curve.py, protocol/keys.py).
//
// A daemon serves tcp:// only with CURVE (unless started with --insecure-tcp), so a client
// connecting over TCP needs its own key pair, whose public half is in the daemon's
// curve-clients folder, and the daemon's public key. Each is found the first way that gives it:
// - the client's pair: the `curveSecretKey` option (a `.key_secret` file), else
//   $ASSISTANTD_CURVE_SECRET_KEY, else $XDG_CONFIG_HOME/assistantd/client.key_secret (what
//   `assistantctl keys` makes);
// - the daemon's public key: the `curveServerKey` option, else $ASSISTANTD_SERVER_KEY (each the
//   40-character Z85 key, or the path of the daemon's `server.key`), else
//   $XDG_CONFIG_HOME/assistantd/server.key, else the key of a daemon of this user on this
//   machine (`server.key` in its state dir).
// ipc:// endpoints need none of this (the socket file's permissions protect them).
//
// Key files are in the certificate format of czmq and pyzmq's zmq.auth: `public-key = "Z85"`
// (and `secret-key = "Z85"` in NAME.key_secret), `#` comments. A secret key file must belong to
// this user and be private, as ssh asks of its keys: one that others can read is refused.

const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { UnavailableError } = require('./errors');
const { decodeZ85, encodeZ85 } = require('./z85');

const ENV_SERVER_KEY = 'ASSISTANTD_SERVER_KEY';
const ENV_CLIENT_SECRET_KEY = 'ASSISTANTD_CURVE_SECRET_KEY';
const Z85_KEY_LENGTH = 40;
// PKCS#8 DER of an X25519 private key, up to the 32 raw bytes (RFC 8410): how Node's crypto
// takes a raw key, to derive the public key from the secret one.
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** @typedef {Record<string, string | undefined>} Environment */

/**
 * The zeromq.js socket options of a CURVE client (all Z85), or none (`{}`).
 * @typedef {{ curveServerKey?: string, curvePublicKey?: string, curveSecretKey?: string }} CurveOptions
 */

/** A key file that cannot be used; the message says which and why. */
class KeyFileError extends Error {}

/**
 * Whether a connection to `endpoint` goes through CURVE.
 * @param {string} endpoint
 */
function needsCurve(endpoint) {
  return endpoint.startsWith('tcp://');
}

/**
 * What to add to a "no reply" message: over CURVE, a refused key looks just like silence.
 * @param {string} endpoint
 */
function noReplyHint(endpoint) {
  if (!needsCurve(endpoint)) return '';
  return ' A tcp:// daemon does not answer a client whose key it does not allow: is this ' +
    "client's public key in its curve-clients folder, and the daemon's key the right one?";
}

/**
 * How a client's sockets connect: CURVE on `tcp://` (keys found as this module says, when
 * first needed), nothing on `ipc://`; `insecureTcp` connects over TCP without CURVE, to a
 * daemon started with `--insecure-tcp`.
 */
class ClientSecurity {
  /**
   * @param {{ curveSecretKey?: string | null, curveServerKey?: string | null,
   *           insecureTcp?: boolean, env?: Environment }} [options]
   */
  constructor({ curveSecretKey = null, curveServerKey = null, insecureTcp = false, env } = {}) {
    this.curveSecretKey = curveSecretKey;
    this.curveServerKey = curveServerKey;
    this.insecureTcp = insecureTcp;
    this.env = env;
    /** @type {{ curvePublicKey: string, curveSecretKey: string, curveServerKey: string } | null} */
    this._keys = null;
  }

  /**
   * The options to give a socket before it connects to `endpoint`: CURVE's where it needs
   * them, else none. `UnavailableError` (`curve_key_missing`) when a key cannot be found or
   * used.
   * @param {string} endpoint
   * @returns {CurveOptions}
   */
  socketOptions(endpoint) {
    if (this.insecureTcp || !needsCurve(endpoint)) return {};
    const keys = this.keys();
    return {
      curveServerKey: keys.curveServerKey,
      curvePublicKey: keys.curvePublicKey,
      curveSecretKey: keys.curveSecretKey,
    };
  }

  /** The keys, found once. */
  keys() {
    if (this._keys === null) {
      const env = this.env ?? process.env;
      const [publicKey, secretKey] = clientPair(this.curveSecretKey, env);
      this._keys = {
        curvePublicKey: publicKey,
        curveSecretKey: secretKey,
        curveServerKey: serverKey(this.curveServerKey, env),
      };
    }
    return this._keys;
  }
}

/** @param {string} message */
function missing(message) {
  return new UnavailableError(message, { code: 'curve_key_missing' });
}

/**
 * @param {string | null} given
 * @param {Environment} env
 * @returns {[string, string]}
 */
function clientPair(given, env) {
  let file;
  let source;
  if (given) {
    [file, source] = [given, 'curveSecretKey'];
  } else if (env[ENV_CLIENT_SECRET_KEY]) {
    [file, source] = [/** @type {string} */ (env[ENV_CLIENT_SECRET_KEY]), `$${ENV_CLIENT_SECRET_KEY}`];
  } else {
    file = path.join(configDir(env), 'client.key_secret');
    if (!fs.existsSync(file)) {
      throw missing(
        `A tcp:// endpoint needs this client's CURVE key pair, and there is none at ${file}: ` +
          'make one with `assistantctl keys`, and copy its public key into the daemon\'s ' +
          `curve-clients folder (or name a pair with $${ENV_CLIENT_SECRET_KEY}).`,
      );
    }
    source = 'the default key pair';
  }
  try {
    return readSecretKey(file);
  } catch (error) {
    throw rethrown(error, (message) => `The client's CURVE key pair (${source}) cannot be used: ${message}.`);
  }
}

/**
 * @param {string | null} given
 * @param {Environment} env
 * @returns {string}
 */
function serverKey(given, env) {
  const chosen = given || env[ENV_SERVER_KEY];
  if (chosen) return keyOrFile(chosen);
  const candidates = serverPublicKeyFiles(env);
  for (const file of candidates) {
    if (fs.existsSync(file)) {
      try {
        return readPublicKey(file);
      } catch (error) {
        throw rethrown(error, (message) => `The daemon's public key cannot be used: ${message}.`);
      }
    }
  }
  throw missing(
    `A tcp:// endpoint needs the daemon's public key: set $${ENV_SERVER_KEY} to it (or to its ` +
      `server.key file), or copy that file to ${candidates[0]}. The daemon logs it at start, and ` +
      '`assistantctl keys --server` prints it on the daemon\'s machine.',
  );
}

/**
 * The Z85 key `given` is, or the public key in the file it names.
 * @param {string} given
 */
function keyOrFile(given) {
  try {
    if (fs.existsSync(given)) return readPublicKey(given);
    return parseKey(given, "the daemon's public key");
  } catch (error) {
    throw rethrown(error, (message) => `${message}: give the 40-character key or the path of its file.`);
  }
}

/**
 * A KeyFileError as the UnavailableError a caller gets; anything else as it is.
 * @param {unknown} error
 * @param {(message: string) => string} explain
 */
function rethrown(error, explain) {
  return error instanceof KeyFileError ? missing(explain(error.message)) : error;
}

/**
 * `$XDG_CONFIG_HOME/assistantd`, else `~/.config/assistantd`: a client's keys.
 * @param {Environment} env
 */
function configDir(env) {
  return path.join(xdg(env, 'XDG_CONFIG_HOME') ?? path.join(os.homedir(), '.config'), 'assistantd');
}

/**
 * The daemon's state dir: `$STATE_DIRECTORY` (systemd's; the first of several), else
 * `$XDG_STATE_HOME/assistantd`, else `~/.local/state/assistantd`.
 * @param {Environment} env
 */
function stateDir(env) {
  const systemd = (env.STATE_DIRECTORY ?? '').split(':')[0];
  if (systemd) return systemd;
  return path.join(xdg(env, 'XDG_STATE_HOME') ?? path.join(os.homedir(), '.local', 'state'), 'assistantd');
}

/**
 * Where a client looks for the daemon's public key when not told: a copy in its config dir
 * (from another machine), then the key of a daemon of this user on this machine.
 * @param {Environment} env
 */
function serverPublicKeyFiles(env) {
  return [path.join(configDir(env), 'server.key'), path.join(stateDir(env), 'server.key')];
}

/**
 * @param {Environment} env
 * @param {string} name
 */
function xdg(env, name) {
  const value = env[name];
  return value && value.startsWith('/') ? value : null;
}

/**
 * The (public, secret) Z85 keys of a secret key file; `KeyFileError` for a file that is
 * missing, not private, another user's, or without a valid secret key. The public key is
 * derived from the secret one, so a file whose two keys do not match is refused.
 * @param {string} file
 * @returns {[string, string]}
 */
function readSecretKey(file) {
  const info = statKeyFile(file, 'secret key file');
  const uid = typeof process.getuid === 'function' ? process.getuid() : info.uid;
  if (info.uid !== uid) {
    throw new KeyFileError(`secret key file ${file} belongs to uid ${info.uid}, not to this user (${uid})`);
  }
  const mode = info.mode & 0o777;
  if (mode & 0o077) {
    throw new KeyFileError(
      `secret key file ${file} has mode ${mode.toString(8).padStart(4, '0')}; it must be private: ` +
        `run 'chmod 600 ${file}' (and make a new pair if others may have read it)`,
    );
  }
  const { publicKey, secretKey } = loadCertificate(file);
  if (secretKey === null) throw new KeyFileError(`${file} holds no secret key (is it a public key file?)`);
  const secret = parseKey(secretKey, `the secret key in ${file}`);
  const derived = curvePublic(secret);
  if (publicKey !== derived) throw new KeyFileError(`the public key in ${file} does not belong to its secret key`);
  return [derived, secret];
}

/**
 * The Z85 public key of a key file (public or secret); `KeyFileError` if it has none.
 * @param {string} file
 */
function readPublicKey(file) {
  statKeyFile(file, 'key file');
  return loadCertificate(file).publicKey;
}

/**
 * A Z85 CURVE key, checked; `KeyFileError` naming `what` if it is not one.
 * @param {string} text
 * @param {string} what
 */
function parseKey(text, what) {
  const key = text.trim();
  const bytes = key.length === Z85_KEY_LENGTH ? decodeZ85(key) : null;
  if (bytes === null || bytes.length !== 32) {
    throw new KeyFileError(`${what} is not a CURVE key (${Z85_KEY_LENGTH} characters of Z85)`);
  }
  return key;
}

/**
 * The Z85 public key of a Z85 secret key (X25519, as libsodium's crypto_scalarmult_base).
 * @param {string} secretKey
 */
function curvePublic(secretKey) {
  const secret = /** @type {Buffer} */ (decodeZ85(secretKey));
  const privateKey = crypto.createPrivateKey({
    key: Buffer.concat([X25519_PKCS8_PREFIX, secret]),
    format: 'der',
    type: 'pkcs8',
  });
  const spki = crypto.createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return encodeZ85(spki.subarray(spki.length - 32));
}

/**
 * @param {string} file
 * @param {string} what
 * @returns {fs.Stats}
 */
function statKeyFile(file, what) {
  let info;
  try {
    info = fs.statSync(file);
  } catch (error) {
    const code = /** @type {NodeJS.ErrnoException} */ (error).code;
    if (code === 'ENOENT') throw new KeyFileError(`no ${what} at ${file}`);
    throw new KeyFileError(`cannot read ${what} ${file}: ${code ?? String(error)}`);
  }
  if (!info.isFile()) throw new KeyFileError(`${what} ${file} is not a file`);
  return info;
}

/**
 * The keys of a certificate file, read as pyzmq's zmq.auth.load_certificate reads them: the
 * first `public-key` and `secret-key` lines, their values without quotes.
 * @param {string} file
 * @returns {{ publicKey: string, secretKey: string | null }}
 */
function loadCertificate(file) {
  let text;
  try {
    text = fs.readFileSync(file, 'latin1');
  } catch (error) {
    const code = /** @type {NodeJS.ErrnoException} */ (error).code;
    throw new KeyFileError(`cannot read key file ${file}: ${code ?? String(error)}`);
  }
  /** @type {string | null} */
  let publicKey = null;
  /** @type {string | null} */
  let secretKey = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#')) continue;
    if (publicKey === null && line.startsWith('public-key')) publicKey = valueOf(line);
    if (secretKey === null && line.startsWith('secret-key')) secretKey = valueOf(line);
  }
  if (publicKey === null) throw new KeyFileError(`${file} is not a key file (it has no public-key line)`);
  return { publicKey: parseKey(publicKey, `the public key in ${file}`), secretKey };
}

/** @param {string} line */
function valueOf(line) {
  const equals = line.indexOf('=');
  return equals < 0 ? '' : line.slice(equals + 1).replace(/^[ \t'"]+|[ \t'"]+$/g, '');
}

module.exports = {
  ENV_SERVER_KEY,
  ENV_CLIENT_SECRET_KEY,
  ClientSecurity,
  KeyFileError,
  needsCurve,
  noReplyHint,
  readSecretKey,
  readPublicKey,
  parseKey,
  curvePublic,
  configDir,
  stateDir,
};
