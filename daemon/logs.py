"""Logging: every line goes through structlog, as JSON or for a console."""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

import structlog

LogFormat = Literal["json", "console"]
LEVELS = ("debug", "info", "warning", "error", "critical")


def default_format(stream: TextIO = sys.stderr) -> LogFormat:
    """Console lines for a person at a terminal, JSON for journald and log collectors."""
    return "console" if stream.isatty() else "json"


def configure(log_format: LogFormat, level: str, stream: TextIO = sys.stderr) -> None:
    """Set up structlog for the whole process; also routes the stdlib's logging through it."""
    renderer: structlog.typing.Processor
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    numeric_level = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        # Filtering in the bound logger makes a debug call that is off cost almost nothing.
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    # Libraries (asyncio, pyzmq) log through the stdlib; hand their records to structlog too.
    handler = logging.Handler()
    handler.emit = _forward  # type: ignore[method-assign]
    logging.basicConfig(level=numeric_level, handlers=[handler], force=True)


def _forward(record: logging.LogRecord) -> None:
    logger = structlog.get_logger(record.name)
    method = getattr(logger, record.levelname.lower(), logger.info)
    method(record.getMessage(), exc_info=record.exc_info or None)
