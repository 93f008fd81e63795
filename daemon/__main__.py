"""``assistantd``: run the daemon in the foreground (as systemd and terminals both expect)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from .config import ConfigError, Settings, resolve
from .logs import LEVELS, configure, default_format


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
    parser.add_argument("--command", metavar="ENDPOINT", help="command endpoint (ipc://...)")
    parser.add_argument("--events", metavar="ENDPOINT", help="event endpoint (ipc://...)")
    parser.add_argument("--log-format", choices=("json", "console"))
    parser.add_argument("--log-level", choices=LEVELS)
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file with the same keys (default: $XDG_CONFIG_HOME/assistantd/config.toml)",
    )
    return parser


@contextmanager
def captured_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT ask for a clean shutdown while the daemon runs; restored after."""
    handled = (signal.SIGTERM, signal.SIGINT)
    for signum in handled:
        loop.add_signal_handler(signum, stop.set)
    try:
        yield
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)


async def serve(settings: Settings) -> None:
    from .daemon import Daemon  # imported here so `--help` stays quick

    stop = asyncio.Event()
    shutdown = stop.wait()
    with captured_signals(asyncio.get_running_loop(), stop):
        try:
            await Daemon(settings).run(shutdown=shutdown)
        finally:
            shutdown.close()  # never awaited when the start is refused


def main(argv: Sequence[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    try:
        settings = resolve(vars(options), default_log_format=default_format())
    except ConfigError as exc:
        configure(default_format(), "info")
        _fail(str(exc))
        return 2
    configure(settings.log_format, settings.log_level)
    try:
        asyncio.run(serve(settings))
    except ConfigError as exc:
        _fail(str(exc))
        return 1
    return 0


def _fail(message: str) -> None:
    import structlog

    structlog.get_logger("assistantd").error("cannot start", reason=message)


if __name__ == "__main__":
    sys.exit(main())
