"""Helpers of the end-to-end worker tests: test assistants with node code, a config with small
worker timeouts, and a look at processes through ``/proc`` (is a pid gone, who is in a process
group, which children are zombies)."""

from __future__ import annotations

import json
import os
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROCESS_TIMEOUT = 15.0
"""Seconds a test waits for processes to appear or to be gone."""

POLL = 0.02
"""Seconds between two looks at /proc while waiting (there is no event to wait on)."""

FAST_WORKERS: dict[str, Any] = {
    "start-timeout": 20,
    "stop-timeout": 1,
    "invoke-timeout": 5,
    "restart-limit": 2,
    "restart-window": 60,
    "backoff-initial": 0.02,
    "backoff-max": 0.2,
    "stable-after": 30,
    "install-timeout": 60,
}
"""The ``[workers]`` settings of the tests: each stop step and each backoff is short, so a
worker that has to be killed, or that crashes in a loop, costs a second or two, not minutes.
``stable-after`` is long so that a crash loop never counts as a stable start."""


# ============================================================================================
# Config and assistants
# ============================================================================================


def write_config(path: Path, **overrides: Any) -> Path:
    """A config file with a ``[workers]`` table of :data:`FAST_WORKERS` and ``overrides``
    (given with ``_`` for ``-``: ``restart_limit=5``); its path."""
    table = FAST_WORKERS | {key.replace("_", "-"): value for key, value in overrides.items()}
    lines = ["[workers]", *(f"{key} = {_toml(value)}" for key, value in table.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # a string or a list of strings: JSON writes them as TOML does


def write_assistant(root: Path, assistant_id: str, code: str | None = None, **more: Any) -> Path:
    """An assistant folder in ``root`` with ``assistant.json`` and what :func:`write_code`
    writes; its folder.

    The folder is made beside the root and renamed in, so that a daemon watching the root
    never sees a folder without its ``assistant.json``.
    """
    staging = root.parent / f".making-{assistant_id}"
    staging.mkdir()
    definition = {"name": f"Test {assistant_id}", "model": "*", "created_at": 1_700_000_000}
    (staging / "assistant.json").write_text(json.dumps(definition))
    write_code(staging, code, **more)
    folder = root / assistant_id
    staging.rename(folder)
    return folder


def write_code(
    folder: Path,
    code: str | None,
    *,
    entry: str = "src/process.js",
    package: dict[str, Any] | None = None,
    files: dict[str, str] | None = None,
) -> None:
    """An assistant's node code in its ``folder``: ``code`` (dedented) as its ``entry`` file
    unless None (the daemon then runs its default worker), ``package`` as its package.json,
    ``files`` as more files by relative path."""
    every = dict(files or {})
    if code is not None:
        every[entry] = textwrap.dedent(code)
    if package is not None:
        every["package.json"] = json.dumps(package)
    for relative, text in every.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def js(value: Any) -> str:
    """``value`` as a JavaScript literal (a path put into a worker's code, say)."""
    return json.dumps(str(value) if isinstance(value, Path) else value)


# ============================================================================================
# Processes, through /proc
# ============================================================================================


@dataclass(frozen=True)
class ProcessInfo:
    """One line of ``/proc/<pid>/stat``, the fields these tests need."""

    pid: int
    comm: str
    state: str
    """``R``, ``S``, ``Z`` (a zombie: exited, not reaped yet), ..."""
    ppid: int
    pgid: int

    @property
    def zombie(self) -> bool:
        return self.state == "Z"


def process_info(pid: int) -> ProcessInfo | None:
    """What /proc says of ``pid`` now; None if there is no such process (not even a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name sits in parentheses and may itself hold spaces and parentheses.
    head, _, tail = stat.rpartition(")")
    state, ppid, pgid = tail.split()[:3]
    return ProcessInfo(pid, head.partition("(")[2], state, int(ppid), int(pgid))


def all_processes() -> list[ProcessInfo]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and (info := process_info(int(name))) is not None:
            found.append(info)
    return found


def group_members(pgid: int) -> list[ProcessInfo]:
    """Every process of the process group ``pgid``, zombies included."""
    return [info for info in all_processes() if info.pgid == pgid]


def zombie_children(ppid: int) -> list[ProcessInfo]:
    """The children of ``ppid`` that exited and were not reaped."""
    return [info for info in all_processes() if info.ppid == ppid and info.zombie]


def wait_for(condition: Callable[[], Any], what: str, timeout: float = PROCESS_TIMEOUT) -> Any:
    """The first true value of ``condition()``, looking every :data:`POLL` seconds until
    ``timeout``; fails naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not so within {timeout}s")
        time.sleep(POLL)


def wait_pid_gone(pid: int, timeout: float = PROCESS_TIMEOUT) -> None:
    """Wait until ``pid`` is gone from /proc: exited *and* reaped."""
    wait_for(lambda: process_info(pid) is None, f"process {pid} gone", timeout)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has ended: it only waits to be reaped)."""
    info = process_info(pid)
    return info is not None and not info.zombie


def wait_pid_dead(pid: int, timeout: float = PROCESS_TIMEOUT) -> None:
    """Wait until ``pid`` has ended, reaped or not (for a process whose parent is gone, whose
    reaping is up to whoever adopted it)."""
    wait_for(lambda: not alive(pid), f"process {pid} ended", timeout)


def wait_group_gone(pgid: int, timeout: float = PROCESS_TIMEOUT) -> None:
    """Wait until no process (zombies included) is left in the group ``pgid``."""
    wait_for(lambda: not group_members(pgid), f"process group {pgid} empty", timeout)


def wait_group_size(pgid: int, size: int, timeout: float = PROCESS_TIMEOUT) -> list[ProcessInfo]:
    """Wait until the group ``pgid`` has at least ``size`` live processes; them."""

    def enough() -> list[ProcessInfo]:
        live = [member for member in group_members(pgid) if not member.zombie]
        return live if len(live) >= size else []

    members: list[ProcessInfo] = wait_for(enough, f"{size} live processes in group {pgid}", timeout)
    return members
