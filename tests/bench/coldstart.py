"""Benchmark 4: cold start with 10,000 assistants on disk, and the daemon's memory after it.

Targets: process start until the first command is answered <= 1.5x the floor, a script that only
reads and JSON-parses the same files (process start included in both); daemon RSS after that
start <= 80 MB. "Cold" means a new process: the files are in the page cache for both, since a
benchmark cannot drop the cache without root, and the first run of each is discarded.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import zmq

from .common import (
    BENCH_DIR,
    PYTHON,
    Child,
    Context,
    Figure,
    alternate,
    command_endpoint,
    daemon_argv,
    detail,
    heading,
    median,
    report,
    request_body,
    rss_mb,
    run_alone,
    temp_dir,
    zmq_context,
)
from .corpus import DEFAULT_ID, write_assistants

ASSISTANTS = 10_000
ROUNDS = 8
RATIO_TARGET = 1.5
RSS_TARGET_MB = 80.0
# The client connects before the daemon binds and retries this often: the first command is
# waiting the moment the socket exists, and the figure is at most this late.
RECONNECT_MS = 2
FIRST_REPLY_TIMEOUT_MS = 60_000


class Start(NamedTuple):
    """One process start: seconds until done (or answering), then RSS and peak RSS in MB."""

    seconds: float
    rss: float
    peak: float
    load_seconds: float = float("nan")
    """The daemon's own figure for loading its index and binding (its ready log line)."""


def floor_start(root: Path) -> Start:
    """The reading script, from process start until it printed that it is done."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [PYTHON, BENCH_DIR / "readall.py", root], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    with process.stdout:
        line = process.stdout.readline()
    elapsed = time.perf_counter() - start
    if process.wait() != 0 or not line:
        raise RuntimeError("readall.py failed")
    parsed, rss_kb = (int(field) for field in line.split())
    if parsed != ASSISTANTS:
        raise RuntimeError(f"readall.py parsed {parsed} files, not {ASSISTANTS}")
    return Start(elapsed, rss_kb / 1024, rss_kb / 1024)


def daemon_start(context: Context, root: Path, runtime_dir: Path) -> Start:
    """The daemon, from process start until it answered its first command."""
    socket = context.socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
    socket.setsockopt(zmq.RCVTIMEO, FIRST_REPLY_TIMEOUT_MS)
    socket.connect(command_endpoint(runtime_dir))
    body = request_body("getAssistant", {"assistant_id": DEFAULT_ID})
    start = time.perf_counter()
    child = Child(daemon_argv(root, runtime_dir))
    try:
        socket.send(body)  # queued until the daemon's socket exists
        reply = socket.recv()
        elapsed = time.perf_counter() - start
        rss, peak = rss_mb(child.pid)
    except zmq.Again:
        raise RuntimeError(f"no answer from the daemon:\n{child.last_words()}") from None
    finally:
        socket.close()
        child.stop()
    if b'"result"' not in reply:
        raise RuntimeError(f"the first command failed: {reply[:300]!r}")
    return Start(elapsed, rss, peak, _ready_field(child.tail, "start_seconds"))


def _ready_field(lines: Iterable[str], name: str) -> float:
    """A field of the daemon's ``ready`` log line (NaN when it is not there)."""
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == "ready":
            return float(record.get(name, "nan"))
    return float("nan")


def run() -> list[Figure]:
    heading(f"cold start with {ASSISTANTS} assistants ({ROUNDS} starts of each, alternating)")
    with temp_dir() as base, zmq_context() as context:
        root = base / "root"
        write_assistants(root, ASSISTANTS)
        runtime_dirs = (base / f"run{number}" for number in itertools.count())
        # Discarded: the first read of freshly written files, and the first daemon start.
        floor_start(root)
        daemon_start(context, root, next(runtime_dirs))
        floors, starts = alternate(
            ROUNDS,
            lambda: floor_start(root),
            lambda: daemon_start(context, root, next(runtime_dirs)),
        )
    floor_seconds = median([start.seconds for start in floors])
    daemon_seconds = median([start.seconds for start in starts])
    rss = median([start.rss for start in starts])
    detail(
        f"floor (read + json.loads): median {floor_seconds * 1000:.0f} ms, "
        f"RSS {median([start.rss for start in floors]):.1f} MB"
    )
    detail(
        f"daemon to first answer:    median {daemon_seconds * 1000:.0f} ms, of which "
        f"{median([s.load_seconds for s in starts]) * 1000:.0f} ms loading the index "
        f"(its ready log line)"
    )
    detail(
        f"daemon RSS after start:    median {rss:.1f} MB, "
        f"peak {max(start.peak for start in starts):.1f} MB"
    )
    figures = [
        Figure(
            f"cold start, {ASSISTANTS} assistants",
            daemon_seconds / floor_seconds,
            RATIO_TARGET,
            versus="read+parse floor",
        ),
        Figure("daemon RSS after start", rss, RSS_TARGET_MB, unit=" MB"),
    ]
    report(figures)
    return figures


if __name__ == "__main__":
    run_alone(run)
