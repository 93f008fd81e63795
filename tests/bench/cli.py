"""Benchmark 5: ``assistantctl get jan`` as a whole process, against ``python -c pass``.

Target: <= 3x, with the same interpreter (the venv's). Both are timed from spawn to exit, in
alternating runs, against a running daemon. Nearly all of a short CLI's time is interpreter start
and imports; ``python -X importtime`` on the CLI shows where it goes when the target is missed.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from .common import (
    PYTHON,
    Figure,
    alternate,
    daemon_argv,
    detail,
    heading,
    median,
    report,
    run_alone,
    serving,
    temp_dir,
)
from .corpus import DEFAULT_ID

ROUNDS = 30
WARMUP = 3
TARGET = 3.0


def ctl_argv(runtime_dir: Path) -> list[str]:
    return [
        str(Path(PYTHON).with_name("assistantctl")),
        "get",
        DEFAULT_ID,
        "--runtime-dir",
        str(runtime_dir),
    ]


def timed(argv: Sequence[str]) -> float:
    """Seconds from spawn to exit; RuntimeError if the command fails."""
    start = time.perf_counter()
    finished = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if finished.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited with {finished.returncode}: "
            f"{finished.stderr.decode(errors='replace').strip()[-600:]}"
        )
    return elapsed


def run() -> list[Figure]:
    heading(f"assistantctl get {DEFAULT_ID} against python -c pass ({ROUNDS} runs each)")
    baseline = [PYTHON, "-c", "pass"]
    with temp_dir() as base:
        # An empty root: the daemon writes the default `jan` into it, as on a first start.
        (base / "root").mkdir()
        with serving(daemon_argv(base / "root", base / "run")):
            ctl = ctl_argv(base / "run")
            try:
                timed(ctl)
            except (RuntimeError, FileNotFoundError) as problem:
                detail(f"SKIPPED: assistantctl cannot run here yet: {problem}")
                return []
            for _ in range(WARMUP):
                timed(baseline)
                timed(ctl)
            python_runs, ctl_runs = alternate(ROUNDS, lambda: timed(baseline), lambda: timed(ctl))
    detail(f"python -c pass:         median {median(python_runs) * 1000:6.1f} ms")
    detail(f"assistantctl get {DEFAULT_ID}:  median {median(ctl_runs) * 1000:6.1f} ms")
    figures = [
        Figure(
            f"assistantctl get {DEFAULT_ID}",
            median(ctl_runs) / median(python_runs),
            TARGET,
            versus="python -c pass",
        )
    ]
    report(figures)
    return figures


if __name__ == "__main__":
    run_alone(run)
