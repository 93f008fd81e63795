"""The floor for commands: a bare pyzmq asyncio ROUTER that decodes requests and encodes replies.

    python tests/bench/echo.py ENDPOINT RESULT_FILE

It does what any Python server over ZeroMQ must do for a command, and nothing else: receive the
frames, decode the JSON body, encode a reply carrying the request's id, send it back behind the
same routing envelope (REQ and DEALER clients both work). The reply's ``result`` is the content of
RESULT_FILE spliced in as it is, the same bytes the daemon answers with, so both servers move the
same bytes. It uses msgspec, the daemon's own codec: the stdlib's json would make the floor slower
and flatter the daemon's ratio. It runs as its own process, started like the daemon, and logs
``{"event": "ready"}`` on stderr once it is bound. SIGTERM ends it.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import msgspec
import zmq
import zmq.asyncio


async def serve(endpoint: str, result: bytes) -> None:
    context = zmq.asyncio.Context()
    socket = context.socket(zmq.ROUTER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.bind(endpoint)
    encoder = msgspec.json.Encoder()
    raw_result = msgspec.Raw(result)
    print('{"event": "ready"}', file=sys.stderr, flush=True)
    while True:
        frames = await socket.recv_multipart()
        request = msgspec.json.decode(frames[-1])
        reply = encoder.encode({"id": request["id"], "result": raw_result})
        await socket.send_multipart([*frames[:-1], reply])


def main() -> None:
    endpoint, result_file = sys.argv[1:3]
    asyncio.run(serve(endpoint, Path(result_file).read_bytes()))


if __name__ == "__main__":
    main()
