"""The gateway's HTTP/1.1, byte for byte over raw sockets: keep-alive, pipelining, request
bodies in both framings, ``Expect: 100-continue``, HTTP/1.0, and malformed or oversized
requests, each answered in OpenAI's error shape without harm to the next connection."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from assistantd.http.server import HEAD_BUFFER_LIMIT, MAX_BODY, MAX_HEAD
from tests.http.helpers import (
    Gateway,
    RawConnection,
    assert_openai_error,
    http,
    request_bytes,
    running_gateway,
)
from tests.utils import running_daemon


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("assistants")
    with running_daemon(root) as daemon, running_gateway(daemon.runtime_dir) as running:
        yield running


def get(gateway: Gateway, path: str, **kwargs: object) -> bytes:
    return request_bytes("GET", path, gateway.port, **kwargs)  # type: ignore[arg-type]


def assert_still_serving(gateway: Gateway) -> None:
    status, body = http("GET", f"{gateway.url}/assistants/jan")
    assert (status, body["id"]) == (200, "jan")


def test_keep_alive_and_pipelined_requests_are_answered_in_order(gateway: Gateway) -> None:
    with RawConnection(gateway.port) as connection:
        connection.send(get(gateway, "/v1/assistants/jan"))
        first = connection.response()
        assert (first.status, first.json()["id"]) == (200, "jan")
        assert first.headers["Content-Type"] == "application/json"
        assert first.headers["Date"]
        # Three at once, the middle one an error: the answers come back in the same order.
        connection.send(
            get(gateway, "/v1/assistants/jan")
            + get(gateway, "/v1/assistants/nobody")
            + get(gateway, "/v1/assistants?limit=1")
        )
        answers = [connection.response() for _ in range(3)]
        assert [a.status for a in answers] == [200, 404, 200]
        assert answers[0].json()["id"] == "jan"
        assert answers[1].json()["error"]["param"] == "assistant_id"
        assert answers[2].json()["object"] == "list"
        connection.send(get(gateway, "/v1/assistants/jan", headers={"Connection": "close"}))
        last = connection.response()
        assert (last.status, last.headers["Connection"]) == (200, "close")
        assert connection.closed_by_peer()


def test_request_bodies_by_length_and_chunked(gateway: Gateway) -> None:
    body = json.dumps({"id": "wire-chunked", "name": "Chunked"}).encode()
    chunked = (
        b"".join(b"%x\r\n%b\r\n" % (len(part), part) for part in (body[:7], body[7:]) if part)
        + b"0\r\n\r\n"
    )
    with RawConnection(gateway.port) as connection:
        connection.send(
            request_bytes(
                "POST",
                "/v1/assistants",
                gateway.port,
                headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
                body=chunked,
            )
        )
        created = connection.response("POST")
        assert (created.status, created.json()["name"]) == (200, "Chunked")
        connection.send(
            request_bytes(
                "POST",
                "/v1/assistants/wire-chunked",
                gateway.port,
                headers={"Content-Type": "application/json"},
                body=b'{"name": "By length"}',
            )
        )
        modified = connection.response("POST")
        assert (modified.status, modified.json()["name"]) == (200, "By length")


def test_expect_100_continue_is_answered_before_the_body(gateway: Gateway) -> None:
    body = json.dumps({"name": "Patient"}).encode()
    head = request_bytes(
        "POST",
        "/v1/assistants",
        gateway.port,
        headers={"Expect": "100-continue", "Content-Length": str(len(body))},
    )
    with RawConnection(gateway.port) as connection:
        connection.send(head)
        interim = connection.socket.recv(64)  # a client waits for this before the body
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        connection.send(body)
        created = connection.response("POST")
    assert (created.status, created.json()["name"]) == (200, "Patient")


def test_expect_100_continue_waits_for_the_answers_ahead_of_it(gateway: Gateway) -> None:
    body = json.dumps({"name": "Behind"}).encode()
    behind = request_bytes(
        "POST",
        "/v1/assistants",
        gateway.port,
        headers={"Expect": "100-continue", "Content-Length": str(len(body))},
    )
    with RawConnection(gateway.port) as connection:
        connection.send(get(gateway, "/v1/assistants/jan") + behind)
        # Sent before the GET's answer, the 100 would be taken for that request's.
        status, answer = connection.message()
        assert (status, json.loads(answer)["id"]) == ("HTTP/1.1 200 OK", "jan")
        assert connection.message() == ("HTTP/1.1 100 Continue", b"")
        connection.send(body)
        created = connection.response("POST")
    assert (created.status, created.json()["name"]) == (200, "Behind")


def test_expect_100_continue_is_not_answered_to_http_1_0(gateway: Gateway) -> None:
    with RawConnection(gateway.port) as connection:
        connection.send(
            request_bytes(
                "POST",
                "/v1/assistants",
                gateway.port,
                headers={"Expect": "100-continue"},
                body=json.dumps({"name": "Old"}).encode(),
                version="HTTP/1.0",
            )
        )
        status, answer = connection.message()
    assert (status, json.loads(answer)["name"]) == ("HTTP/1.1 200 OK", "Old")


def test_head_is_get_without_the_body_and_the_connection_goes_on(gateway: Gateway) -> None:
    with RawConnection(gateway.port) as connection:
        connection.send(
            request_bytes("HEAD", "/v1/assistants/jan", gateway.port)
            + get(gateway, "/v1/assistants/jan")
            + request_bytes("HEAD", "/v1/assistants/nobody", gateway.port)
            + request_bytes("HEAD", "/v1/assistants", gateway.port, headers={"Origin": "null"})
            + get(gateway, "/v1/assistants/nobody")
        )
        head = connection.response("HEAD")
        got = connection.response()
        assert (head.status, head.body) == (200, b"")
        assert (got.status, got.json()["id"]) == (200, "jan")
        # The same head as GET's, the length of the body GET gets included.
        assert head.headers["Content-Length"] == str(len(got.body))
        assert head.headers["Content-Type"] == "application/json"
        # Errors too, the gateway's own refusals as well: the head only, then the next answer.
        missing, refused = connection.response("HEAD"), connection.response("HEAD")
        assert (missing.status, missing.body) == (404, b"")
        assert (refused.status, refused.body) == (403, b"")
        assert int(missing.headers["Content-Length"]) > 0
        after = connection.response()
        assert (after.status, after.json()["error"]["param"]) == (404, "assistant_id")
    with RawConnection(gateway.port) as connection:
        connection.send(request_bytes("HEAD", "/v1/events", gateway.port))
        stream = connection.response("HEAD")
        assert (stream.status, stream.body) == (200, b"")
        assert stream.headers["Content-Type"] == "text/event-stream"
        assert connection.closed_by_peer()  # as the head says: a stream ends its connection
    with RawConnection(gateway.port) as connection:
        connection.send(request_bytes("DELETE", "/v1/snapshot", gateway.port))
        assert connection.response("DELETE").headers["Allow"] == "GET, HEAD"


def test_http_1_0_closes_unless_kept_alive(gateway: Gateway) -> None:
    with RawConnection(gateway.port) as connection:
        connection.send(get(gateway, "/v1/assistants/jan", version="HTTP/1.0"))
        response = connection.response()
        assert (response.status, response.json()["id"]) == (200, "jan")
        assert connection.closed_by_peer()
    with RawConnection(gateway.port) as connection:
        kept = get(
            gateway, "/v1/assistants/jan", version="HTTP/1.0", headers={"Connection": "keep-alive"}
        )
        connection.send(kept)
        assert connection.response().headers["Connection"] == "keep-alive"
        connection.send(kept)
        assert connection.response().status == 200


@pytest.mark.parametrize(
    ("request_text", "status", "code"),
    [
        (b"GARBAGE\r\n\r\n", 400, "invalid_http"),
        (b"GET /v1/assistants HTTP/9.9\r\nHost: localhost\r\n\r\n", 400, "invalid_http"),
        (
            b"GET /v1/assistants HTTP/1.1\r\nHost: localhost\r\nBad Header: x\r\n\r\n",
            400,
            "invalid_http",
        ),
        (
            b"POST /v1/assistants HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
            "invalid_http",
        ),
        (
            b"POST /v1/assistants HTTP/1.1\r\nHost: localhost\r\nContent-Length: x\r\n\r\n",
            400,
            "invalid_http",
        ),
        (
            b"POST /v1/assistants HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n"
            % (MAX_BODY + 1),
            413,
            "request_too_large",
        ),
        (
            b"GET /v1/assistants HTTP/1.1\r\nHost: localhost\r\nX-Big: %b\r\n\r\n"
            % (b"x" * (MAX_HEAD + 1)),
            431,
            "headers_too_large",
        ),
        (
            b"GET /v1/assistants HTTP/1.1\r\nHost: localhost\r\n"
            + b"".join(b"X-%d: 1\r\n" % n for n in range(101))
            + b"\r\n",
            431,
            "headers_too_large",
        ),
    ],
)
def test_malformed_and_oversized_requests_get_an_error_and_a_close(
    gateway: Gateway, request_text: bytes, status: int, code: str
) -> None:
    with RawConnection(gateway.port) as connection:
        connection.send(request_text)
        response = connection.response()
        assert response.status == status
        assert_openai_error(response.json(), code)
        assert response.headers["Connection"] == "close"
        assert connection.closed_by_peer()
    assert_still_serving(gateway)


def test_a_head_that_never_ends_is_refused(gateway: Gateway) -> None:
    with RawConnection(gateway.port) as connection:
        connection.send(b"GET /v1/assistants HTTP/1.1\r\nHost: localhost\r\nX-Endless: ")
        try:
            for _ in range(HEAD_BUFFER_LIMIT // 65536 + 2):
                connection.send(b"x" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway answered and closed while the rest was on its way
        response = connection.response()
    assert response.status == 431
    assert_openai_error(response.json(), "headers_too_large")
    assert_still_serving(gateway)


def test_a_chunked_body_over_the_limit_is_refused(gateway: Gateway) -> None:
    chunk = b"x" * (1 << 20)
    head = request_bytes(
        "POST", "/v1/assistants", gateway.port, headers={"Transfer-Encoding": "chunked"}
    )
    with RawConnection(gateway.port) as connection:
        connection.send(head)
        try:
            for _ in range(MAX_BODY // len(chunk) + 1):
                connection.send(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway answered and closed while the rest was on its way
        response = connection.response("POST")
    assert response.status == 413
    assert_openai_error(response.json(), "request_too_large")
    assert_still_serving(gateway)


def test_bodies_that_are_not_a_json_object(gateway: Gateway) -> None:
    for body, code in (
        (b'{"name": ', "invalid_json"),
        (b"[1]", "invalid_type"),
        (b"\xff", "invalid_json"),
    ):
        status, answer = http("POST", f"{gateway.url}/assistants", raw=body)
        assert status == 400, body
        assert_openai_error(answer, code)


def test_an_upgrade_is_answered_as_a_plain_request_then_closed(gateway: Gateway) -> None:
    with RawConnection(gateway.port) as connection:
        connection.send(
            get(
                gateway,
                "/v1/assistants/jan",
                headers={
                    "Connection": "Upgrade, HTTP2-Settings",
                    "Upgrade": "h2c",
                    "HTTP2-Settings": "AAMAAABkAARAAAAAAAIAAAAA",
                },
            )
        )
        response = connection.response()
        assert (response.status, response.json()["id"]) == (200, "jan")
        assert connection.closed_by_peer()


def assistant_ids(gateway: Gateway) -> list[str]:
    status, page = http("GET", f"{gateway.url}/assistants?limit=100")
    assert status == 200
    return [assistant["id"] for assistant in page["data"]]


@pytest.mark.parametrize("framing", ["Content-Length", "Transfer-Encoding"])
def test_an_upgrade_with_a_body_is_refused(gateway: Gateway, framing: str) -> None:
    # The parser ends an upgrade's message at its head: taken, it would be carried out as if
    # the body were empty (here, an assistant made with none of the fields sent).
    before = assistant_ids(gateway)
    body = json.dumps({"id": "upgraded", "name": "Upgraded"}).encode()
    headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Content-Type": "application/json"}
    if framing == "Transfer-Encoding":
        headers["Transfer-Encoding"] = "chunked"
        body = b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body)
    with RawConnection(gateway.port) as connection:
        connection.send(
            request_bytes("POST", "/v1/assistants", gateway.port, headers=headers, body=body)
        )
        response = connection.response("POST")
        assert response.status == 400
        assert_openai_error(response.json(), "invalid_http")
        assert connection.closed_by_peer()
    assert assistant_ids(gateway) == before


def test_options_without_a_preflight_lists_the_methods(gateway: Gateway) -> None:
    with RawConnection(gateway.port) as connection:
        connection.send(request_bytes("OPTIONS", "/v1/assistants", gateway.port))
        response = connection.response("OPTIONS")
    assert response.status == 204
    assert response.headers["Allow"] == "GET, HEAD, POST, DELETE, OPTIONS"


def test_absolute_form_targets_and_percent_encoded_ids(gateway: Gateway) -> None:
    with RawConnection(gateway.port) as connection:
        connection.send(get(gateway, f"http://127.0.0.1:{gateway.port}/v1/assistants/jan"))
        assert connection.response().json()["id"] == "jan"
        connection.send(get(gateway, "/v1/assistants/j%61n"))
        assert connection.response().json()["id"] == "jan"
        connection.send(get(gateway, "/v1/assistants/a%2Fb"))
        refused = connection.response()
        assert refused.status in (400, 404)
        assert refused.json()["error"]["param"] == "assistant_id"
