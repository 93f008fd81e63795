"""The command server: a ROUTER socket that turns command frames into handler calls and replies.

This is the only place where exceptions become error replies. A frame that cannot be read gets
an error reply all the same (with ``"id": null`` when no id can be found in it), because a REQ
client that sent it would otherwise wait forever; then the server goes on with the next message.
Plain handlers are answered inline; coroutine handlers run as tasks owned by the server, so a
slow write never holds up a read, and shutdown waits for the writes already under way.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any, cast

import structlog
import zmq
import zmq.asyncio

from assistantd.protocol.codec import decode_request, encode_error, encode_result, recover_id
from assistantd.protocol.errors import AssistantdError, InternalError, InvalidRequestError
from assistantd.protocol.framing import split_envelope
from assistantd.protocol.messages import RequestId

log = structlog.get_logger("assistantd.server")

Handler = Callable[[Any], Any]

BATCH = 64
"""Commands taken from the socket in one go before the event loop runs again."""


class CommandServer:
    """Serves commands on a bound ROUTER socket until :meth:`serve`'s ``stop`` is set."""

    def __init__(self, socket: zmq.asyncio.Socket, handlers: dict[str, Handler]) -> None:
        self._socket = socket
        self._handlers = handlers

    async def serve(self, stop: asyncio.Event) -> None:
        """Answer commands until ``stop`` is set, then finish the ones under way."""
        async with asyncio.TaskGroup() as tasks:
            receiver = tasks.create_task(self._receive(tasks))
            await stop.wait()
            receiver.cancel()
        # Leaving the TaskGroup waited for every write that was already running.

    async def _receive(self, tasks: asyncio.TaskGroup) -> None:
        # Under load many commands are already queued when one arrives: take those from a
        # plain (non-asyncio) view of the same socket, without a future per message, then go
        # back to the event loop. The batch is bounded so writes finishing and other tasks
        # still get their turn. (Measured: about 10% more throughput with 8 busy clients.)
        queued: zmq.Socket[bytes] = zmq.Socket.shadow(self._socket.underlying)
        while True:
            self._handle(await self._socket.recv_multipart(), tasks)
            # EVENTS rather than a recv that may fail: a raised zmq.Again per command would
            # cost more than the check, and a lone client's command never finds a queue.
            for _ in range(BATCH):
                if not cast(int, queued.get(zmq.EVENTS)) & zmq.POLLIN:
                    break
                self._handle(queued.recv_multipart(zmq.NOBLOCK), tasks)

    def _handle(self, frames: list[bytes], tasks: asyncio.TaskGroup) -> None:
        """Answer one command: at once for a plain handler, from a task for a coroutine."""
        envelope, body = split_envelope(frames)
        if len(body) != 1:
            self._refuse(envelope, body)
            return
        try:
            request, params = decode_request(body[0])
        except AssistantdError as error:
            request_id = recover_id(body[0])
            log.warning("bad request", request_id=request_id, error=error.message)
            self._send(envelope, encode_error(request_id, error))
            return
        except Exception:
            # No message, however strange, may end the loop that serves everyone.
            log.exception("request could not be decoded")
            self._send(envelope, encode_error(recover_id(body[0]), _internal()))
            return
        handler = self._handlers[request.method]
        try:
            outcome = handler(params)
        except AssistantdError as error:
            self._send(envelope, encode_error(request.id, error))
            return
        except Exception:
            log.exception("handler failed", method=request.method)
            self._send(envelope, encode_error(request.id, _internal()))
            return
        if inspect.isawaitable(outcome):
            tasks.create_task(self._finish(envelope, request.id, request.method, outcome))
        else:
            self._send(envelope, encode_result(request.id, outcome))

    async def _finish(
        self, envelope: list[bytes], request_id: RequestId, method: str, outcome: Any
    ) -> None:
        try:
            result = await outcome
        except AssistantdError as error:
            reply = encode_error(request_id, error)
        except Exception:
            log.exception("handler failed", method=method)
            reply = encode_error(request_id, _internal())
        else:
            reply = encode_result(request_id, result)
        self._send(envelope, reply)

    def _refuse(self, envelope: list[bytes], body: list[bytes]) -> None:
        request_id = recover_id(body[0]) if body else None
        error = InvalidRequestError(
            f"A command is one JSON frame after the routing envelope; got {len(body)} frames.",
            code="invalid_frames",
        )
        log.warning("bad frames", request_id=request_id, frames=len(body))
        self._send(envelope, encode_error(request_id, error))

    def _send(self, envelope: list[bytes], reply: bytes) -> None:
        # A ROUTER never blocks on send: a reply to a peer that is gone, or over its high-water
        # mark, is dropped by ZeroMQ, which is what a vanished client should cost us.
        # With NOBLOCK, pyzmq sends at once and hands back a finished future; reading its
        # exception keeps asyncio from warning that it was never retrieved.
        sent = self._socket.send_multipart([*envelope, reply], flags=zmq.NOBLOCK)
        if isinstance(sent, asyncio.Future) and sent.done() and (problem := sent.exception()):
            log.warning("reply dropped", reason=str(problem))


def _internal() -> InternalError:
    return InternalError("The daemon failed to handle the request; its log has the details.")
