// The public API of assistantd-client. The wire types (params, results, events, the error
// object) come from ./protocol, generated from the protocol's JSON Schema
// (scripts/generate-types.js), so they follow the daemon's Structs; this file says which of
// them each method takes and gives.

import type {
  Assistant,
  AssistantList,
  CreateAssistantParams,
  DeletedAssistant,
  ErrorObject,
  ExportResult,
  ListAssistantsParams,
  Methods,
  ModifyAssistantParams,
  PingResult,
  SentMessage,
  Snapshot,
} from './protocol';
import type { Watch, WatchOptions } from './watch';

export type * from './protocol';
export { Watch } from './watch';
export type * from './watch';

/** Every method's name. */
export type MethodName = keyof Methods;
/** The params a method takes on the wire (snake_case), e.g. `MethodParams<'getAssistant'>`. */
export type MethodParams<M extends MethodName> = Methods[M]['params'];
/** The result a method gives, e.g. `MethodResult<'getAssistant'>` is `Assistant`. */
export type MethodResult<M extends MethodName> = Methods[M]['result'];

/** The settable fields of an assistant (`modifyAssistant`). */
export type AssistantFields = Omit<ModifyAssistantParams, 'assistant_id'>;

export interface ClientOptions {
  /** The command endpoint (`ipc://...`, `tcp://...`). Found as PROTOCOL.md "Finding the
   *  daemon" says when not given: `command.sock` in `runtimeDir`, `$ASSISTANTD_RUNTIME_DIR`,
   *  `$XDG_RUNTIME_DIR/assistantd`, `/tmp/assistantd-$UID`. */
  command?: string;
  /** The events endpoint `watch()` subscribes to (`events.sock` in the runtime dir). */
  events?: string;
  /** The daemon's runtime dir, where `command.sock` and `events.sock` are. */
  runtimeDir?: string;
  /** Milliseconds a call waits for its reply (default 10 000, at most 2 147 483 647: what
   *  Node's timers hold; more is a TypeError), on top of the time the daemon may take by its
   *  own rules (an invoke's `timeoutMs`, a start, a stop, an import ...). */
  timeout?: number;
  /** Times a read (ping, listAssistants, getAssistant, getSnapshot) that got no reply in time
   *  is sent again, on a fresh socket (default 2). Other calls are never sent twice. */
  retries?: number;
  /** tcp://: this client's CURVE key pair, a `.key_secret` file (default
   *  `$ASSISTANTD_CURVE_SECRET_KEY`, else `$XDG_CONFIG_HOME/assistantd/client.key_secret`). */
  curveSecretKey?: string;
  /** tcp://: the daemon's public key, Z85 or its `server.key` file (default
   *  `$ASSISTANTD_SERVER_KEY`, else `server.key` in the config or the daemon's state dir). */
  curveServerKey?: string;
  /** tcp:// without CURVE, to a daemon started with `--insecure-tcp`. */
  insecureTcp?: boolean;
}

/** Options every call takes. */
export interface CallOptions {
  /** Milliseconds to wait for this call's reply, instead of the client's `timeout` (at most
   *  2 147 483 647). */
  timeout?: number;
}

export interface IterAssistantsOptions {
  order?: 'asc' | 'desc';
  /** Assistants per page (1..100, default 100). */
  pageSize?: number;
}

export interface InvokeOptions extends CallOptions {
  /** How long the daemon waits for the worker's answer (its `invoke-timeout`, 60 s, when not
   *  given; 1 to 3 600 000, else the daemon answers with an `InvalidRequestError`); the
   *  client waits that long plus its `timeout`. */
  timeoutMs?: number;
}

export interface DownloadSource {
  /** `http://` or `https://` (also `file://` when the daemon allows it). */
  url?: string;
  /** The body's SHA-256, 64 hex digits: a download that does not match installs nothing. */
  sha256?: string;
  /** The id (folder name) to give it; alone, downloads a `to_download` assistant again. */
  assistantId?: string;
  /** Start its worker once it is in place. */
  start?: boolean;
}

export interface ImportOptions extends CallOptions {
  /** The id to give it, instead of its definition's id or its folder's (archive's) name. */
  assistantId?: string;
}

/**
 * Talks to an assistantd daemon over ZeroMQ. Every method returns a promise; calls may overlap.
 * `close()` it when done: its socket keeps the process alive.
 *
 * ```js
 * const client = new AssistantdClient();
 * const assistant = await client.createAssistant({ name: 'Math tutor', model: 'llama3-8b' });
 * client.close();
 * ```
 */
export declare class AssistantdClient {
  constructor(options?: ClientOptions);
  /** The command endpoint this client sends to. */
  readonly endpoint: string;
  /** The events endpoint `watch()` subscribes to. */
  readonly eventsEndpoint: string;
  /** Milliseconds a call waits for its reply (beyond the daemon's own time for slow work). */
  readonly timeout: number;
  /** Whether `close()` was called. */
  readonly closed: boolean;
  /** Close the socket; calls still waiting reject with `UnavailableError` (`client_closed`). */
  close(): void;

  /** Any method with its wire params (snake_case); its result. Typed for the protocol's
   *  methods; `unknown` for others (a newer daemon's). */
  request<M extends string>(
    method: M,
    params?: M extends MethodName ? MethodParams<M> : Record<string, unknown>,
    options?: CallOptions,
  ): Promise<M extends MethodName ? MethodResult<M> : unknown>;

