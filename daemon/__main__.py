"""``assistantd``: run the daemon in the foreground (as systemd and terminals both expect)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from . import lean  # noqa: F401 - first: it keeps rich out of the daemon's start
from .config import ConfigError, Settings, resolve
from .logs import LEVELS, configure, default_format

if TYPE_CHECKING:
    from .activation import Activation


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assistantd",
        description="Serve a folder of AI assistants over ZeroMQ.",
        epilog="Environment: ASSISTANTD_ROOT, ASSISTANTD_RUNTIME_DIR, XDG_DATA_HOME, "
        "XDG_RUNTIME_DIR, XDG_CONFIG_HOME (for the default --config).",
    )
    parser.add_argument("--root", metavar="PATH", help="the assistants folder")
    parser.add_argument(
        "--runtime-dir", metavar="PATH", help="folder of command.sock and events.sock"
    )
    parser.add_argument(
        "--command", metavar="ENDPOINT", help="command endpoint (ipc://PATH or tcp://HOST:PORT)"
    )
    parser.add_argument(
        "--events", metavar="ENDPOINT", help="event endpoint (ipc://PATH or tcp://HOST:PORT)"
    )
    parser.add_argument(
        "--curve-clients",
        metavar="DIR",
        help="folder of the client public keys (NAME.key) allowed on tcp:// endpoints",
    )
    parser.add_argument(
        "--curve-secret-key",
        metavar="FILE",
        help="the daemon's CURVE key pair for tcp:// (default: server.key_secret in its state "
        "dir, made on first use)",
    )
    parser.add_argument(
        "--insecure-tcp",
        action="store_true",
        help="serve tcp:// endpoints without CURVE: anyone who reaches them has full control",
    )
    parser.add_argument("--log-format", choices=("json", "console"))
    parser.add_argument("--log-level", choices=LEVELS)
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file with the same keys (default: $XDG_CONFIG_HOME/assistantd/config.toml)",
    )
    return parser


@contextmanager
def captured_signals(
    loop: asyncio.AbstractEventLoop, stop: asyncio.Event, reload: asyncio.Event
) -> Iterator[None]:
    """SIGTERM and SIGINT ask for a clean shutdown while the daemon runs, SIGHUP for a reload
    of the config (systemd's ExecReload=); restored after."""
    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    for signum in handled:
        loop.add_signal_handler(signum, reload.set if signum == signal.SIGHUP else stop.set)
    try:
        yield
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)


async def serve(
    settings: Settings,
    activation: Activation | None = None,
    reread: Callable[[], Settings] | None = None,
) -> None:
    from .daemon import Daemon  # imported here so `--help` stays quick

    stop, reload = asyncio.Event(), asyncio.Event()
    shutdown = stop.wait()
    with captured_signals(asyncio.get_running_loop(), stop, reload):
        try:
            await Daemon(settings, reread=reread, activation=activation).run(
                shutdown=shutdown, reloads=reload
            )
        finally:
            shutdown.close()  # never awaited when the start is refused


def main(argv: Sequence[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    try:
        # A reload (SIGHUP) resolves the settings again from the same sources.
        reread = functools.partial(resolve, vars(options), default_log_format=default_format())
        settings = reread()
    except ConfigError as exc:
        configure(default_format(), "info")
        _fail(str(exc))
        return 2
    configure(settings.log_format, settings.log_level)
    try:
        from .activation import take_passed_sockets  # imported here so `--help` stays quick

        # Before the event loop opens fds of its own: systemd's sockets are fds 3, 4, ...
        activation = take_passed_sockets()
        asyncio.run(serve(settings, activation, reread))
    except ConfigError as exc:
        _fail(str(exc))
        return 1
    return 0


def _fail(message: str) -> None:
    import structlog

    structlog.get_logger("assistantd").error("cannot start", reason=message)


if __name__ == "__main__":
    sys.exit(main())
