"""Benchmark 9: ``GET /v1/assistants/jan`` through ``assistantd-http``, against ZeroMQ.

The issue asks that the gateway "add no more than one ZeroMQ round trip plus HTTP parsing".
Turned into a number: the GET's median <= 2.5x the median of a bare ZeroMQ ``getAssistant``
round trip to the same daemon (the round trip itself, one more for the gateway's hop, and half
of one for parsing HTTP and re-encoding the reply). Both are timed from this process, in
alternating blocks: the GET over one keep-alive HTTP/1.1 connection with a raw socket and a
pre-built request, the round trip with a REQ socket and a pre-encoded request, so that the
client's own cost stays small on both sides.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import zmq

from .common import (
    PYTHON,
    START_TIMEOUT,
    Child,
    Figure,
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
from .corpus import DEFAULT_ID, write_assistants

ROUNDS = 20
PER_ROUND = 100  # 2,000 of each
WARMUP = 200
TARGET = 2.5
SERVING_MARK = "serving http://"
HEADER_END = b"\r\n\r\n"


def gateway_argv(runtime_dir: Path) -> list[str]:
    executable = Path(PYTHON).with_name("assistantd-http")
    entry = [str(executable)] if executable.exists() else [PYTHON, "-m", "assistantd.http"]
    # Port 0: the kernel picks a free port, and the gateway logs the one it got.
    return [*entry, "--listen", "127.0.0.1:0", "--runtime-dir", str(runtime_dir)]


def wait_for_port(gateway: Child) -> int:
    """The port from the gateway's ``serving http://HOST:PORT/v1`` line on stderr."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        for line in list(gateway.tail):
            if SERVING_MARK in line:
                address = line.split(SERVING_MARK, 1)[1].split("/", 1)[0]
                return int(address.rpartition(":")[2])
        if gateway.process.poll() is not None:
            break
        time.sleep(0.01)  # startup only, never inside the timed loops
    raise RuntimeError(f"assistantd-http did not get ready:\n{gateway.last_words()}")


@contextmanager
def gateway_running(runtime_dir: Path) -> Iterator[tuple[int, int]]:
    """An ``assistantd-http`` process for the daemon of ``runtime_dir``; yields its port and
    its pid."""
    gateway = Child(gateway_argv(runtime_dir))
    try:
        yield wait_for_port(gateway), gateway.pid
    finally:
        gateway.stop()


def cpu_seconds(pid: int) -> float:
    """The user and system CPU time ``pid`` has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_request(port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\n\r\n".encode()


def http_exchange(connection: socket.socket, request: bytes) -> tuple[int, bytes]:
    """One request on a keep-alive connection: the status and the body.

    Reads exactly one response (headers, then Content-Length bytes), so that the next request
    starts on a clean stream.
    """
    connection.sendall(request)
    buffer = b""
    while (end := buffer.find(HEADER_END)) < 0:
        chunk = connection.recv(65536)
        if not chunk:
            raise RuntimeError("the gateway closed the connection")
        buffer += chunk
    head = buffer[:end].decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    length = next(
        int(value)
        for name, _, value in (line.partition(":") for line in head[1:])
        if name.strip().lower() == "content-length"
    )
    body = buffer[end + len(HEADER_END) :]
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            raise RuntimeError("the gateway closed the connection mid-body")
        body += chunk
    return status, body


def http_round_trips(connection: socket.socket, request: bytes, count: int) -> list[float]:
    """``count`` GETs on one connection, each in microseconds; RuntimeError unless 200."""
    exchange, clock = http_exchange, time.perf_counter_ns
    samples = [0] * count
    statuses = set()
    for position in range(count):
        start = clock()
        status, _ = exchange(connection, request)
        samples[position] = clock() - start
        statuses.add(status)
    if statuses != {200}:
        raise RuntimeError(f"the gateway answered with statuses {sorted(statuses)}")
    return [sample / 1000 for sample in samples]


def run() -> list[Figure]:
    heading(
        f"GET /v1/assistants/{DEFAULT_ID} through assistantd-http against ZeroMQ getAssistant "
        f"({ROUNDS} x {PER_ROUND} each)"
    )
    with temp_dir() as base, zmq_context() as context:
        root, runtime_dir = base / "root", base / "run"
        write_assistants(root, 100)
        with (
            serving(daemon_argv(root, runtime_dir)),
            gateway_running(runtime_dir) as (port, pid),
        ):
            zmq_request = request_body("getAssistant", {"assistant_id": DEFAULT_ID})
            daemon = connect(context, zmq.REQ, command_endpoint(runtime_dir))
            call(daemon, zmq_request)  # raises if the daemon does not know the assistant
            get = http_request(port, f"/v1/assistants/{DEFAULT_ID}")
            with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                status, body = http_exchange(connection, get)
                if status != 200:
                    raise RuntimeError(f"GET answered {status}: {body[:300]!r}")
                http_round_trips(connection, get, WARMUP)
                round_trips(daemon, zmq_request, WARMUP)
                gateway_cpu = [0.0]

                def http_block() -> list[float]:
                    before = cpu_seconds(pid)
                    block = http_round_trips(connection, get, PER_ROUND)
                    gateway_cpu[0] += cpu_seconds(pid) - before
                    return block

                http_rounds, zmq_rounds = alternate(
                    ROUNDS,
                    http_block,
                    lambda: round_trips(daemon, zmq_request, PER_ROUND),
                )
            daemon.close()
    http_samples = [sample for block in http_rounds for sample in block]
    zmq_samples = [sample for block in zmq_rounds for sample in block]
    detail(f"response body: {len(body)} bytes")
    for name, samples in (("gateway GET", http_samples), ("ZeroMQ", zmq_samples)):
        detail(f"{name:>11}: median {median(samples):6.1f} us, p99 {p99(samples):6.1f} us")
    added = median(http_samples) - median(zmq_samples)
    detail(f"gateway minus ZeroMQ: {added:.1f} us (medians)")
    # Clock ticks (10 ms) over 2,000 GETs: good to about 5 us a GET.
    detail(
        f"gateway CPU per GET: {gateway_cpu[0] / len(http_samples) * 1e6:.0f} us (user + system)"
    )
    per_round = [median(h) / median(z) for h, z in zip(http_rounds, zmq_rounds, strict=True)]
    detail(f"median ratio per round: {min(per_round):.2f}x .. {max(per_round):.2f}x")
    figures = [
        Figure(
            "gateway GET / ZeroMQ getAssistant",
            median(http_samples) / median(zmq_samples),
            TARGET,
            versus="ZeroMQ round trip",
        ),
    ]
    report(figures)
    return figures


if __name__ == "__main__":
    run_alone(run)
