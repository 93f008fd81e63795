"""The JavaScript the daemon runs inside its ``node`` workers (plain CommonJS, no npm packages).

- :data:`PRELOAD`, ``preload.cjs``: passed as ``node --require <preload> src/process.js`` (never
  in ``NODE_OPTIONS``, so the worker's own children do not inherit it). It loads
  :data:`PARENTPORT_SHIM` and, once the main module is evaluated, says the worker is up and
  serves invokes if the code is Jan module-style (it exports functions and listens to no
  messages itself).
- :data:`PARENTPORT_SHIM`, ``parentport.cjs``: ``process.parentPort`` for Electron
  ``utilityProcess``-style code (``on('message', e => e.data)``, ``once``, ``off``,
  ``postMessage``, ``start``) over Node's IPC channel; fork-style code is unaffected.
- :data:`DEFAULT_WORKER`, ``default-worker.cjs``: for an assistant without ``src/process.js``
  (the Jan spec's "index.js loads assistant.json"): reads ``./assistant.json`` and answers
  ``ping`` (``"pong"``) and ``getDefinition`` (the parsed file).

Every worker says once that it is up: ``{"type": "ready", "style": "process" | "module" |
"default", "methods": [...]}`` (or, for the default worker, ``{"type": "failed", "error":
{...}}`` and exit 1). Module-style code and the default worker then speak the invoke protocol
(described in full in ``serve.cjs``)::

    daemon -> {"type": "invoke", "id": 1, "method": "name", "args": [...]}
    worker -> {"type": "result", "id": 1, "result": ...}
           |  {"type": "error", "id": 1, "error": {"name", "message", "stack"}}
    daemon -> {"type": "dispose"}
    worker -> {"type": "disposed"}, then it disconnects and exits 0

Error names of the host's own: ``MethodNotFound``, ``InvalidRequest``,
``ResultNotSerializable``, ``Disposed``.

>>> all(path.is_file() for path in (PRELOAD, PARENTPORT_SHIM, DEFAULT_WORKER))
True
"""

from __future__ import annotations

from pathlib import Path

HOST_DIR = Path(__file__).resolve().parent
PRELOAD = HOST_DIR / "preload.cjs"
PARENTPORT_SHIM = HOST_DIR / "parentport.cjs"
DEFAULT_WORKER = HOST_DIR / "default-worker.cjs"

__all__ = ["DEFAULT_WORKER", "HOST_DIR", "PARENTPORT_SHIM", "PRELOAD"]
