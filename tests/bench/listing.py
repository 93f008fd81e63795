"""Benchmark 3: listAssistants(limit=20) with 10,000 assistants, against the same with 100.

Target: <= 1.2x. A page should cost O(limit + log n): a daemon that walks every assistant per
page shows up here as a ratio that grows with n. Two daemons run side by side, one per folder, and
blocks of round trips alternate between them. A page from the middle (an ``after`` cursor) is
measured too, since that is the path that has to find its place in the sorted index.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import zmq

from .common import (
    Context,
    Figure,
    Socket,
    alternate,
    call,
    command_endpoint,
    connect,
    daemon_argv,
    detail,
    heading,
    median,
    p99,
    report,
    request_body,
    round_trips,
    run_alone,
    serving,
    temp_dir,
    zmq_context,
)
from .corpus import write_assistants

MANY = 10_000
FEW = 100
ROUNDS = 20
PER_ROUND = 400
WARMUP = 300
TARGET = 1.2


@dataclass(frozen=True)
class Lister:
    """A REQ socket to one daemon, and its two requests: the first page and a middle one."""

    socket: Socket
    first: bytes
    middle: bytes


@contextmanager
def lister(context: Context, count: int) -> Iterator[Lister]:
    """A daemon serving ``count`` assistants, with a client ready to list them."""
    with temp_dir() as base:
        started = time.perf_counter()
        ids = write_assistants(base / "root", count)
        detail(f"wrote {count} assistants in {time.perf_counter() - started:.1f} s")
        with serving(daemon_argv(base / "root", base / "run")):
            socket = connect(context, zmq.REQ, command_endpoint(base / "run"))
            # `created_at` grows with the position in `ids`, so this one sorts near the middle.
            middle_id = ids[len(ids) // 2]
            first = request_body("listAssistants", {"limit": 20})
            middle = request_body("listAssistants", {"limit": 20, "after": middle_id})
            for body in (first, middle):
                if len(call(socket, body)["result"]["data"]) != 20:
                    raise RuntimeError(f"{body!r} did not answer a full page")
            yield Lister(socket, first, middle)


def compare(many: Lister, few: Lister, which: str) -> tuple[list[float], list[float]]:
    """Round trips of one kind of page from both daemons, in alternating blocks."""
    many_body, few_body = getattr(many, which), getattr(few, which)
    round_trips(many.socket, many_body, WARMUP)
    round_trips(few.socket, few_body, WARMUP)
    many_rounds, few_rounds = alternate(
        ROUNDS,
        lambda: round_trips(many.socket, many_body, PER_ROUND),
        lambda: round_trips(few.socket, few_body, PER_ROUND),
    )
    return _flat(many_rounds), _flat(few_rounds)


def _flat(blocks: list[list[float]]) -> list[float]:
    return [sample for block in blocks for sample in block]


def run() -> list[Figure]:
    heading(f"listAssistants(limit=20): {MANY} assistants against {FEW}")
    figures = []
    with zmq_context() as context, lister(context, MANY) as many, lister(context, FEW) as few:
        for which, name in (
            ("first", "listAssistants(limit=20)"),
            ("middle", "listAssistants(limit=20, after=middle)"),
        ):
            many_samples, few_samples = compare(many, few, which)
            detail(
                f"{which:>6} page: {MANY}: median {median(many_samples):6.1f} us, "
                f"p99 {p99(many_samples):6.1f} us; {FEW}: median {median(few_samples):6.1f} us, "
                f"p99 {p99(few_samples):6.1f} us"
            )
            ratio = median(many_samples) / median(few_samples)
            figures.append(Figure(f"{name} median", ratio, TARGET, versus=f"{FEW} assistants"))
    report(figures)
    return figures


if __name__ == "__main__":
    run_alone(run)
