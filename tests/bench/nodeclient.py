"""Benchmark 10: the Node client's getAssistant round trip, against a bare zeromq.js Request.

The issue asks for the Node client's ``getAssistant`` round trip against "a bare zeromq.js
Request to a pyzmq echo in the same run". All three series are timed inside one Node process
(``node/client_roundtrip.cjs``), in alternating blocks:

- the floor: a bare zeromq.js ``Request`` sending a pre-encoded getAssistant to the pyzmq echo
  floor (``echo.py``, replying with the daemon's own bytes for ``jan``) and not decoding it;
- ``AssistantdClient.getAssistant("jan")`` against the same echo: the client's own cost;
- ``AssistantdClient.getAssistant("jan")`` against the daemon: what a Node frontend sees.

Targets, medians: the client against the echo <= 1.2x the floor (the client adds JSON encoding
and parsing, the id match and a timer; nothing that costs a round trip), and the client against
the daemon <= 1.5x (that, times the daemon's own <= 1.2x over the echo floor, benchmark 1).
"""

from __future__ import annotations

import json
import shutil
import subprocess

from .common import (
    BENCH_DIR,
    Figure,
    daemon_and_echo,
    detail,
    heading,
    median,
    p99,
    report,
    run_alone,
)

PACKAGE_DIR = BENCH_DIR.parent.parent / "clients" / "node"
SCRIPT = BENCH_DIR / "node" / "client_roundtrip.cjs"
ROUNDS = 60
PER_ROUND = 300
CLIENT_TARGET = 1.2
END_TO_END_TARGET = 1.5
RUN_TIMEOUT = 300.0


def run() -> list[Figure]:
    node = shutil.which("node")
    if node is None or not (PACKAGE_DIR / "node_modules" / "zeromq").is_dir():
        raise RuntimeError(
            "needs node and the Node client's dependencies: run `python3 dev.py test` once "
            "(it installs them), or `npm ci --ignore-scripts` in clients/node"
        )
    heading(f"Node client getAssistant round trip over ipc ({ROUNDS} x {PER_ROUND} per series)")
    with daemon_and_echo() as pair:
        argv = [node, SCRIPT, PACKAGE_DIR, pair.daemon, pair.echo, ROUNDS, PER_ROUND]
        finished = subprocess.run(
            [str(part) for part in argv],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    if finished.returncode != 0:
        raise RuntimeError(f"the Node side failed:\n{finished.stderr}")
    blocks: dict[str, list[list[float]]] = json.loads(finished.stdout)
    samples = {name: [s for block in series for s in block] for name, series in blocks.items()}
    floor = samples["bare_echo"]
    labels = {
        "bare_echo": "bare Request -> echo",
        "client_echo": "client -> echo",
        "client_daemon": "client -> daemon",
    }
    for name, label in labels.items():
        values = samples[name]
        detail(f"{label:>22}: median {median(values):6.1f} us, p99 {p99(values):6.1f} us")
    per_round = [
        median(d) / median(e)
        for d, e in zip(blocks["client_daemon"], blocks["bare_echo"], strict=True)
    ]
    detail(f"client -> daemon / floor per round: {min(per_round):.2f}x .. {max(per_round):.2f}x")
    figures = [
        Figure(
            "Node client getAssistant (echo) median",
            median(samples["client_echo"]) / median(floor),
            CLIENT_TARGET,
            versus="bare zeromq.js Request",
        ),
        Figure(
            "Node client getAssistant (daemon) median",
            median(samples["client_daemon"]) / median(floor),
            END_TO_END_TARGET,
            versus="bare zeromq.js Request to echo",
        ),
    ]
    report(figures)
    return figures


if __name__ == "__main__":
    run_alone(run)
