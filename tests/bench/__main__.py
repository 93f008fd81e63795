"""Run every benchmark, or the ones named, and print a table of the figures.

    .venv/bin/python -m tests.bench \\
        [roundtrip|throughput|listing|coldstart|cli|latency|workers|acquire|gateway|nodeclient ...]

Exits 0 when every benchmark ran, whether or not its targets were met (a missed target is
printed as MISSED); 1 when a benchmark could not run at all.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from collections.abc import Callable

from .common import Figure, exit_cleanly_on_signals, machine_summary

BENCHMARKS = (
    "roundtrip",
    "throughput",
    "listing",
    "coldstart",
    "cli",
    "latency",
    "workers",
    "acquire",
    "gateway",
    "nodeclient",
)


def load(name: str) -> Callable[[], list[Figure]]:
    module = importlib.import_module(f"{__package__}.{name}")
    run: Callable[[], list[Figure]] = module.run
    return run


def table(figures: list[Figure]) -> str:
    rows = ["| figure | measured | target | |", "|---|---|---|---|"]
    for figure in figures:
        verdict = "ok" if figure.met else "**MISSED**"
        rows.append(f"| {figure.name} | {figure.value_text} | {figure.target_text} | {verdict} |")
    return "\n".join(rows)


def main(names: list[str]) -> int:
    if {"-h", "--help"} & set(names):
        print(__doc__)
        return 0
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    exit_cleanly_on_signals()
    print(machine_summary(), flush=True)
    started = time.monotonic()
    figures: list[Figure] = []
    failed: list[str] = []
    for name in names or BENCHMARKS:
        try:
            figures += load(name)()
        except Exception:
            # One broken benchmark should not cost the figures of the others.
            traceback.print_exc()
            failed.append(name)
    print(f"\n== summary ({time.monotonic() - started:.0f} s)\n\n{table(figures)}\n")
    missed = [figure.name for figure in figures if not figure.met]
    print(f"MISSED: {', '.join(missed)}" if missed else "every target met")
    if failed:
        print(f"could not run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
