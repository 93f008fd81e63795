"""Benchmark 1: getAssistant round trip from a REQ client over ipc, against the echo floor.

Targets: median <= 1.2x the floor, p99 <= 1.5x. Blocks of round trips alternate between the
daemon and the floor, so that the noise of a shared machine lands on both.
"""

from __future__ import annotations

import zmq

from .common import (
    Figure,
    alternate,
    connect,
    daemon_and_echo,
    detail,
    heading,
    median,
    p99,
    report,
    round_trips,
    run_alone,
    zmq_context,
)

ROUNDS = 100
PER_ROUND = 500
WARMUP = 500
MEDIAN_TARGET = 1.2
P99_TARGET = 1.5


def run() -> list[Figure]:
    heading(f"getAssistant round trip, REQ over ipc ({ROUNDS} x {PER_ROUND} per server)")
    with daemon_and_echo() as pair, zmq_context() as context:
        daemon = connect(context, zmq.REQ, pair.daemon)
        echo = connect(context, zmq.REQ, pair.echo)
        round_trips(daemon, pair.request, WARMUP)
        round_trips(echo, pair.request, WARMUP)
        daemon_rounds, echo_rounds = alternate(
            ROUNDS,
            lambda: round_trips(daemon, pair.request, PER_ROUND),
            lambda: round_trips(echo, pair.request, PER_ROUND),
        )
    daemon_samples = [sample for block in daemon_rounds for sample in block]
    echo_samples = [sample for block in echo_rounds for sample in block]
    detail(f"reply result: {pair.reply_bytes} bytes from both servers")
    for name, samples in (("daemon", daemon_samples), ("echo floor", echo_samples)):
        detail(f"{name:>10}: median {median(samples):6.1f} us, p99 {p99(samples):6.1f} us")
    per_round = [median(d) / median(e) for d, e in zip(daemon_rounds, echo_rounds, strict=True)]
    detail(f"median ratio per round: {min(per_round):.2f}x .. {max(per_round):.2f}x")
    figures = [
        Figure(
            "getAssistant median",
            median(daemon_samples) / median(echo_samples),
            MEDIAN_TARGET,
            versus="echo floor",
        ),
        Figure(
            "getAssistant p99",
            p99(daemon_samples) / p99(echo_samples),
            P99_TARGET,
            versus="echo floor",
        ),
    ]
    report(figures)
    return figures


if __name__ == "__main__":
    run_alone(run)
