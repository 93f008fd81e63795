'use strict';
// AssistantdClient: one promise-returning method per command of the protocol (PROTOCOL.md,
// "Methods"), over the transport's DEALER socket. Params go out under the protocol's own
// snake_case names; results come back as the plain JSON objects the daemon sends.

const path = require('node:path');
const { ClientSecurity } = require('./curve');
const { commandEndpoint, eventsEndpoint } = require('./discovery');
const { checkKeys } = require('./options');
const { Transport, DEFAULT_RETRIES, DEFAULT_TIMEOUT_MS, isObject } = require('./transport');

/** @typedef {import('../types/protocol').Methods} Methods */
/** @typedef {import('../types/protocol').Assistant} Assistant */
/** @typedef {import('../types/protocol').AssistantList} AssistantList */
/** @typedef {import('../types/protocol').CreateAssistantParams} CreateAssistantParams */
/** @typedef {import('../types/protocol').DeletedAssistant} DeletedAssistant */
/** @typedef {import('../types/protocol').ExportResult} ExportResult */
/** @typedef {import('../types/protocol').ListAssistantsParams} ListAssistantsParams */
/** @typedef {import('../types/protocol').PingResult} PingResult */
/** @typedef {import('../types/protocol').SentMessage} SentMessage */
/** @typedef {import('../types/protocol').Snapshot} Snapshot */
/** @typedef {Omit<import('../types/protocol').ModifyAssistantParams, 'assistant_id'>} AssistantFields */

/**
 * @typedef {object} ClientOptions
 * @property {string} [command] the command endpoint (`ipc://...`, `tcp://...`); found as
 *   PROTOCOL.md "Finding the daemon" says when not given
 * @property {string} [events] the events endpoint, for `watch()`; `events.sock` in the same
 *   runtime dir when not given
 * @property {string} [runtimeDir] the daemon's runtime dir, where both sockets are
 * @property {number} [timeout] ms to wait for a reply (10 s; at most 2^31-1, what a timer
 *   holds), on top of the daemon's own time for slow work (an invoke's `timeout_ms`, a start, ...)
 * @property {number} [retries] times a read (ping, listAssistants, getAssistant, getSnapshot)
 *   that got no reply in time is sent again, on a fresh socket (2)
 * @property {string} [curveSecretKey] this client's CURVE key pair (a `.key_secret` file), for tcp://
 * @property {string} [curveServerKey] the daemon's public key (Z85, or its `server.key` file)
 * @property {boolean} [insecureTcp] tcp:// without CURVE (a daemon started with --insecure-tcp)
 */

/** @typedef {{ timeout?: number }} CallOptions */

const CLIENT_OPTIONS = ['command', 'events', 'runtimeDir', 'timeout', 'retries', 'curveSecretKey',
  'curveServerKey', 'insecureTcp'];

/**
 * Talks to an assistantd daemon. Every method returns a promise; calls may overlap (replies
 * are matched to calls by id). `close()` it when done: its socket keeps the process alive.
 *
 * @example
 *   const { AssistantdClient } = require('assistantd-client');
 *   const client = new AssistantdClient();          // the daemon of this user, found as usual
 *   try {
 *     const page = await client.listAssistants({ limit: 5 });
 *     console.log(page.data.map((assistant) => assistant.id));
 *   } finally {
 *     client.close();
 *   }
 *
 * A call with no reply within `timeout` ms (plus what the daemon may take by its own rules)
 * rejects with `UnavailableError` (`timeout`); the next call opens a fresh socket. Reads are
 * sent again first, `retries` times; a write never is (it may have been carried out). Errors
 * the daemon answers with reject as `AssistantdError` subclasses carrying its error object.
 */
class AssistantdClient {
  /** @param {ClientOptions} [options] */
  constructor(options = {}) {
    checkKeys(options, CLIENT_OPTIONS, 'AssistantdClient option');
    const {
      command, events, runtimeDir, timeout = DEFAULT_TIMEOUT_MS, retries = DEFAULT_RETRIES,
      curveSecretKey, curveServerKey, insecureTcp = false,
    } = options;
    /** @private */
    this._security = new ClientSecurity({ curveSecretKey, curveServerKey, insecureTcp });
    /** The command endpoint this client sends to. */
    this.endpoint = commandEndpoint({ command, runtimeDir });
    /** The event endpoint `watch()` subscribes to. */
    this.eventsEndpoint = eventsEndpoint({ events, runtimeDir });
    /** @private */
    this._transport = new Transport({ endpoint: this.endpoint, security: this._security, timeout, retries });
  }

