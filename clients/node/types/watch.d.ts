// `client.watch()`: the event stream and a mirror of the daemon's state (the Clone pattern).
// The wire types come from ./protocol, generated from the protocol's JSON Schema.

import { EventEmitter } from 'node:events';
import type {
  Assistant,
  AssistantCreated,
  AssistantDeleted,
  AssistantInvalid,
  AssistantStateChanged,
  AssistantUpdated,
  DaemonHeartbeat,
  DaemonStopping,
  DaemonWelcome,
  DownloadProgress,
  InvalidFile,
  Snapshot,
  WorkerExited,
  WorkerLog,
  WorkerMessage,
} from './protocol';

/** The state events (topics `assistant.*`), each with its `seq`: the mirror applies them. */
export type StateChange =
  | AssistantCreated
  | AssistantUpdated
  | AssistantStateChanged
  | AssistantDeleted
  | AssistantInvalid;

/** The workers' events (topics `worker.*`): not state, no `seq`, not mirrored. */
export type WorkerActivity = WorkerMessage | WorkerLog | WorkerExited;

/** The activity events, the workers' and the downloads' (`download.progress`): not mirrored. */
export type Activity = WorkerActivity | DownloadProgress;

/** Every event the daemon publishes. */
export type DaemonEvent = StateChange | Activity | DaemonWelcome | DaemonHeartbeat | DaemonStopping;

/** What `'event'` carries: the daemon's events a watch passes on (welcomes and heartbeats are
 *  used up inside). A state event that comes while the mirror is out of sync (before the first
 *  snapshot, or from a sign of loss until the snapshot that repairs it), or that a snapshot
 *  already holds, is not passed on: what it did comes in that snapshot's `'change'`. */
export type WatchEvent = StateChange | Activity | DaemonStopping;

/** Why a snapshot was taken: the `start`, events were lost (`gap`), the daemon restarted
 *  (`epoch`), or no heartbeat for three intervals (`silence`). An iteration also gets a
 *  `Synced` of reason `behind`, with no snapshot taken, in place of the 10,000 notifications
 *  it left unread: the mirror holds what they did (activity events among them are lost). */
export type SyncReason = 'start' | 'gap' | 'epoch' | 'silence' | 'behind';

/**
 * Not a wire event: the watch took a snapshot, and its mirror now shows the daemon's state as
 * of `seq`. The changes the snapshot brought in were not passed on one by one (the `'change'`
 * that goes with it lists them). Encoded as JSON it is what `assistantctl watch --json`
 * prints for the Python client's `Synced`.
 */
export interface Synced {
  topic: 'client.synced';
  reason: SyncReason;
  epoch: string;
  seq: number;
  /** Unix seconds, as the wire events' `time`. */
  time: number;
}

/** What iterating a watch yields: its events and its `Synced` notifications. */
export type WatchNotification = WatchEvent | Synced;

/** One assistant that changed: `before` is undefined for a new one, `after` for one gone. */
export interface AssistantChange {
  id: string;
  before: Assistant | undefined;
  after: Assistant | undefined;
}

/** One file problem that appeared (`after`), changed, or went away (`before` only). */
export interface InvalidChange {
  id: string;
  before: InvalidFile | undefined;
  after: InvalidFile | undefined;
}

/**
 * What `'change'` carries: the mirror changed, by one state event or by a snapshot. A renderer
 * either re-renders from `watch.state` / `watch.toJSON()`, or patches with the lists.
 */
export interface MirrorChange {
  /** The state event applied, or the `Synced` of the snapshot taken. */
  source: StateChange | Synced;
  /** The mirror's epoch and seq after the change. */
  epoch: string;
  seq: number;
  /** The assistants that differ from before, in the order of the mirror. */
  assistants: AssistantChange[];
  /** The file problems that differ from before. */
  invalid: InvalidChange[];
}

/** What `'skipped'` carries: a message that could not be used (and was dropped). */
export interface Skipped {
  /** Its topic frame, when it had one. */
  topic: string | null;
  reason: string;
}

/**
 * The daemon's state as far as the events tell: what getSnapshot would return now
 * (`watch.state`). `epoch` is null before the first snapshot.
 */
export interface Mirror {
  epoch: string | null;
  /** The last state event applied, or the snapshot's. */
  seq: number;
  /** By assistant id. */
  assistants: Map<string, Assistant>;
  /** The file problems, by assistant id. */
  invalid: Map<string, InvalidFile>;
  /** A plain object in getSnapshot's shape (assistants by `created_at`, then `id`; invalid
   *  files by id), for `JSON.stringify` or a renderer over IPC (`webContents.send`). */
  toJSON(): MirrorView;
}

/** The mirror as plain data: getSnapshot's shape (`epoch` is null before the first one). */
export interface MirrorView {
  object: 'snapshot';
  epoch: string | null;
  seq: number;
  assistants: Assistant[];
  invalid: InvalidFile[];
}

