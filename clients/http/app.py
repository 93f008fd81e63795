"""The HTTP routes: OpenAI's Assistants API, Jan's extensions, and ``/v1/events``.

Each route is one daemon method: the path's id, the query and the JSON body become its params,
its result is the response body, and its error is the response's status (the error's
``status``) and body (``{"error": {message, type, param, code}}``, OpenAI's shape).

Every method's result is already the exact body OpenAI (or Jan's spec) answers with — the
assistant object, the ``list`` page, the ``assistant.deleted`` object — so the result goes out
as the bytes the daemon sent (see :mod:`.link`).
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import msgspec

from assistantd.protocol.errors import AssistantdError

from .access import ALLOWED_METHODS, Access, Refusal, is_preflight, preflight_headers
from .link import DaemonLink, Outcome
from .server import Request, Respond, Response, Streaming
from .sse import EventHub

SSE_HEADERS = [
    ("Cache-Control", "no-cache"),
    ("X-Accel-Buffering", "no"),  # no proxy should hold the stream back
]


@dataclass(frozen=True)
class Route:
    method: str
    """The daemon method; empty for the event stream."""
    takes_body: bool = False


EVENTS = Route("")
# The fixed paths, then the ones under /v1/assistants/{assistant_id}.
FIXED: dict[str, dict[str, Route]] = {
    "/v1/assistants": {
        "GET": Route("listAssistants"),
        "POST": Route("createAssistant", takes_body=True),
    },
    "/v1/snapshot": {"GET": Route("getSnapshot")},
    "/v1/events": {"GET": EVENTS},
}
COLLECTION_ACTIONS = {
    "download": Route("downloadAssistant", takes_body=True),
    "import": Route("importAssistant", takes_body=True),
}
"""``POST /v1/assistants/<name>``: these names are actions, not ids (a GET still reads the
assistant of that id)."""
ITEM: dict[str, Route] = {
    "GET": Route("getAssistant"),
    "POST": Route("modifyAssistant", takes_body=True),
    "DELETE": Route("deleteAssistant"),
}
ITEM_ACTIONS: dict[str, Route] = {
    "start": Route("startAssistant"),
    "stop": Route("stopAssistant"),
    "restart": Route("restartAssistant"),
    "invoke": Route("invokeAssistant", takes_body=True),
    "send": Route("sendToAssistant", takes_body=True),
    "cancel": Route("cancelDownload"),
    "export": Route("exportAssistant", takes_body=True),
}
PREFIX = "/v1/assistants/"


def find_routes(method: str, path: str) -> tuple[dict[str, Route] | None, str | None]:
    """The routes at ``path`` by HTTP method (None: no such URL), and the assistant id in it.

    >>> routes, assistant_id = find_routes("GET", "/v1/assistants/my%20one")
    >>> routes["GET"].method, assistant_id
    ('getAssistant', 'my one')
    >>> find_routes("POST", "/v1/assistants/download")[0]["POST"].method
    'downloadAssistant'
    >>> find_routes("GET", "/v1/assistants/download")[1]
    'download'
    >>> find_routes("GET", "/v1/threads"), find_routes("GET", "/v1/assistants/a/b/c")
    ((None, None), (None, None))
    """
    fixed = FIXED.get(path)
    if fixed is not None:
        return fixed, None
    if not path.startswith(PREFIX):
        return None, None
    segments = path[len(PREFIX) :].split("/")
    if not segments[0] or len(segments) > 2:
        return None, None
    if len(segments) == 1 and method == "POST" and segments[0] in COLLECTION_ACTIONS:
        return {"POST": COLLECTION_ACTIONS[segments[0]]}, None
    assistant_id = urllib.parse.unquote(segments[0])
    if len(segments) == 1:
        return ITEM, assistant_id
    action = ITEM_ACTIONS.get(segments[1])
    return ({"POST": action}, assistant_id) if action is not None else (None, None)


def allowed_methods(routes: dict[str, Route]) -> list[str]:
    """The HTTP methods ``routes`` answer: HEAD wherever GET.

    >>> allowed_methods(ITEM)
    ['GET', 'HEAD', 'POST', 'DELETE']
    """
    methods = list(routes)
    if "GET" in methods:
        methods.insert(methods.index("GET") + 1, "HEAD")
    return methods


class BadParams(Exception):
    def __init__(self, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.param = param


def body_params(body: bytes) -> dict[str, Any]:
    """The JSON object of the body (an empty body is ``{}``); :class:`BadParams` otherwise.

    >>> body_params(b'{"name": "x"}'), body_params(b" ")
    ({'name': 'x'}, {})
    """
    if not body.strip():
        return {}
    try:
        params = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise BadParams(f"The body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(params, dict):
        raise BadParams("The body must be a JSON object.", "invalid_type")
    return params


def query_params(query: str) -> dict[str, Any]:
    """The query as params: ``limit`` a number, the rest strings (the daemon checks them all,
    and refuses the ones it does not take).

    >>> query_params("limit=2&order=asc&after=asst_1")
    {'limit': 2, 'order': 'asc', 'after': 'asst_1'}
    """
    if not query:
        return {}
    params: dict[str, Any] = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    if "limit" in params:
        try:
            params["limit"] = int(params["limit"])
        except ValueError:
            raise BadParams("limit must be an integer.", "invalid_type", "limit") from None
    return params


def error_response(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> Response:
    """An error as OpenAI sends one."""
    error = {"message": message, "type": type, "param": param, "code": code}
    return Response(status, msgspec.json.encode({"error": error}), headers or [])


def daemon_error_response(exc: AssistantdError, headers: list[tuple[str, str]]) -> Response:
    """The daemon's error, with its status; ``details`` stays when the daemon gave some."""
    error = exc.to_object()
    status = error.pop("status", 500)
    return Response(status, msgspec.json.encode({"error": error}), headers)


