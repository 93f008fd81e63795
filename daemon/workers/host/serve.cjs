'use strict';
/*
 * The invoke protocol that module-style code (through preload.cjs) and the default worker speak
 * with the daemon, over Node's IPC channel (JSON mode: every message is one JSON.stringify'd
 * line). Fork- and utilityProcess-style code may answer invokes the same way itself.
 *
 * From the daemon:
 *   {"type": "invoke", "id": N, "method": "name", "args": [...]}   args may be left out: []
 *   {"type": "dispose"}
 * To the daemon:
 *   {"type": "ready", "style": S, "methods": [...]}  once, when the module has loaded (S is
 *                                                    "module" or "default")
 *   {"type": "failed", "error": E}                   instead, when it could not; then exit 1
 *   {"type": "result", "id": N, "result": value}
 *   {"type": "error", "id": N, "error": E}
 *   {"type": "disposed"}                             or {"type": "disposed", "error": E}
 *                                                    (once, however many dispose messages)
 * where E is {"name", "message", "stack"} (stack null when there is none) and, when the thrown
 * value had a string or number `code` (as Node's errors do), "code" too.
 *
 * - An invoke calls the export `method` with `args`, `this` being the module; sync and async
 *   exports alike (a returned promise is awaited, a throw or rejection becomes an error).
 *   Invokes run concurrently; each answer carries its request's id, in whatever order they end.
 * - Only the module's own exports are methods (for ESM, also those of a default-exported
 *   object), never what an object inherits (`toString`, `constructor`, ...). Anything else
 *   is an error named "MethodNotFound". A request without a string method or with args that
 *   are not an array is an error named "InvalidRequest" (id null if it had no usable id).
 * - Results are what JSON.stringify makes of them, as for any message on the channel: NaN and
 *   Infinity become null, undefined/function members of objects are left out, Dates become
 *   strings, toJSON is honoured. A top-level result of undefined (a function or symbol too) is
 *   sent as null. A result JSON.stringify refuses (a BigInt, a circular object) is an error
 *   named "ResultNotSerializable" with the reason in the message.
 * - dispose: the exported dispose() (if any) is awaited once; an invoke that arrives after
 *   dispose began is an error named "Disposed". The host answers "disposed", disconnects and
 *   exits 0. When the channel closes ('disconnect': the daemon stopped it, or died), dispose()
 *   is called as well and the host exits 0. A dispose() that throws is reported in "disposed"
 *   (when the channel is still there) and on stderr; the exit code is still 0.
 * - Other messages (with no known type) are ignored.
 */

function describe(thrown) {
  if (thrown instanceof Error || (thrown !== null && typeof thrown === 'object')) {
    const error = {
      name: typeof thrown.name === 'string' ? thrown.name : 'Error',
      message: typeof thrown.message === 'string' ? thrown.message : String(thrown.message ?? ''),
      stack: typeof thrown.stack === 'string' ? thrown.stack : null,
    };
    if (typeof thrown.code === 'string' || Number.isFinite(thrown.code)) error.code = thrown.code;
    return error;
  }
  return { name: 'Error', message: String(thrown), stack: null };
}

function failure(name, message) {
  const error = new Error(message);
  error.name = name;
  return error;
}

function send(message) {
  if (!process.connected) return false;
  process.send(message, undefined, undefined, () => {});
  return true;
}

const own = (object, key) =>
  object !== null &&
  (typeof object === 'object' || typeof object === 'function') &&
  Object.prototype.hasOwnProperty.call(object, key);

function find(module, method) {
  if (own(module, method) && typeof module[method] === 'function') return [module, module[method]];
  const fallback = own(module, 'default') ? module.default : undefined;
  // An ESM module's `export default {...}` (or a CommonJS module imported as ESM).
  if (fallback !== module && own(fallback, method) && typeof fallback[method] === 'function') {
    return [fallback, fallback[method]];
  }
  return null;
}

function methods(module) {
  const names = new Set();
  for (const object of [module, own(module, 'default') ? module.default : undefined]) {
    if (object === null || (typeof object !== 'object' && typeof object !== 'function')) continue;
    for (const key of Object.keys(object)) {
      if (typeof object[key] === 'function') names.add(key);
    }
  }
  return [...names];
}

/**
 * Serve invokes against the module `loading` resolves to (a module or a promise of one), saying
 * `style` in the ready message. Listens at once, so no request waits on Node's queue; requests
 * that come while the module loads wait for it.
 */
function serve(loading, style) {
  let module = null;
  let disposing = null;
  let answering = false;

  const ready = Promise.resolve(loading).then(
    (loaded) => {
      module = loaded;
      send({ type: 'ready', style, methods: methods(loaded) });
    },
    (thrown) => {
      const error = describe(thrown);
      process.stderr.write(`could not load the module: ${error.stack ?? error.message}\n`);
      if (!process.connected) process.exit(1);
      process.send({ type: 'failed', error }, undefined, undefined, () => process.exit(1));
      return new Promise(() => {}); // nothing is served
    },
  );

  async function invoke(request) {
    const id = Number.isSafeInteger(request.id) || typeof request.id === 'string' ? request.id : null;
    let result;
    try {
      if (typeof request.method !== 'string' || id === null) {
        throw failure('InvalidRequest', 'an invoke needs an id and a method name');
      }
      const args = request.args === undefined ? [] : request.args;
      if (!Array.isArray(args)) throw failure('InvalidRequest', 'args must be an array');
      await ready;
      if (disposing !== null) throw failure('Disposed', 'the module has been disposed');
      const found = find(module, request.method);
      if (found === null) {
        throw failure('MethodNotFound', `the module exports no function ${JSON.stringify(request.method)}`);
      }
      const [self, fn] = found;
      result = await fn.apply(self, args);
    } catch (thrown) {
      send({ type: 'error', id, error: describe(thrown) });
      return;
    }
    if (result === undefined || typeof result === 'function' || typeof result === 'symbol') {
      result = null;
    }
    try {
      send({ type: 'result', id, result });
    } catch (thrown) {
      // JSON.stringify refused it inside process.send; nothing was written.
      const reason = describe(thrown).message;
      const error = failure(
        'ResultNotSerializable',
        `the result of ${request.method} cannot be sent as JSON: ${reason}`,
      );
      send({ type: 'error', id, error: describe(error) });
    }
  }

  function dispose() {
    if (disposing === null) {
      disposing = (async () => {
        await ready;
        const found = find(module, 'dispose');
        if (found === null) return null;
        try {
          await found[1].apply(found[0], []);
          return null;
        } catch (thrown) {
          const error = describe(thrown);
          process.stderr.write(`dispose() failed: ${error.stack ?? error.message}\n`);
          return error;
        }
      })();
    }
    return disposing;
  }

  process.on('message', (message) => {
    if (message === null || typeof message !== 'object') return;
    if (message.type === 'invoke') {
      invoke(message);
    } else if (message.type === 'dispose' && !answering) {
      answering = true; // one answer, however many times the daemon asks
      dispose().then((error) => {
        const answer = error === null ? { type: 'disposed' } : { type: 'disposed', error };
        if (!process.connected) return;
        process.send(answer, undefined, undefined, () => {
          if (process.connected) process.disconnect(); // and 'disconnect' ends the host
        });
      });
    }
  });

  process.on('disconnect', () => {
    dispose().then(() => process.exit(0));
  });
}

module.exports = { serve, describe };