  /** Milliseconds a call waits for its reply (beyond the daemon's own time for slow work). */
  get timeout() {
    return this._transport.timeout;
  }

  /** Whether `close()` was called. */
  get closed() {
    return this._transport.closed;
  }

  /**
   * Close the socket; calls still waiting reject with `UnavailableError` (`client_closed`).
   * Watches made by `watch()` have sockets of their own and are closed on their own.
   */
  close() {
    this._transport.close();
  }

  /**
   * Send any method with raw params (snake_case, as on the wire); its result as plain JSON.
   * @param {string} method
   * @param {Record<string, unknown>} [params]
   * @param {CallOptions} [options]
   * @returns {Promise<any>}
   */
  async request(method, params = {}, options = {}) {
    return this._transport.request(method, params, callOptions(options));
  }

  /**
   * The daemon's version, protocol version, epoch and uptime.
   * @param {CallOptions} [options]
   * @returns {Promise<PingResult>}
   */
  async ping(options) {
    return this._call('ping', {}, options);
  }

  /**
   * One page of assistants: `limit` (1..100, 20), `order` (`desc`), `after` or `before` (an id).
   * @param {ListAssistantsParams} [query]
   * @param {CallOptions} [options]
   * @returns {Promise<AssistantList>}
   */
  async listAssistants(query = {}, options) {
    return this._call('listAssistants', { ...objectOf(query, 'listAssistants query') }, options);
  }

  /**
   * Every assistant, page by page with `after`.
   * @example for await (const assistant of client.iterAssistants()) console.log(assistant.id);
   * @param {{ order?: 'asc' | 'desc', pageSize?: number }} [query]
   * @param {CallOptions} [options]
   * @returns {AsyncGenerator<Assistant, void, undefined>}
   */
  async * iterAssistants(query = {}, options) {
    checkKeys(query, ['order', 'pageSize'], 'iterAssistants option');
    const { order = 'desc', pageSize = 100 } = query;
    /** @type {string | undefined} */
    let after;
    for (;;) {
      const page = await this.listAssistants({ limit: pageSize, order, ...(after === undefined ? {} : { after }) }, options);
      yield * page.data;
      if (!page.has_more || page.last_id === null) return;
      after = page.last_id;
    }
  }

  /**
   * The assistant; `NotFoundError` (404, `not_found`) when there is none.
   * @param {string} assistantId
   * @param {CallOptions} [options]
   * @returns {Promise<Assistant>}
   */
  async getAssistant(assistantId, options) {
    return this._call('getAssistant', { assistant_id: assistantId }, options);
  }

  /**
   * A new assistant with these fields (OpenAI's and Jan's; none is required). `id` names its
   * folder instead of a random `asst_...` (`ConflictError`, `id_taken`, if it exists).
   * @param {CreateAssistantParams} [fields]
   * @param {CallOptions} [options]
   * @returns {Promise<Assistant>}
   */
  async createAssistant(fields = {}, options) {
    return this._call('createAssistant', { ...objectOf(fields, 'createAssistant fields') }, options);
  }

  /**
   * Change these fields of the assistant (the others are kept; `null` clears one).
   * @param {string} assistantId
   * @param {AssistantFields} fields
   * @param {CallOptions} [options]
   * @returns {Promise<Assistant>}
   */
  async modifyAssistant(assistantId, fields, options) {
    const given = objectOf(fields, 'modifyAssistant fields');
    return this._call('modifyAssistant', { ...given, assistant_id: assistantId }, options);
  }

  /**
   * Delete the assistant (its worker is stopped first); `jan` cannot be deleted (403).
   * @param {string} assistantId
   * @param {CallOptions} [options]
   * @returns {Promise<DeletedAssistant>}
   */
  async deleteAssistant(assistantId, options) {
    return this._call('deleteAssistant', { assistant_id: assistantId }, options);
  }

