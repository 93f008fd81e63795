"""How an assistant's worker is started: which file, which arguments, which environment.

An assistant's own code is ``src/process.js`` (or ``.mjs``, ``.cjs``), run as
``node --require <preload> src/process.js`` in the assistant's folder; an assistant without one
gets the built-in default worker (host/default-worker.cjs). The environment is clean: a few
variables every program expects, the assistant's id, and the ones the ``[workers]`` config names
in ``pass-env`` — nothing else of the daemon's (no secrets, no ``NODE_OPTIONS``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .host import DEFAULT_WORKER, PRELOAD
from .settings import WorkerSettings

ENTRY_FILES = ("src/process.js", "src/process.mjs", "src/process.cjs")
"""Where an assistant's code may be, in the order they are looked for."""

BASE_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR")
"""Passed from the daemon's environment when set, with every ``LC_*``: what programs expect of
any environment (PATH finds node and what the code runs; HOME and TMPDIR, where to write)."""

ENV_ASSISTANT_ID = "ASSISTANTD_ASSISTANT_ID"
ENV_WORKER_OF = "ASSISTANTD_WORKER_OF"
"""The root of the daemon that started the worker: inherited by all it starts, so that what a
killed daemon's workers left running can be found by the next daemon (reaper.sweep_leftovers)."""


def worker_marker(root: Path) -> bytes:
    """The environment entry every process of a worker of ``root`` carries."""
    return f"{ENV_WORKER_OF}={root}".encode()


@dataclass(frozen=True)
class Launch:
    """Everything needed to start one worker."""

    args: tuple[str, ...]
    """Arguments to ``node``."""
    cwd: Path
    env: dict[str, str]
    entry: Path | None
    """The assistant's own code, or None for the default worker."""


def find_entry(folder: Path) -> Path | None:
    """The assistant's code file, or None if it has none.

    >>> import tempfile; folder = Path(tempfile.mkdtemp())
    >>> find_entry(folder) is None
    True
    >>> (folder / "src").mkdir(); (folder / "src" / "process.mjs").write_text("")
    0
    >>> find_entry(folder).relative_to(folder).as_posix()
    'src/process.mjs'
    """
    for name in ENTRY_FILES:
        path = folder / name
        if path.is_file():
            return path
    return None


def worker_env(
    assistant_id: str, settings: WorkerSettings, environ: Mapping[str, str]
) -> dict[str, str]:
    """The whole environment of a worker.

    >>> worker_env("jan", WorkerSettings(pass_env=("API_KEY",)),
    ...            {"PATH": "/bin", "LC_ALL": "C", "API_KEY": "k", "SECRET": "s",
    ...             "NODE_OPTIONS": "--require x"})
    {'PATH': '/bin', 'LC_ALL': 'C', 'API_KEY': 'k', 'ASSISTANTD_ASSISTANT_ID': 'jan'}
    """
    env = {
        name: value
        for name, value in environ.items()
        if name in BASE_ENV or name.startswith("LC_") or name in settings.pass_env
    }
    env[ENV_ASSISTANT_ID] = assistant_id
    return env


def launch_for(
    folder: Path, assistant_id: str, settings: WorkerSettings, environ: Mapping[str, str]
) -> Launch:
    entry = find_entry(folder)
    env = worker_env(assistant_id, settings, environ)
    env[ENV_WORKER_OF] = str(folder.parent)
    if entry is None:
        return Launch((str(DEFAULT_WORKER),), folder, env, None)
    relative = entry.relative_to(folder)
    return Launch(("--require", str(PRELOAD), str(relative)), folder, env, entry)


def needs_install(folder: Path) -> bool:
    """Whether ``package.json`` lists dependencies and ``node_modules`` is missing.

    A ``package.json`` that cannot be read is left for npm (and node) to report.
    """
    if (folder / "node_modules").exists():
        return False
    try:
        package = json.loads((folder / "package.json").read_bytes())
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True  # let npm say what is wrong with it, in the worker's log
    dependencies = package.get("dependencies") if isinstance(package, dict) else None
    return bool(dependencies)


def npm_env(worker: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of ``npm install``: the worker's, plus npm's own settings and proxies.

    >>> npm_env({"PATH": "/bin"}, {"npm_config_registry": "http://r", "HTTPS_PROXY": "p",
    ...                            "SECRET": "s"})
    {'PATH': '/bin', 'npm_config_registry': 'http://r', 'HTTPS_PROXY': 'p'}
    """
    passed = {
        name: value
        for name, value in environ.items()
        if name.lower().startswith("npm_config_")
        or name.upper() in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
    }
    return {**worker, **passed}
