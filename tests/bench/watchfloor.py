"""The floor for write-to-event latency: a bare watchfiles loop, publishing each batch it sees.

    python tests/bench/watchfloor.py ROOT ENDPOINT [STEP_MS]

It does what any watcher built on watchfiles must do, and nothing else: watchfiles' own
``watch`` with the smallest step and debounce it takes (1 ms unless STEP_MS says otherwise: the
Rust side sleeps ``step`` between looks and yields a batch once a look finds nothing new), no
filter, and each batch sent as one message (``[b"changes", paths joined by newlines]``) from an
XPUB socket, the transport the daemon's events take. It logs ``{"event": "ready"}`` on stderr
once its watches are in place and a subscriber has arrived, so that no change before that
counts. SIGTERM ends it.
"""

from __future__ import annotations

import sys

import zmq
from watchfiles import watch

STEP_MS = 1
DEBOUNCE_MS = 1
# How often the loop comes back with an empty batch while nothing changes, to look for the
# subscriber it waits for before it says it is ready.
IDLE_MS = 50


def main() -> None:
    root, endpoint = sys.argv[1:3]
    step = int(sys.argv[3]) if len(sys.argv) > 3 else STEP_MS
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    publisher = context.socket(zmq.XPUB)
    publisher.setsockopt(zmq.LINGER, 0)
    publisher.bind(endpoint)
    ready = False
    for changes in watch(
        root,
        watch_filter=None,
        step=step,
        debounce=max(step, DEBOUNCE_MS),
        rust_timeout=IDLE_MS,
        yield_on_timeout=True,
    ):
        if not ready and publisher.poll(0, zmq.POLLIN):
            publisher.recv()  # a subscription: the watches are in place, and someone listens
            print('{"event": "ready"}', file=sys.stderr, flush=True)
            ready = True
        if changes:
            paths = "\n".join(path for _, path in changes)
            publisher.send_multipart([b"changes", paths.encode()])


if __name__ == "__main__":
    main()
