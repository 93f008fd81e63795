"""Who may use the gateway: browser origins (CORS), Host names (DNS rebinding), as a browser
and a rebinding page would meet them, against a real gateway and daemon."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from assistantd.http.access import Access, Origins, check_origin, is_loopback_host
from tests.http.helpers import (
    Gateway,
    RawConnection,
    assert_openai_error,
    http,
    http_full,
    request_bytes,
    run_gateway_to_exit,
    running_gateway,
)
from tests.utils import DaemonProcess, running_daemon

PAGE = "http://localhost:5173"  # a dev server's page, a loopback origin
EVIL = "https://evil.example"


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    root = tmp_path_factory.mktemp("assistants")
    with running_daemon(root) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def gateway(shared_daemon: DaemonProcess) -> Iterator[Gateway]:
    with running_gateway(shared_daemon.runtime_dir) as running:
        yield running


def test_a_preflight_from_an_allowed_origin_says_what_may_be_sent(gateway: Gateway) -> None:
    status, headers, body = http_full(
        "OPTIONS",
        f"{gateway.url}/assistants",
        headers={
            "Origin": PAGE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization, x-stainless-os",
        },
    )
    assert (status, body) == (204, None)
    assert headers["Access-Control-Allow-Origin"] == PAGE
    assert headers["Vary"] == "Origin"
    assert set(headers["Access-Control-Allow-Methods"].split(", ")) == {
        "GET",
        "HEAD",
        "POST",
        "DELETE",
        "OPTIONS",
    }
    allowed = {name.strip().lower() for name in headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "openai-beta", "last-event-id"} <= allowed
    assert "x-stainless-os" in allowed
    assert int(headers["Access-Control-Max-Age"]) > 0


@pytest.mark.parametrize("origin", [PAGE, "http://127.0.0.1:8080", "http://[::1]:3000"])
def test_an_allowed_origin_gets_cors_headers_on_answers_and_errors(
    gateway: Gateway, origin: str
) -> None:
    for path, expected in (("/assistants/jan", 200), ("/assistants/nobody", 404), ("/x", 404)):
        status, headers, _ = http_full("GET", gateway.url + path, headers={"Origin": origin})
        assert status == expected, path
        assert headers["Access-Control-Allow-Origin"] == origin, path
        assert headers["Vary"] == "Origin"


def test_an_allowed_origin_gets_cors_headers_on_the_event_stream(gateway: Gateway) -> None:
    with RawConnection(gateway.port) as connection:
        connection.send(request_bytes("GET", "/v1/events", gateway.port, headers={"Origin": PAGE}))
        connection.socket.settimeout(15)
        head = b""
        while b"\r\n\r\n" not in head:
            head += connection.socket.recv(4096)
    lines = head.split(b"\r\n\r\n")[0].decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    fields = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines)}
    assert fields["access-control-allow-origin"] == PAGE
    assert fields["content-type"] == "text/event-stream"


@pytest.mark.parametrize(
    "origin",
    [
        EVIL,
        "null",  # sandboxed frames, data: pages
        "http://localhost.evil.example",
        "http://127.0.0.1.nip.io:1337",
        "https://localhost:5173",  # another scheme is another origin
        "http://localhost:5173, https://evil.example",
        "",
    ],
)
def test_another_origin_is_refused_before_anything_is_done(gateway: Gateway, origin: str) -> None:
    # A cross-site form post needs no preflight: it must be stopped by its Origin alone.
    form = f"id=from-{len(origin)}&name=x".encode()
    status, headers, body = http_full(
        "POST",
        f"{gateway.url}/assistants",
        raw=form,
        headers={"Origin": origin, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 403
    assert_openai_error(body, "origin_not_allowed")
    assert "Access-Control-Allow-Origin" not in headers
    status, headers, body = http_full(
        "OPTIONS",
        f"{gateway.url}/assistants",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    assert status == 403
    assert "Access-Control-Allow-Origin" not in headers
    status, page = http("GET", f"{gateway.url}/assistants?limit=100")
    assert status == 200
    assert all(not a["id"].startswith("from-") for a in page["data"])


def test_requests_without_an_origin_are_served(gateway: Gateway) -> None:
    # curl, the openai package: no Origin, no CORS; Vary still tells caches it matters.
    status, headers, body = http_full("GET", f"{gateway.url}/assistants/jan")
    assert (status, body["id"]) == (200, "jan")
    assert "Access-Control-Allow-Origin" not in headers
    assert headers["Vary"] == "Origin"


@pytest.mark.parametrize(
    "host",
    ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}", "LOCALHOST:{port}", "localhost"],
)
def test_loopback_host_names_are_served(gateway: Gateway, host: str) -> None:
    with RawConnection(gateway.port) as connection:
        connection.send(
            request_bytes(
                "GET", "/v1/assistants/jan", gateway.port, host=host.format(port=gateway.port)
            )
        )
        response = connection.response()
    assert (response.status, response.json()["id"]) == (200, "jan")


@pytest.mark.parametrize(
    "host",
    ["rebind.evil.example:{port}", "localhost.evil.example", "10.0.0.1:{port}", "[::1", "a:b:c"],
)
def test_other_host_names_are_refused(gateway: Gateway, host: str) -> None:
    with RawConnection(gateway.port) as connection:
        connection.send(
            request_bytes(
                "GET", "/v1/assistants/jan", gateway.port, host=host.format(port=gateway.port)
            )
        )
        response = connection.response()
    assert response.status == 403
    assert_openai_error(response.json(), "host_not_allowed")


def test_a_missing_or_repeated_host_is_a_400(gateway: Gateway) -> None:
    with RawConnection(gateway.port) as connection:
        connection.send(request_bytes("GET", "/v1/assistants/jan", gateway.port, host=""))
        response = connection.response()
    assert response.status == 400
    assert_openai_error(response.json(), "invalid_host")
    with RawConnection(gateway.port) as connection:
        twice = {"Host": "evil.example"}
        connection.send(request_bytes("GET", "/v1/assistants/jan", gateway.port, headers=twice))
        response = connection.response()
    assert response.status == 400


def test_configured_origins_replace_the_loopback_default(
    shared_daemon: DaemonProcess,
) -> None:
    with running_gateway(
        shared_daemon.runtime_dir,
        "--cors-origin",
        "app://my-app",
        "--cors-origin",
        "https://ui.example:*",
    ) as gateway:
        for origin, allowed in (
            ("app://my-app", True),
            ("https://ui.example:8443", True),
            ("https://ui.example", True),
            (PAGE, False),
            ("app://my-app2", False),
        ):
            status, headers, _ = http_full(
                "GET", f"{gateway.url}/assistants/jan", headers={"Origin": origin}
            )
            assert status == (200 if allowed else 403), origin
            assert headers.get("Access-Control-Allow-Origin") == (origin if allowed else None)


@pytest.mark.parametrize(
    ("origin", "words"),
    [
        ("null", "sandboxed"),
        ("*", "name each origin"),
        ("http://localhost:5173/", "not an origin"),
        ("localhost:5173", "not an origin"),
        ("http://localhost:99999", "not an origin"),
        ("HTTP://LOCALHOST", "not an origin"),
    ],
)
def test_origins_that_cannot_be_allowed_stop_the_start(
    tmp_path: Path, origin: str, words: str
) -> None:
    refused = run_gateway_to_exit("--runtime-dir", str(tmp_path), "--cors-origin", origin)
    assert refused.returncode == 2
    assert "--cors-origin" in refused.stderr
    assert words in refused.stderr


def test_the_rules_as_functions() -> None:
    origins = Origins(["http://localhost:*", "app://my-app", "file://"])
    assert origins.allows("http://localhost")
    assert origins.allows("http://localhost:1")
    assert not origins.allows("http://localhost:")
    assert not origins.allows("http://localhostx")
    assert origins.allows("file://")
    assert not origins.allows("null")
    assert check_origin("http://[::1]:*") == "http://[::1]:*"
    assert not is_loopback_host("localhost:65536")
    access = Access(origins, token=None, check_host=True)
    assert access.refusal("GET", {"host": "localhost:1"}, frozenset()) is None
    refused = access.refusal("GET", {"host": "localhost:1", "origin": EVIL}, frozenset())
    assert refused is not None
    assert refused.status == 403
    guarded = Access(origins, token="t", check_host=False)
    preflight = {"origin": "app://my-app", "access-control-request-method": "GET"}
    assert guarded.refusal("OPTIONS", preflight, frozenset()) is None  # browsers send no token
    refused = guarded.refusal("GET", {"origin": "app://my-app"}, frozenset())
    assert refused is not None
    assert refused.status == 401
    # An empty token (the settings refuse one) would let nobody in, not everybody.
    empty = Access(origins, token="", check_host=False)
    for authorization in ("Bearer ", "Bearer", "bearer  "):
        refused = empty.refusal("GET", {"authorization": authorization}, frozenset())
        assert refused is not None
        assert refused.status == 401
