'use strict';
// Reading the event stream's messages: `[topic, json]` in, a checked event (or the reason it
// cannot be used) out. Pure functions, no socket. The wire contract is PROTOCOL.md, "Events";
// the field lists below follow protocol/events.py.
//
// Only what the mirror and a frontend rely on is checked (the envelope, `seq`, the ids and the
// fields each topic adds); an assistant object is taken as the daemon sent it once it is an
// object with a string `id`, as its full schema is the daemon's to enforce.

/** @typedef {import('../types/watch').DaemonEvent} DaemonEvent */

const STATE_TOPIC_PREFIX = 'assistant.';
const DAEMON_TOPIC_PREFIX = 'daemon.';

/** @typedef {(value: unknown) => boolean} Check */

/** @type {Check} */
const isString = (value) => typeof value === 'string';
/** @type {Check} */
const isNumber = (value) => typeof value === 'number' && Number.isFinite(value);
/** @type {Check} */
const isInteger = (value) => Number.isSafeInteger(value);
/** @type {Check} */
const isSeq = (value) => Number.isSafeInteger(value) && /** @type {number} */ (value) >= 0;
/** @type {Check} */
const isBoolean = (value) => typeof value === 'boolean';
/** @type {Check} */
const isObject = (value) => typeof value === 'object' && value !== null && !Array.isArray(value);
/** @type {Check} */
const isObjectOrNull = (value) => value === null || isObject(value);
/** @type {Check} */
const isIntegerOrNull = (value) => value === null || isInteger(value);
/** @type {Check} */
const isPresent = (value) => value !== undefined;
/** @type {Check} */
const isCause = (value) => value === 'request' || value === 'file' || value === 'daemon';
/** @type {Check} */
const isAssistant = (value) => isObject(value) && isString(/** @type {any} */ (value).id);

/** @type {Record<string, Check>} */
const ENVELOPE = { epoch: isString, time: isNumber };
/** @type {Record<string, Check>} */
const STATE = { ...ENVELOPE, seq: isSeq, cause: isCause };
/** @type {Record<string, Check>} */
const WORKER = { ...ENVELOPE, assistant_id: isString, pid: isInteger };
/** @type {Record<string, Check>} */
const SEQUENCED = { ...ENVELOPE, seq: isSeq };

/**
 * The fields each topic must carry, and what each must be. A topic not listed here (one a newer
 * daemon adds) is skipped.
 * @type {Record<string, Record<string, Check>>}
 */
const FIELDS = {
  'assistant.created': { ...STATE, assistant: isAssistant },
  'assistant.updated': { ...STATE, assistant: isAssistant },
  'assistant.state': { ...STATE, assistant: isAssistant, previous: isString },
  'assistant.deleted': { ...STATE, assistant_id: isString },
  'assistant.invalid': {
    ...STATE, assistant_id: isString, path: isString, reason: isString, served: isBoolean,
  },
  'worker.message': { ...WORKER, message: isPresent },
  'worker.log': { ...WORKER, stream: isString, line: isString },
  'worker.exited': { ...WORKER, exit: isObject, restart: isBoolean },
  'download.progress': {
    ...ENVELOPE, assistant_id: isString, bytes: isInteger, total: isIntegerOrNull, rate: isNumber,
  },
  'daemon.welcome': { ...SEQUENCED, subscription: isString },
  'daemon.heartbeat': SEQUENCED,
  'daemon.stopping': SEQUENCED,
};

/** Fields that may be left out (the daemon's defaults), and what they must be when present. */
/** @type {Record<string, Record<string, Check>>} */
const OPTIONAL = {
  'assistant.state': { error: isObjectOrNull },
};

/**
 * @typedef {{ ok: true, topic: string, event: DaemonEvent }
 *   | { ok: false, topic: string | null, reason: string }} Decoded
 * What one message holds: a checked event (`topic` is its topic frame), or why it was skipped.
 */

/**
 * Read one message of the event stream.
 *
 * A welcome comes on the prefix of the subscription it answers (its topic frame is that
 * prefix, its JSON says `daemon.welcome` and names the prefix in `subscription`); every other
 * event comes on its own topic.
 *
 * @param {ReadonlyArray<Uint8Array>} frames
 * @returns {Decoded}
 */
function decodeEvent(frames) {
  if (frames.length !== 2) {
    return { ok: false, topic: null, reason: `${frames.length} frames, not [topic, json]` };
  }
  const topic = Buffer.from(frames[0]).toString('utf8');
  let body;
  try {
    body = JSON.parse(Buffer.from(frames[1]).toString('utf8'));
  } catch (error) {
    return { ok: false, topic, reason: `not JSON (${/** @type {Error} */ (error).message})` };
  }
  if (!isObject(body)) return { ok: false, topic, reason: 'not a JSON object' };
  const named = body.topic;
  if (!isString(named)) return { ok: false, topic, reason: 'no `topic` in the JSON' };
  const fields = FIELDS[named];
  if (fields === undefined) return { ok: false, topic, reason: `unknown topic ${JSON.stringify(named)}` };
  const expectedFrame = named === 'daemon.welcome' ? body.subscription : named;
  if (isString(expectedFrame) && expectedFrame !== topic) {
    return {
      ok: false,
      topic,
      reason: `topic frame ${JSON.stringify(topic)} does not match ${JSON.stringify(expectedFrame)}`,
    };
  }
  for (const [name, check] of Object.entries(fields)) {
    if (!check(body[name])) return { ok: false, topic, reason: `${named}: bad or missing \`${name}\`` };
  }
  for (const [name, check] of Object.entries(OPTIONAL[named] || {})) {
    if (name in body && !check(body[name])) {
      return { ok: false, topic, reason: `${named}: bad \`${name}\`` };
    }
  }
  return { ok: true, topic, event: /** @type {DaemonEvent} */ (body) };
}

/**
 * Why a getSnapshot result cannot be used, or null when it can.
 * @param {unknown} value
 * @returns {string | null}
 */
function snapshotProblem(value) {
  if (!isObject(value)) return 'the snapshot is not an object';
  const snapshot = /** @type {Record<string, unknown>} */ (value);
  if (!isString(snapshot.epoch)) return 'the snapshot has no `epoch`';
  if (!isSeq(snapshot.seq)) return 'the snapshot has no `seq`';
  const { assistants, invalid } = snapshot;
  if (!Array.isArray(assistants) || !assistants.every(isAssistant)) {
    return 'the snapshot has no list of `assistants`';
  }
  if (!Array.isArray(invalid) || !invalid.every((one) => isObject(one) && isString(one.assistant_id))) {
    return 'the snapshot has no list of `invalid` files';
  }
  return null;
}

/**
 * Whether a topic is a state event's (it carries `seq`, and the mirror applies it).
 * @param {string} topic
 */
function isStateTopic(topic) {
  return topic.startsWith(STATE_TOPIC_PREFIX);
}

module.exports = {
  STATE_TOPIC_PREFIX,
  DAEMON_TOPIC_PREFIX,
  decodeEvent,
  snapshotProblem,
  isStateTopic,
};
