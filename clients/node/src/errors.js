'use strict';
// The errors of the assistantd protocol, as the Python client has them (protocol/errors.py):
// one base class carrying the wire's error object, one subclass per HTTP status, so a caller
// catches `NotFoundError` or tests `error.code === 'not_found'` whichever it prefers.

/**
 * The `error` member of an error reply (PROTOCOL.md, "Errors"): OpenAI's error object plus
 * `status`, and `details` when there is more to say.
 * @typedef {object} ErrorObject
 * @property {string} message
 * @property {string} type
 * @property {string | null} param
 * @property {string | null} code
 * @property {number} status
 * @property {Record<string, unknown>} [details]
 */

/**
 * What an error is made of, besides its message; each defaults to its class's.
 * @typedef {object} ErrorFields
 * @property {number} [status]
 * @property {string} [type]
 * @property {string | null} [code]
 * @property {string | null} [param]
 * @property {Record<string, unknown>} [details]
 * @property {unknown} [cause]
 */

/**
 * Base of every error the protocol can carry, whether the daemon sent it or this client
 * raised it (`UnavailableError`). `error` is the error object as the wire has it.
 *
 * @example
 *   try {
 *     await client.getAssistant('nobody');
 *   } catch (error) {
 *     if (error instanceof AssistantdError && error.code === 'not_found') ...
 *   }
 */
class AssistantdError extends Error {
  /** @type {number} */
  static defaultStatus = 500;
  /** @type {string} */
  static defaultType = 'server_error';
  /** @type {string | null} */
  static defaultCode = null;

  /**
   * @param {string} message
   * @param {ErrorFields} [fields]
   */
  constructor(message, fields = {}) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause });
    const defaults = /** @type {typeof AssistantdError} */ (new.target);
    this.name = defaults.name;
    /** The HTTP status the same error would have. */
    this.status = fields.status ?? defaults.defaultStatus;
    /** OpenAI's error type: `invalid_request_error`, `server_error`, `worker_error`, ... */
    this.type = fields.type ?? defaults.defaultType;
    /** What went wrong, for programs: `not_found`, `id_taken`, `timeout`, ... */
    this.code = fields.code === undefined ? defaults.defaultCode : fields.code;
    /** The offending field (a path such as `tools[3].type`), or null. */
    this.param = fields.param ?? null;
    /** More about the error (the worker's own error, ...), when there is more to say. */
    this.details = fields.details;
    /** @type {ErrorObject} */
    this.error = { message, type: this.type, param: this.param, code: this.code, status: this.status };
    if (this.details !== undefined) this.error.details = this.details;
  }

  /**
   * The error for an error object received over the wire: the subclass of its status, with
   * every field kept (and `error` the object as it came).
   * @param {Record<string, unknown>} error
   * @returns {AssistantdError}
   */
  static fromObject(error) {
    const status = Number.isInteger(error.status) ? /** @type {number} */ (error.status) : 500;
    const ErrorClass = BY_STATUS.get(status) ?? AssistantdError;
    const details = error.details;
    const made = new ErrorClass(typeof error.message === 'string' ? error.message : String(error.message ?? ''), {
      status,
      type: typeof error.type === 'string' ? error.type : 'server_error',
      code: textOrNull(error.code),
      param: textOrNull(error.param),
      details: isPlainObject(details) ? /** @type {Record<string, unknown>} */ (details) : undefined,
    });
    made.error = /** @type {ErrorObject} */ ({ ...error });
    return made;
  }
}

/** The request is malformed or a value breaks a rule (400). */
class InvalidRequestError extends AssistantdError {
  static defaultStatus = 400;
  static defaultType = 'invalid_request_error';
}

/** The request is understood but refused, such as deleting the default assistant (403). */
class PermissionDeniedError extends AssistantdError {
  static defaultStatus = 403;
  static defaultType = 'invalid_request_error';
  static defaultCode = 'permission_denied';
}

/** No such assistant or method (404). */
class NotFoundError extends AssistantdError {
  static defaultStatus = 404;
  static defaultType = 'invalid_request_error';
  static defaultCode = 'not_found';
}

/** The request clashes with the current state, such as an id that is taken (409). */
class ConflictError extends AssistantdError {
  static defaultStatus = 409;
  static defaultType = 'invalid_request_error';
  static defaultCode = 'conflict';
}

/** The request is over the size limit (413). */
class PayloadTooLargeError extends AssistantdError {
  static defaultStatus = 413;
  static defaultType = 'invalid_request_error';
  static defaultCode = 'request_too_large';
}

/**
 * Something failed inside the daemon (500); also a reply this client cannot read (code
 * `invalid_reply`).
 */
class InternalError extends AssistantdError {
  static defaultStatus = 500;
  static defaultType = 'server_error';
  static defaultCode = 'internal_error';
}

/**
 * The assistant's worker failed (502): its method threw (`details` holds its `name`,
 * `message`, `stack`, `code`), it exited before answering, or it could not be started.
 */
class WorkerError extends AssistantdError {
  static defaultStatus = 502;
  static defaultType = 'worker_error';
  static defaultCode = 'worker_error';
}

/**
 * A download failed (502). Carried by events and by an assistant's `download.error`, not by
 * replies (which come back as `WorkerError` by their status); here for code that builds one.
 */
class DownloadError extends AssistantdError {
  static defaultStatus = 502;
  static defaultType = 'download_error';
  static defaultCode = 'download_failed';
}

/**
 * The daemon could not be reached or did not answer in time (503, raised by this client).
 * Codes: `timeout` (no reply in time), `daemon_not_running` (no socket file at an `ipc://`
 * endpoint), `curve_key_missing` (a `tcp://` endpoint and no usable key), `connection_failed`,
 * `client_closed` (the client was closed while the call waited).
 */
class UnavailableError extends AssistantdError {
  static defaultStatus = 503;
  static defaultType = 'server_error';
  static defaultCode = 'daemon_unavailable';
}

/** The assistant's worker did not answer in time (504). */
class GatewayTimeoutError extends AssistantdError {
  static defaultStatus = 504;
  static defaultType = 'worker_error';
  static defaultCode = 'timeout';
}

/** @type {Map<number, typeof AssistantdError>} */
const BY_STATUS = new Map([
  InvalidRequestError,
  PermissionDeniedError,
  NotFoundError,
  ConflictError,
  PayloadTooLargeError,
  InternalError,
  WorkerError,
  UnavailableError,
  GatewayTimeoutError,
].map((ErrorClass) => [ErrorClass.defaultStatus, ErrorClass]));

/** @param {unknown} value */
function textOrNull(value) {
  return value === null || value === undefined ? null : String(value);
}

/**
 * @param {unknown} value
 * @returns {value is Record<string, unknown>}
 */
function isPlainObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

module.exports = {
  AssistantdError,
  InvalidRequestError,
  PermissionDeniedError,
  NotFoundError,
  ConflictError,
  PayloadTooLargeError,
  InternalError,
  WorkerError,
  DownloadError,
  UnavailableError,
  GatewayTimeoutError,
};