  ping(options?: CallOptions): Promise<PingResult>;
  listAssistants(query?: ListAssistantsParams, options?: CallOptions): Promise<AssistantList>;
  /** Every assistant, page by page with `after`. */
  iterAssistants(query?: IterAssistantsOptions, options?: CallOptions): AsyncGenerator<Assistant, void, undefined>;
  /** Rejects with `NotFoundError` (`not_found`) when there is no such assistant. */
  getAssistant(assistantId: string, options?: CallOptions): Promise<Assistant>;
  /** `fields.id` names its folder instead of a random `asst_...` id. */
  createAssistant(fields?: CreateAssistantParams, options?: CallOptions): Promise<Assistant>;
  modifyAssistant(assistantId: string, fields: AssistantFields, options?: CallOptions): Promise<Assistant>;
  deleteAssistant(assistantId: string, options?: CallOptions): Promise<DeletedAssistant>;
  getSnapshot(options?: CallOptions): Promise<Snapshot>;
  /** The assistant, `running`, once its worker is up. */
  startAssistant(assistantId: string, options?: CallOptions): Promise<Assistant>;
  /** The assistant, `ready`, once its worker and what it started are gone. */
  stopAssistant(assistantId: string, options?: CallOptions): Promise<Assistant>;
  restartAssistant(assistantId: string, options?: CallOptions): Promise<Assistant>;
  /** What the worker's `method` returned for `args` (the `result` of the wire's reply). */
  invokeAssistant(assistantId: string, method: string, args?: unknown[], options?: InvokeOptions): Promise<unknown>;
  sendToAssistant(assistantId: string, message: unknown, options?: CallOptions): Promise<SentMessage>;
  /** The assistant, `downloading`, at once; the download goes on in the daemon. */
  downloadAssistant(source: DownloadSource, options?: CallOptions): Promise<Assistant>;
  cancelDownload(assistantId: string, options?: CallOptions): Promise<Assistant>;
  /** A relative `path` is taken from this process's working directory. */
  importAssistant(path: string, options?: ImportOptions): Promise<Assistant>;
  /** `path` ends in `.zip`, `.tar.gz` or `.tgz` and must not exist; a relative one is taken
   *  from this process's working directory. */
  exportAssistant(assistantId: string, path: string, options?: CallOptions): Promise<ExportResult>;
  /** The events and a mirror of the daemon's state (the Clone pattern). */
  watch(options?: WatchOptions): Watch;
}

/** What an error is made of, besides its message. */
export interface ErrorFields {
  status?: number;
  type?: string;
  code?: string | null;
  param?: string | null;
  details?: Record<string, unknown>;
  cause?: unknown;
}

/**
 * Every error the protocol carries: those the daemon answers with (by their status, one of
 * the subclasses below), and this client's own (`UnavailableError`).
 */
export declare class AssistantdError extends Error {
  constructor(message: string, fields?: ErrorFields);
  /** The error object as the wire has it. */
  error: ErrorObject;
  /** The HTTP status the same error would have. */
  status: number;
  /** OpenAI's error type: `invalid_request_error`, `server_error`, `worker_error`, ... */
  type: string;
  /** What went wrong, for programs: `not_found`, `id_taken`, `timeout`, ... */
  code: string | null;
  /** The offending field (a path such as `tools[3].type`), or null. */
  param: string | null;
  /** More about the error, when there is more to say (a worker's own error, ...). */
  details: Record<string, unknown> | undefined;
  static defaultStatus: number;
  static defaultType: string;
  static defaultCode: string | null;
  /** The error (of the subclass of its status) for an error object received over the wire. */
  static fromObject(error: Record<string, unknown>): AssistantdError;
}
/** 400: the request is malformed or a value breaks a rule. */
export declare class InvalidRequestError extends AssistantdError {}
/** 403: refused, such as deleting the default assistant. */
export declare class PermissionDeniedError extends AssistantdError {}
/** 404: no such assistant, method, or path. */
export declare class NotFoundError extends AssistantdError {}
/** 409: clashes with the current state (`id_taken`, `illegal_transition`, ...). */
export declare class ConflictError extends AssistantdError {}
/** 413: the request is too large. */
export declare class PayloadTooLargeError extends AssistantdError {}
/** 500: a fault in the daemon; also a reply this client cannot read (`invalid_reply`). */
export declare class InternalError extends AssistantdError {}
/** 502: the worker failed (`details` has its error), exited, or could not start. */
export declare class WorkerError extends AssistantdError {}
/** 502: a download failed (in events and `download.error`, not in replies). */
export declare class DownloadError extends AssistantdError {}
/** 503: the daemon was not reached or did not answer in time: `timeout`,
 *  `daemon_not_running`, `curve_key_missing`, `connection_failed`, `client_closed`. */
export declare class UnavailableError extends AssistantdError {}
/** 504: the worker did not answer in time. */
export declare class GatewayTimeoutError extends AssistantdError {}

/** The command endpoint as the client finds it (see `ClientOptions.command`). */
export declare function commandEndpoint(options?: {
  command?: string | null;
  runtimeDir?: string | null;
  env?: Record<string, string | undefined>;
}): string;
/** The events endpoint as the client finds it (see `ClientOptions.events`). */
export declare function eventsEndpoint(options?: {
  events?: string | null;
  runtimeDir?: string | null;
  env?: Record<string, string | undefined>;
}): string;
