"""The JavaScript the daemon runs inside its ``node`` workers (plain CommonJS, no npm packages).

- :data:`PARENTPORT_SHIM`, ``parentport.cjs``: the preload shim for Electron
  ``utilityProcess``-style code, passed as ``node --require <shim> src/process.js`` (never in
  ``NODE_OPTIONS``, so the worker's own children do not inherit it). It gives the worker
  ``process.parentPort`` (``on('message', e => e.data)``, ``once``, ``off``, ``postMessage``,
  ``start``) over Node's IPC channel; fork-style code is unaffected.
- :data:`MODULE_HOST`, ``module-host.cjs``: ``node module-host.cjs <module>`` loads Jan
  module-style code (CommonJS, or ESM: ``.mjs`` or ``"type": "module"``) and serves invokes.
- :data:`DEFAULT_WORKER`, ``default-worker.cjs``: for an assistant without ``src/process.js``
  (the Jan spec's "index.js loads assistant.json"): reads ``./assistant.json`` and answers
  ``ping`` (``"pong"``) and ``getDefinition`` (the parsed file).

The last two speak the invoke protocol over the channel (described in full in ``serve.cjs``)::

    daemon -> {"type": "invoke", "id": 1, "method": "name", "args": [...]}
    worker -> {"type": "result", "id": 1, "result": ...}
           |  {"type": "error", "id": 1, "error": {"name", "message", "stack"}}
    daemon -> {"type": "dispose"}
    worker -> {"type": "disposed"}, then it disconnects and exits 0

and, once at start, ``{"type": "ready", "methods": [...]}`` or ``{"type": "failed", "error":
{...}}`` (then exit 1). Error names of the host's own: ``MethodNotFound``, ``InvalidRequest``,
``ResultNotSerializable``, ``Disposed``.

>>> all(path.is_file() for path in (PARENTPORT_SHIM, MODULE_HOST, DEFAULT_WORKER))
True
"""

from __future__ import annotations

from pathlib import Path

HOST_DIR = Path(__file__).resolve().parent
PARENTPORT_SHIM = HOST_DIR / "parentport.cjs"
MODULE_HOST = HOST_DIR / "module-host.cjs"
DEFAULT_WORKER = HOST_DIR / "default-worker.cjs"

__all__ = ["DEFAULT_WORKER", "HOST_DIR", "MODULE_HOST", "PARENTPORT_SHIM"]