/** What a caller passes to `client.watch()`; any other option is a TypeError. */
export interface WatchOptions {
  /** The events to pass on: those whose topic starts with it (default `''`: all). It narrows
   *  what is passed on, never what is mirrored. `'worker.'`, `'download.'` take the activity
   *  events in. */
  prefix?: string;
  /** Milliseconds to wait for the stream's welcome and the first snapshot, together, before
   *  `ready()` rejects with an `UnavailableError` (default: the client's `timeout`; 10 000 for
   *  a `new Watch`). */
  startTimeout?: number;
  /** Milliseconds between the daemon's heartbeats (the protocol's is 1 000); three of them
   *  without a word from the daemon take a new snapshot. */
  heartbeatInterval?: number;
}

/** What `AssistantdClient.watch()` hands a `Watch`: where and how to connect (any other option
 *  is a TypeError). */
export interface WatchInit extends WatchOptions {
  /** The events endpoint (`ipc://<runtime dir>/events.sock`, or a `tcp://` one). */
  endpoint: string;
  /** Set on the zeromq `Subscriber` before it connects (the CURVE keys for `tcp://`). */
  socketOptions?: Record<string, unknown>;
  /** The getSnapshot command. For the first snapshot it is passed a `timeout`: the ms left of
   *  `startTimeout`, within which it must settle (no retry past them); later, no options. */
  getSnapshot: (options?: { timeout?: number }) => Promise<Snapshot>;
}

/**
 * The daemon's events as they come, and a mirror of its state kept exact with them (the
 * ZeroMQ Guide's Clone pattern: PROTOCOL.md, "Mirroring the state").
 *
 * It starts when created and runs until `close()`, across daemon restarts.
 *
 * ```js
 * const watch = client.watch();
 * watch.on('change', () => win.webContents.send('assistants', watch.toJSON()));
 * await watch.ready();
 * for await (const event of watch) console.log(event.topic);
 * ```
 */
export declare class Watch extends EventEmitter implements AsyncIterable<WatchNotification> {
  constructor(init: WatchInit);
  /** The events endpoint it is subscribed to. */
  readonly endpoint: string;
  /** The topic prefix of the events passed on. */
  readonly prefix: string;
  /** The live mirror: changed in place; `'change'` says when. */
  readonly state: Mirror;
  /** Whether a first snapshot was taken. */
  readonly started: boolean;
  /** False from a sign of lost events (or a stopped daemon) until the snapshot that repairs
   *  the mirror. */
  readonly inSync: boolean;
  /** Whether `close()` was called, or the watch failed. */
  readonly closed: boolean;
  /** How many messages were skipped as unusable (each also emitted as `'skipped'`). */
  readonly skippedCount: number;
  /** The error that ended the watch, if one did. */
  readonly error: Error | null;
  /** The mirror as plain data (getSnapshot's shape). */
  toJSON(): MirrorView;
  /** Resolves after the first snapshot; rejects with `UnavailableError` when none could be
   *  taken within `startTimeout` (or no daemon listens), or if closed before. */
  ready(): Promise<void>;
  /** Close the socket and end the iterators. The process can exit afterwards. */
  close(): Promise<void>;
  /**
   * Every notification from now on: the events whose topic starts with the prefix and a
   * `Synced` after each snapshot. An iteration that begins once the watch is in sync starts
   * with a `Synced` (reason `start`) for the mirror as it is. It ends when the watch is
   * closed (also by `break`ing out of it, which does not close the watch), and throws the
   * error that ended a failed watch.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<WatchNotification>;

  /** Each event whose topic starts with the prefix; not the state events a snapshot brings in
   *  (see `WatchEvent`). */
  on(event: 'event', listener: (event: WatchEvent) => void): this;
  on(event: 'synced', listener: (synced: Synced) => void): this;
  on(event: 'change', listener: (change: MirrorChange) => void): this;
  on(event: 'skipped', listener: (skipped: Skipped) => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
  on(event: 'close', listener: () => void): this;
  once(event: 'event', listener: (event: WatchEvent) => void): this;
  once(event: 'synced', listener: (synced: Synced) => void): this;
  once(event: 'change', listener: (change: MirrorChange) => void): this;
  once(event: 'skipped', listener: (skipped: Skipped) => void): this;
  once(event: 'error', listener: (error: Error) => void): this;
  once(event: 'close', listener: () => void): this;
  off(event: 'event', listener: (event: WatchEvent) => void): this;
  off(event: 'synced', listener: (synced: Synced) => void): this;
  off(event: 'change', listener: (change: MirrorChange) => void): this;
  off(event: 'skipped', listener: (skipped: Skipped) => void): this;
  off(event: 'error', listener: (error: Error) => void): this;
  off(event: 'close', listener: () => void): this;
}