  /**
   * Every assistant and every invalid file, as of the `seq` it carries.
   * @param {CallOptions} [options]
   * @returns {Promise<Snapshot>}
   */
  async getSnapshot(options) {
    return this._call('getSnapshot', {}, options);
  }

  /**
   * Start the assistant's worker; the assistant, `running`, once the worker is up.
   * @param {string} assistantId
   * @param {CallOptions} [options]
   * @returns {Promise<Assistant>}
   */
  async startAssistant(assistantId, options) {
    return this._call('startAssistant', { assistant_id: assistantId }, options);
  }

  /**
   * Stop the worker and whatever it started; the assistant, `ready`.
   * @param {string} assistantId
   * @param {CallOptions} [options]
   * @returns {Promise<Assistant>}
   */
  async stopAssistant(assistantId, options) {
    return this._call('stopAssistant', { assistant_id: assistantId }, options);
  }

  /**
   * Stop the worker (if it runs), then start it; the assistant, `running`.
   * @param {string} assistantId
   * @param {CallOptions} [options]
   * @returns {Promise<Assistant>}
   */
  async restartAssistant(assistantId, options) {
    return this._call('restartAssistant', { assistant_id: assistantId }, options);
  }

  /**
   * Call `method` of the assistant's worker with `args`; what it returned (JSON).
   * @example await client.invokeAssistant('jan', 'ping') // 'pong'
   *
   * `timeoutMs` bounds the call in the daemon (its `invoke-timeout`, 60 s, when not given);
   * this client waits that long plus its `timeout`. A method that throws rejects with
   * `WorkerError` (502, the worker's error in `details`); no answer in time,
   * `GatewayTimeoutError` (504); no such method, `NotFoundError` (`method_not_found`); an
   * assistant that is not running, `ConflictError` (`assistant_not_running`). Never sent twice.
   * @param {string} assistantId
   * @param {string} method
   * @param {unknown[]} [args]
   * @param {{ timeoutMs?: number } & CallOptions} [options]
   * @returns {Promise<unknown>}
   */
  async invokeAssistant(assistantId, method, args = [], options = {}) {
    checkKeys(options, ['timeoutMs', 'timeout'], 'invokeAssistant option');
    const { timeoutMs, ...rest } = options;
    /** @type {Record<string, unknown>} */
    const params = { assistant_id: assistantId, method, args };
    if (timeoutMs !== undefined) params.timeout_ms = timeoutMs;
    const reply = await this._call('invokeAssistant', params, rest);
    return reply.result;
  }

  /**
   * Hand `message` (JSON) to the worker, which gets it as it is (no answer).
   * @param {string} assistantId
   * @param {unknown} message
   * @param {CallOptions} [options]
   * @returns {Promise<SentMessage>}
   */
  async sendToAssistant(assistantId, message, options) {
    return this._call('sendToAssistant', { assistant_id: assistantId, message }, options);
  }

  /**
   * Register an assistant to be downloaded from `url` and start the download; the assistant,
   * `downloading`, at once. `download.progress` events follow it (see `watch()`), and an
   * `assistant.state` event tells how it ended. `sha256` (hex) must match the body; with
   * `start` the worker is started once it is in place; `assistantId` names it (and alone,
   * downloads a `to_download` assistant again).
   * @param {{ url?: string, sha256?: string, assistantId?: string, start?: boolean }} source
   * @param {CallOptions} [options]
   * @returns {Promise<Assistant>}
   */
  async downloadAssistant(source, options) {
    checkKeys(source, ['url', 'sha256', 'assistantId', 'start'], 'downloadAssistant option');
    const { url, sha256, assistantId, start } = source;
    /** @type {Record<string, unknown>} */
    const params = {};
    if (url !== undefined) params.url = url;
    if (sha256 !== undefined) params.sha256 = sha256;
    if (assistantId !== undefined) params.assistant_id = assistantId;
    if (start !== undefined) params.start = start;
    return this._call('downloadAssistant', params, options);
  }

  /**
   * Stop the assistant's download; the assistant, back to `to_download`, once it has ended.
   * @param {string} assistantId
   * @param {CallOptions} [options]
   * @returns {Promise<Assistant>}
   */
  async cancelDownload(assistantId, options) {
    return this._call('cancelDownload', { assistant_id: assistantId }, options);
  }

