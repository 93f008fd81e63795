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
    set_level(level)
    structlog.configure(
        processors=[
            _below_level,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        # The level can change while the daemon runs (a reload), and loggers are cached, and
        # bound ones kept: the level is checked first thing by _below_level instead.
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    # Libraries (asyncio, pyzmq) log through the stdlib; hand their records to structlog too.
    handler = logging.Handler()
    handler.emit = _forward  # type: ignore[method-assign]
    logging.basicConfig(level=_level, handlers=[handler], force=True)


_level = logging.INFO
"""The lowest level logged, in the stdlib's numbers (set by :func:`set_level`)."""

_NUMBERS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
"""Each of :data:`LEVELS`, and the name of the logger method that logs at it."""


def set_level(level: str) -> None:
    """Log ``level`` and above from now on: in every logger, those already made included."""
    global _level
    _level = _NUMBERS[level]
    logging.getLogger().setLevel(_level)


def _below_level(
    logger: object, method_name: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """A processor that drops what is below the level (``exception`` calls come as ``error``)."""
    if _NUMBERS.get(method_name, logging.CRITICAL) < _level:
        raise structlog.DropEvent
    return event_dict


def _forward(record: logging.LogRecord) -> None:
    logger = structlog.get_logger(record.name)
    method = getattr(logger, record.levelname.lower(), logger.info)
    method(record.getMessage(), exc_info=record.exc_info or None)
