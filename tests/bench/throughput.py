"""Benchmark 2: throughput of 8 DEALER clients pipelining getAssistant, against the echo floor.

Target: >= 0.7x the floor's replies per second with the same clients (the figure is the median
of the ratios of rounds run side by side). The clients live in this one process behind one
poller, with pre-encoded requests, so that the client side costs little next to the server (its
CPU use is printed to show it); each keeps IN_FLIGHT requests outstanding and sends a new one per
reply.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import NamedTuple

import zmq

from .common import (
    Figure,
    Socket,
    alternate,
    connect,
    daemon_and_echo,
    detail,
    heading,
    median,
    report,
    request_body,
    run_alone,
    zmq_context,
)
from .corpus import DEFAULT_ID

CLIENTS = 8
IN_FLIGHT = 8
ROUNDS = 20
SECONDS = 0.5
DRAIN_TIMEOUT_MS = 10_000
TARGET = 0.7


class Rate(NamedTuple):
    replies_per_second: float
    client_cpu: float
    """CPU seconds the client process used per second (with its zmq I/O thread): near 1.0
    would mean that the client, not the server, set the pace."""


def pump(sockets: Sequence[Socket], requests: Sequence[bytes], seconds: float) -> Rate:
    """Replies per second while every socket keeps IN_FLIGHT requests outstanding."""
    poller = zmq.Poller()
    for socket in sockets:
        poller.register(socket, zmq.POLLIN)
    count = len(requests)
    sent = received = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    deadline = start + seconds
    for socket in sockets:
        for _ in range(IN_FLIGHT):
            socket.send(requests[sent % count])
            sent += 1
    while time.perf_counter() < deadline:
        for socket, _ in poller.poll(100):
            received += _answer_all(socket, requests, sent)
            sent = received + len(sockets) * IN_FLIGHT
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    _drain(poller, sent - received)
    return Rate(received / elapsed, cpu / elapsed)


def _answer_all(socket: Socket, requests: Sequence[bytes], sent: int) -> int:
    """Read every reply waiting on ``socket``, sending one new request for each."""
    replies = 0
    while True:
        try:
            socket.recv(zmq.NOBLOCK)
        except zmq.Again:
            return replies
        socket.send(requests[(sent + replies) % len(requests)])
        replies += 1


def _drain(poller: zmq.Poller, outstanding: int) -> None:
    """Collect the replies still in flight, so that the next round starts from empty queues.

    They are checked too: a server answering errors would otherwise look fast.
    """
    while outstanding:
        ready = poller.poll(DRAIN_TIMEOUT_MS)
        if not ready:
            raise RuntimeError(f"{outstanding} replies never came")
        for socket, _ in ready:
            while True:
                try:
                    reply = socket.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if b'"result"' not in reply:
                    raise RuntimeError(f"an error reply: {reply[:300]!r}")
                outstanding -= 1


def run() -> list[Figure]:
    heading(
        f"throughput: {CLIENTS} DEALER clients x {IN_FLIGHT} in flight, getAssistant "
        f"({ROUNDS} x {SECONDS:g} s per server)"
    )
    # Distinct ids, as real clients send; encoded up front so the clients stay cheap.
    requests = [
        request_body("getAssistant", {"assistant_id": DEFAULT_ID}, number) for number in range(4096)
    ]
    with daemon_and_echo() as pair, zmq_context() as context:
        daemon = [connect(context, zmq.DEALER, pair.daemon) for _ in range(CLIENTS)]
        echo = [connect(context, zmq.DEALER, pair.echo) for _ in range(CLIENTS)]
        pump(daemon, requests, 0.3)  # warm-up: connections made, code paths hot
        pump(echo, requests, 0.3)
        daemon_rates, echo_rates = alternate(
            ROUNDS,
            lambda: pump(daemon, requests, SECONDS),
            lambda: pump(echo, requests, SECONDS),
        )
    for name, rates in (("daemon", daemon_rates), ("echo floor", echo_rates)):
        per_second = [rate.replies_per_second for rate in rates]
        detail(
            f"{name:>10}: median {median(per_second):6.0f} replies/s "
            f"(rounds {min(per_second):.0f} .. {max(per_second):.0f}), client CPU "
            f"{median([rate.client_cpu for rate in rates]):.2f} s/s"
        )
    # Each daemon round ran next to an echo round: the ratio within a pair cancels load that
    # drifts between rounds, which the ratio of the two overall medians would not.
    paired = [
        daemon.replies_per_second / echo.replies_per_second
        for daemon, echo in zip(daemon_rates, echo_rates, strict=True)
    ]
    detail(f"ratio per round: {min(paired):.2f}x .. {max(paired):.2f}x")
    figures = [
        Figure(
            "throughput, 8 DEALER clients",
            median(paired),
            TARGET,
            versus="echo floor",
            higher_is_better=True,
        )
    ]
    report(figures)
    return figures


if __name__ == "__main__":
    run_alone(run)
