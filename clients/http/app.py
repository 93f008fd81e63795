"""The HTTP routes: OpenAI's Assistants API, Jan's extensions, and ``/v1/events``.

Each route is one daemon method: the path's id, the query and the JSON body become its params,
its result is the response body, and its error is the response's status (the error's
``status``) and body (``{"error": {message, type, param, code}}``, OpenAI's shape).
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from assistantd.client.aio import AsyncClient
from assistantd.protocol.errors import AssistantdError

from .sse import EventHub

CLIENT: web.AppKey[AsyncClient] = web.AppKey("client", AsyncClient)
HUB: web.AppKey[EventHub] = web.AppKey("hub", EventHub)
TOKEN: web.AppKey[str | None] = web.AppKey("token")
HEARTBEAT: web.AppKey[float] = web.AppKey("heartbeat", float)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# (HTTP method, path, daemon method, whether the body's fields are params). The fixed paths
# stand before `{assistant_id}`, which would match them too.
ROUTES: list[tuple[str, str, str, bool]] = [
    ("GET", "/v1/assistants", "listAssistants", False),
    ("POST", "/v1/assistants", "createAssistant", True),
    ("POST", "/v1/assistants/download", "downloadAssistant", True),
    ("POST", "/v1/assistants/import", "importAssistant", True),
    ("GET", "/v1/assistants/{assistant_id}", "getAssistant", False),
    ("POST", "/v1/assistants/{assistant_id}", "modifyAssistant", True),
    ("DELETE", "/v1/assistants/{assistant_id}", "deleteAssistant", False),
    ("POST", "/v1/assistants/{assistant_id}/start", "startAssistant", False),
    ("POST", "/v1/assistants/{assistant_id}/stop", "stopAssistant", False),
    ("POST", "/v1/assistants/{assistant_id}/restart", "restartAssistant", False),
    ("POST", "/v1/assistants/{assistant_id}/invoke", "invokeAssistant", True),
    ("POST", "/v1/assistants/{assistant_id}/send", "sendToAssistant", True),
    ("POST", "/v1/assistants/{assistant_id}/cancel", "cancelDownload", False),
    ("POST", "/v1/assistants/{assistant_id}/export", "exportAssistant", True),
    ("GET", "/v1/snapshot", "getSnapshot", False),
]


def error_response(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An error as OpenAI sends one."""
    error = {"message": message, "type": type, "param": param, "code": code}
    return web.json_response({"error": error}, status=status, headers=headers)


def daemon_error_response(exc: AssistantdError) -> web.Response:
    """The daemon's error, with its status; ``details`` stays when the daemon gave some."""
    error = exc.to_object()
    status = error.pop("status", 500)
    return web.json_response({"error": error}, status=status)


async def body_params(request: web.Request) -> dict[str, Any]:
    """The JSON object of the body (an empty body is ``{}``); :class:`BadBody` otherwise."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadBody(f"The body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(body, dict):
        raise BadBody("The body must be a JSON object.", "invalid_type")
    return body


class BadBody(Exception):
    def __init__(self, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.param = param


def query_params(request: web.Request) -> dict[str, Any]:
    """The query as params: ``limit`` a number, the rest strings (the daemon checks them
    all, and refuses the ones it does not take)."""
    params: dict[str, Any] = dict(request.query)
    if "limit" in params:
        try:
            params["limit"] = int(params["limit"])
        except ValueError:
            raise BadBody("limit must be an integer.", "invalid_type", "limit") from None
    return params


def command_handler(method: str, takes_body: bool) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            params = await body_params(request) if takes_body else query_params(request)
        except BadBody as exc:
            return error_response(400, str(exc), code=exc.code, param=exc.param)
        if "assistant_id" in request.match_info:
            params["assistant_id"] = request.match_info["assistant_id"]
        try:
            result = await request.app[CLIENT].request(method, params)
        except AssistantdError as exc:
            return daemon_error_response(exc)
        return web.json_response(result)

    return handle


async def events(request: web.Request) -> web.StreamResponse:
    """``GET /v1/events``: the event stream as Server-Sent Events (see :mod:`.sse`)."""
    hub = request.app[HUB]
    subscriber = hub.subscribe(
        request.query.get("prefix", ""), request.headers.get("Last-Event-ID")
    )
    try:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # no proxy should hold the stream back
            }
        )
        await response.prepare(request)
        await response.write(b": assistantd events\n\n")
        heartbeat = request.app[HEARTBEAT]
        while True:
            try:
                chunk = await asyncio.wait_for(subscriber.queue.get(), heartbeat)
            except TimeoutError:
                chunk = b": heartbeat\n\n"
            if chunk is None:
                break
            await response.write(chunk)
        return response
    finally:
        hub.unsubscribe(subscriber)


@web.middleware
async def openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer token check, and aiohttp's own errors (404, 405, 413) in OpenAI's shape."""
    token = request.app[TOKEN]
    if token is not None:
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), token.encode()
        ):
            return error_response(
                401,
                "Missing or wrong API key: send 'Authorization: Bearer <token>'.",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            return error_response(
                404, f"Unknown request URL: {request.method} {request.path}.", code="unknown_url"
            )
        if exc.status == 405:
            allowed = exc.headers.get("Allow", "")
            return error_response(
                405,
                f"{request.method} is not allowed on {request.path} (allowed: {allowed}).",
                code="method_not_allowed",
                headers={"Allow": allowed},
            )
        return error_response(exc.status, exc.reason, code=None)


def make_app(
    client: AsyncClient, hub: EventHub, *, token: str | None, heartbeat: float = 15.0
) -> web.Application:
    app = web.Application(middlewares=[openai_errors], client_max_size=8 * 1024 * 1024)
    app[CLIENT] = client
    app[HUB] = hub
    app[TOKEN] = token
    app[HEARTBEAT] = heartbeat
    for http_method, path, method, takes_body in ROUTES:
        app.router.add_route(http_method, path, command_handler(method, takes_body))
    app.router.add_get("/v1/events", events)

    async def on_shutdown(app: web.Application) -> None:
        await hub.close()  # ends every SSE stream, so that the server can stop

    app.on_shutdown.append(on_shutdown)
    return app
