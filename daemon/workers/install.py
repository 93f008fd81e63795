"""``npm install`` for an assistant whose ``package.json`` lists dependencies it does not have.

Run before a worker's start when ``node_modules`` is missing: ``npm install --omit=dev`` in the
assistant's folder, with packages' install scripts off unless the config allows them
(``npm-scripts = true``: a downloaded assistant must not run code before it is started, and an
install script is code). Every line npm writes is a ``worker.log`` line (stream ``install``).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog

from assistantd.protocol.errors import WorkerError

from .output import pump
from .reaper import Reaper, signal_group
from .settings import WorkerSettings

log = structlog.get_logger("assistantd.workers")

OUTPUT_TAIL = 20


def npm_command(npm: str, settings: WorkerSettings) -> list[str]:
    """
    >>> npm_command("/usr/bin/npm", WorkerSettings())
    ['/usr/bin/npm', 'install', '--omit=dev', '--no-audit', '--no-fund', '--ignore-scripts']
    """
    command = [npm, "install", "--omit=dev", "--no-audit", "--no-fund"]
    if not settings.npm_scripts:
        command.append("--ignore-scripts")
    return command


async def install_dependencies(
    folder: Path,
    *,
    settings: WorkerSettings,
    env: Mapping[str, str],
    reaper: Reaper,
    on_line: Callable[[int, str], None],
) -> None:
    """Install the folder's dependencies; WorkerError (``install_failed``) if npm fails."""
    npm = shutil.which("npm", path=env.get("PATH"))
    if npm is None:
        raise WorkerError(
            "The assistant's package.json lists dependencies and node_modules is missing, "
            "but npm is not on the PATH to install them.",
            code="install_failed",
        )
    tail: deque[str] = deque(maxlen=OUTPUT_TAIL)
    with reaper.spawning():
        process = await asyncio.create_subprocess_exec(
            *npm_command(npm, settings),
            cwd=folder,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        reaper.manage(process.pid)

    def line(text: str) -> None:
        tail.append(text)
        on_line(process.pid, text)

    assert process.stdout is not None
    output = asyncio.create_task(pump(process.stdout, line))
    log.info("installing dependencies", path=str(folder), pid=process.pid)
    try:
        async with asyncio.timeout(settings.install_timeout):
            code = await process.wait()
            await output
    except BaseException as exc:
        # Timed out, or the daemon is stopping: npm and whatever it started go.
        signal_group(process.pid, signal.SIGKILL)
        with contextlib.suppress(BaseException):
            await process.wait()
        output.cancel()
        if isinstance(exc, TimeoutError):
            raise WorkerError(
                f"npm install did not finish within {settings.install_timeout:g} s.",
                code="install_failed",
                details={"output": list(tail)},
            ) from None
        raise
    finally:
        reaper.release(process.pid)
    if code != 0:
        raise WorkerError(
            f"npm install failed (exit code {code}): {tail[-1] if tail else 'no output'}",
            code="install_failed",
            details={"exit_code": code, "output": list(tail)},
        )
    log.info("dependencies installed", path=str(folder))