class Gateway:
    """The gateway's answers to requests (:class:`~.server.Application`)."""

    def __init__(
        self, link: DaemonLink, hub: EventHub, access: Access, *, heartbeat: float = 15.0
    ) -> None:
        self.link = link
        self.hub = hub
        self.access = access
        self.heartbeat = heartbeat

    def handle(self, request: Request, respond: Respond) -> None:
        headers = request.headers
        cors = self.access.cors(headers)
        refusal = self.access.refusal(request.method, headers, request.repeated)
        if refusal is not None:
            respond(self._refused(refusal, cors))
            return
        if request.method == "OPTIONS":
            if is_preflight(request.method, headers):
                respond(Response(204, b"", cors + preflight_headers(headers), None))
            else:
                respond(Response(204, b"", [*cors, ("Allow", ALLOWED_METHODS)], None))
            return
        # HEAD is GET without the body (RFC 9110, 9.3.2), which the server leaves out.
        method = "GET" if request.method == "HEAD" else request.method
        routes, assistant_id = find_routes(method, request.path)
        if routes is None:
            respond(
                error_response(
                    404,
                    f"Unknown request URL: {request.method} {request.path}.",
                    code="unknown_url",
                    headers=cors,
                )
            )
            return
        route = routes.get(method)
        if route is None:
            allowed = ", ".join(allowed_methods(routes))
            respond(
                error_response(
                    405,
                    f"{request.method} is not allowed on {request.path} (allowed: {allowed}).",
                    code="method_not_allowed",
                    headers=[*cors, ("Allow", allowed)],
                )
            )
            return
        if route is EVENTS:
            respond(self._events(request, cors))
            return
        try:
            params = body_params(request.body) if route.takes_body else query_params(request.query)
        except BadParams as exc:
            respond(error_response(400, str(exc), code=exc.code, param=exc.param, headers=cors))
            return
        if assistant_id is not None:
            params["assistant_id"] = assistant_id

        def reply(outcome: Outcome) -> None:
            if isinstance(outcome, AssistantdError):
                respond(daemon_error_response(outcome, cors))
            else:
                respond(Response(200, outcome, cors))

        self.link.send(route.method, params, reply)

    def refusal(
        self, headers: dict[str, str] | None, status: int, message: str, code: str
    ) -> Response:
        cors = self.access.cors(headers) if headers is not None else [("Vary", "Origin")]
        error_type = "server_error" if status >= 500 else "invalid_request_error"
        return error_response(status, message, type=error_type, code=code, headers=cors)

    @staticmethod
    def _refused(refusal: Refusal, cors: list[tuple[str, str]]) -> Response:
        return error_response(
            refusal.status,
            refusal.message,
            code=refusal.code,
            headers=[*cors, *refusal.headers],
        )

    def _events(self, request: Request, cors: list[tuple[str, str]]) -> Streaming:
        """``GET /v1/events``: the event stream as Server-Sent Events (see :mod:`.sse`)."""
        query = dict(urllib.parse.parse_qsl(request.query))
        chunks = self._event_chunks(query.get("prefix", ""), request.headers.get("last-event-id"))
        return Streaming(chunks, [*cors, *SSE_HEADERS])

    async def _event_chunks(
        self, prefix: str, last_event_id: str | None
    ) -> AsyncGenerator[bytes, None]:
        # Subscribed at the first chunk, which the server asks for as soon as it has the
        # response (with no await between): a generator never started would never unsubscribe.
        subscriber = self.hub.subscribe(prefix, last_event_id)
        try:
            yield b": assistantd events\n\n"
            while True:
                try:
                    async with asyncio.timeout(self.heartbeat):
                        chunk = await subscriber.queue.get()
                except TimeoutError:
                    chunk = b": heartbeat\n\n"
                if chunk is None:
                    return
                yield chunk
        finally:
            self.hub.unsubscribe(subscriber)