  /**
   * Copy an assistant in from `path` (a folder, a `.zip` or `.tar.gz`, or an
   * `assistant.json`; a relative path is taken from this process's working directory); the
   * assistant, `ready`. Its id is `assistantId`, else the definition's, else the file's name.
   * @param {string} source
   * @param {{ assistantId?: string } & CallOptions} [options]
   * @returns {Promise<Assistant>}
   */
  async importAssistant(source, options = {}) {
    checkKeys(options, ['assistantId', 'timeout'], 'importAssistant option');
    const { assistantId, ...rest } = options;
    /** @type {Record<string, unknown>} */
    const params = { path: absolute(source) };
    if (assistantId !== undefined) params.assistant_id = assistantId;
    return this._call('importAssistant', params, rest);
  }

  /**
   * Write the assistant's folder (without `node_modules`) to `path`, a `.zip` or a
   * `.tar.gz`/`.tgz` by its extension, which must not exist (a relative path is taken from
   * this process's working directory).
   * @param {string} assistantId
   * @param {string} target
   * @param {CallOptions} [options]
   * @returns {Promise<ExportResult>}
   */
  async exportAssistant(assistantId, target, options) {
    return this._call('exportAssistant', { assistant_id: assistantId, path: absolute(target) }, options);
  }

  /**
   * The events and a mirror of the daemon's state (the Clone pattern): see `Watch`.
   * @param {import('../types/watch').WatchOptions} [options] the Watch's options (`prefix`,
   *   `startTimeout`, `heartbeatInterval`); any other is a TypeError
   * @returns {import('./watch').Watch}
   */
  watch(options = {}) {
    // Required here, not at the top: a client that never watches does not load it.
    const { Watch, WATCH_OPTIONS } = require('./watch');
    checkKeys(options, WATCH_OPTIONS, 'watch option');
    return new Watch({
      // As long as a reply may take: the first snapshot is a reply (the Python client's rule).
      startTimeout: this.timeout,
      ...options,
      endpoint: this.eventsEndpoint,
      socketOptions: this._security.socketOptions(this.eventsEndpoint),
      getSnapshot: (snapshotOptions) => this._watchSnapshot(snapshotOptions),
    });
  }

  /**
   * The getSnapshot of a watch. With a `timeout` (the first snapshot, due within what is left
   * of the start timeout) it is sent once and waited for that long: a retry would run past the
   * start timeout. Later ones are reads like any other, retries and all.
   * @param {{ timeout?: number }} [options]
   * @returns {Promise<Snapshot>}
   * @private
   */
  async _watchSnapshot(options) {
    if (options?.timeout === undefined) return this.getSnapshot();
    return /** @type {Promise<Snapshot>} */ (
      this._transport.request('getSnapshot', {}, { timeout: options.timeout, retries: 0 }));
  }

  /**
   * @template {keyof Methods} M
   * @param {M} method
   * @param {Record<string, unknown>} params
   * @param {CallOptions | undefined} options
   * @returns {Promise<Methods[M]['result']>}
   * @private
   */
  async _call(method, params, options) {
    return /** @type {Promise<Methods[M]['result']>} */ (this._transport.request(method, params, callOptions(options)));
  }
}

/**
 * @param {CallOptions | undefined} options
 * @returns {CallOptions}
 */
function callOptions(options) {
  if (options === undefined) return {};
  checkKeys(options, ['timeout'], 'call option');
  return options.timeout === undefined ? {} : { timeout: options.timeout };
}

/**
 * `value`, checked to be an object: spread, a string or an array would make one of its own.
 * @template {object} T
 * @param {T} value
 * @param {string} what
 * @returns {T}
 */
function objectOf(value, what) {
  if (!isObject(value)) throw new TypeError(`${what} must be an object`);
  return value;
}

/**
 * `target` made absolute against this process's working directory: the daemon has its own,
 * so it takes absolute paths only. An empty path stays empty, for the daemon to refuse
 * (rather than to name the working directory).
 * @param {string} target
 */
function absolute(target) {
  return target ? path.resolve(target) : target;
}

module.exports = { AssistantdClient, absolute };
