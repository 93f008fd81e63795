"""fetch(): one URL to one file, against real HTTP servers on 127.0.0.1.

Well-behaved answers come from an aiohttp.web server; misbehaving ones (a body that stalls, a
connection closed early, a client that goes away) from a raw asyncio server that writes the
bytes itself, so that each test says exactly what the other side did.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hashlib
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from assistantd.daemon.acquire.fetch import FetchError, FetchLimits, fetch

LIMITS = FetchLimits(connect_timeout=5, stall_timeout=5, total_timeout=10)
BODY = bytes(range(256)) * 40  # 10 KiB that are not all the same byte

RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def web_server(
    *routes: web.RouteDef, tls: ssl.SSLContext | None = None
) -> AsyncIterator[str]:
    """An aiohttp.web server with these routes (over TLS if given); yields its base URL."""
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    scheme = "http" if tls is None else "https"
    try:
        yield f"{scheme}://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def raw_server(handle: RawHandler) -> AsyncIterator[str]:
    """A TCP server that reads a request's head, then lets `handle` write whatever it likes."""
    tasks: set[asyncio.Task[object]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await reader.readuntil(b"\r\n\r\n")
            await handle(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def response_head(content_length: int | None) -> bytes:
    length = b"" if content_length is None else b"Content-Length: %d\r\n" % content_length
    return b"HTTP/1.1 200 OK\r\n" + length + b"Content-Type: application/octet-stream\r\n\r\n"


async def wait_for_client_to_close(reader: asyncio.StreamReader) -> None:
    """Returns when the client closes its end (the read sees EOF or a reset)."""
    with contextlib.suppress(ConnectionError):
        await reader.read()


async def fetch_error(
    url: str,
    dest: Path,
    limits: FetchLimits = LIMITS,
    *,
    sha256: str | None = None,
    session: aiohttp.ClientSession | None = None,
) -> FetchError:
    """The FetchError that fetching `url` raises (the test fails if it succeeds)."""
    with pytest.raises(FetchError) as raised:
        await fetch(url, dest, limits=limits, sha256=sha256, session=session)
    return raised.value


def contents(path: Path) -> bytes | None:
    """The file's bytes, or None when there is no file (a plain function: a test's small read)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def write_file(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def free_port() -> int:
    """A port nobody listens on: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "download"


# --- good bodies ---------------------------------------------------------------------------


async def test_a_body_with_content_length_is_saved_with_its_sha256(dest: Path) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=BODY, content_type="application/gzip")

    async with web_server(web.get("/files/pack.tgz", handler)) as base:
        fetched = await fetch(f"{base}/files/pack.tgz", dest, limits=LIMITS)
    assert contents(dest) == BODY
    assert fetched.bytes == len(BODY)
    assert fetched.sha256 == hashlib.sha256(BODY).hexdigest()
    assert fetched.final_url == f"{base}/files/pack.tgz"
    assert fetched.content_type == "application/gzip"
    assert fetched.filename == "pack.tgz"


async def test_a_chunked_body_without_content_length_is_saved(dest: Path) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(BODY), 1000):
            await response.write(BODY[start : start + 1000])
        await response.write_eof()
        return response

    totals: list[int | None] = []
    async with web_server(web.get("/stream", handler)) as base:
        fetched = await fetch(
            f"{base}/stream",
            dest,
            limits=LIMITS,
            on_progress=lambda done, total, rate: totals.append(total),
        )
    assert contents(dest) == BODY
    assert fetched.bytes == len(BODY)
    assert totals
    assert set(totals) == {None}


async def test_the_body_is_saved_as_sent_not_decompressed(dest: Path) -> None:
    packed = gzip.compress(BODY)
    asked: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        asked.append(request.headers.get("Accept-Encoding"))
        return web.Response(body=packed, headers={"Content-Encoding": "gzip"})

    async with web_server(web.get("/a.tar.gz", handler)) as base:
        fetched = await fetch(f"{base}/a.tar.gz", dest, limits=LIMITS)
    assert asked == ["identity"]
    assert contents(dest) == packed
    assert fetched.sha256 == hashlib.sha256(packed).hexdigest()


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        ('attachment; filename="assistant.zip"', "assistant.zip"),
        ("attachment; filename*=UTF-8''caf%C3%A9.zip", "café.zip"),
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('attachment; filename=".."', "get"),  # nothing usable: the URL's last segment
    ],
)
async def test_the_filename_comes_from_content_disposition_without_its_path(
    dest: Path, disposition: str, expected: str
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=b"x", headers={"Content-Disposition": disposition})

    async with web_server(web.get("/get", handler)) as base:
        fetched = await fetch(f"{base}/get", dest, limits=LIMITS)
    assert fetched.filename == expected


async def test_a_url_ending_in_a_slash_has_no_filename_and_no_content_type(dest: Path) -> None:
    async def bare(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await wait_for_client_to_close(reader)

    async with raw_server(bare) as base:
        fetched = await fetch(f"{base}/", dest, limits=LIMITS)
    assert contents(dest) == b"ok"
    assert fetched.filename is None
    assert fetched.content_type is None


# --- sha256 --------------------------------------------------------------------------------


async def test_the_expected_sha256_is_checked(tmp_path: Path) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=BODY)

    good = hashlib.sha256(BODY).hexdigest()
    bad = hashlib.sha256(b"something else").hexdigest()
    async with web_server(web.get("/f", handler)) as base:
        fetched = await fetch(f"{base}/f", tmp_path / "a", limits=LIMITS, sha256=good.upper())
        error = await fetch_error(f"{base}/f", tmp_path / "b", sha256=bad)
    assert fetched.sha256 == good
    assert error.code == "sha256_mismatch"
    assert f"expected {bad}" in str(error)
    assert f"got {good}" in str(error)


async def test_a_malformed_expected_sha256_is_a_programming_error(dest: Path) -> None:
    with pytest.raises(ValueError, match="64 hex digits"):
        await fetch("http://127.0.0.1/f", dest, limits=LIMITS, sha256="abc")
    assert contents(dest) is None


# --- progress ------------------------------------------------------------------------------


async def test_progress_is_monotonic_throttled_and_ends_at_the_size(dest: Path) -> None:
    pieces = 30

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = pieces * 1000
        await response.prepare(request)
        for _ in range(pieces):
            await response.write(b"p" * 1000)
            await asyncio.sleep(0.01)  # the server being slow, not synchronisation
        return response

    calls: list[tuple[int, int | None, float]] = []
    loop = asyncio.get_running_loop()
    async with web_server(web.get("/slow", trickle)) as base:
        started = loop.time()
        fetched = await fetch(
            f"{base}/slow",
            dest,
            limits=LIMITS,
            on_progress=lambda done, total, rate: calls.append((done, total, rate)),
        )
        elapsed = loop.time() - started
    done = [call[0] for call in calls]
    assert done == sorted(done)
    assert done[-1] == fetched.bytes == pieces * 1000
    assert {call[1] for call in calls} == {pieces * 1000}
    assert all(rate >= 0 for _, _, rate in calls)
    # At most every 0.1 s, plus the first bytes and the end: far fewer calls than chunks.
    assert len(calls) <= elapsed * 10 + 2
    assert len(calls) < pieces


# --- HTTP status and redirects -------------------------------------------------------------


@pytest.mark.parametrize(("status", "reason"), [(404, "Not Found"), (500, "Internal Server Error")])
async def test_a_non_2xx_status_is_an_error_with_the_status(
    dest: Path, status: int, reason: str
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text="nope")

    async with web_server(web.get("/f", handler)) as base:
        error = await fetch_error(f"{base}/f", dest)
    assert error.code == "http_status"
    assert error.status == status
    assert f"HTTP {status} {reason}" in str(error)
    assert contents(dest) == b""  # the error page is not the download


async def test_a_redirect_chain_is_followed(dest: Path) -> None:
    async def hop(request: web.Request) -> web.Response:
        number = int(request.match_info["n"])
        target = "/final/pack.tgz" if number == 3 else f"/hop/{number + 1}"
        raise web.HTTPFound(target)

    async def final(request: web.Request) -> web.Response:
        return web.Response(body=BODY)

    async with web_server(web.get("/hop/{n}", hop), web.get("/final/pack.tgz", final)) as base:
        fetched = await fetch(f"{base}/hop/1", dest, limits=LIMITS)
    assert contents(dest) == BODY
    assert fetched.final_url == f"{base}/final/pack.tgz"
    assert fetched.filename == "pack.tgz"


async def test_too_many_redirects_is_an_error(dest: Path) -> None:
    requests = 0

    async def loop(request: web.Request) -> web.Response:
        nonlocal requests
        requests += 1
        raise web.HTTPMovedPermanently("/loop")

    async with web_server(web.get("/loop", loop)) as base:
        limits = FetchLimits(max_redirects=3, stall_timeout=5)
        error = await fetch_error(f"{base}/loop", dest, limits)
    assert error.code == "redirects"
    assert "more than 3 redirects" in str(error)
    assert requests == 4  # the first request and 3 redirects followed


@pytest.mark.parametrize(
    ("location", "schemes"),
    [
        ("ftp://127.0.0.1/pack.tgz", {"http", "https"}),
        ("file:///etc/passwd", {"http", "https", "file"}),  # never to a local file
    ],
)
async def test_a_redirect_to_a_scheme_not_allowed_is_refused(
    dest: Path, location: str, schemes: set[str]
) -> None:
    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPFound(location)

    limits = FetchLimits(stall_timeout=5, schemes=frozenset(schemes))
    async with web_server(web.get("/r", handler)) as base:
        error = await fetch_error(f"{base}/r", dest, limits)
    assert error.code == "scheme"
    assert f"redirect to {location} refused" in str(error)


async def test_a_redirect_to_an_invalid_url_is_an_error(dest: Path) -> None:
    async def bad_location(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: http://[::1/x\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await wait_for_client_to_close(reader)

    async with raw_server(bad_location) as base:
        error = await fetch_error(f"{base}/r", dest)
    assert error.code == "invalid_url"
    assert "redirected to an invalid URL 'http://[::1/x'" in str(error)


# --- size limits ---------------------------------------------------------------------------


async def test_a_content_length_over_the_limit_is_refused_before_the_body(dest: Path) -> None:
    async def declared_large(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 10 * 1024 * 1024
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            for _ in range(160):
                await response.write(b"L" * 65536)
        return response

    async with web_server(web.get("/big", declared_large)) as base:
        error = await fetch_error(f"{base}/big", dest, FetchLimits(max_bytes=1000))
    assert error.code == "too_large"
    assert "10485760 bytes (Content-Length)" in str(error)
    assert contents(dest) == b""


async def test_a_chunked_body_over_the_limit_is_stopped_at_the_limit(dest: Path) -> None:
    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            for _ in range(1000):
                await response.write(b"C" * 1000)
        return response

    async with web_server(web.get("/endless", endless)) as base:
        error = await fetch_error(f"{base}/endless", dest, FetchLimits(max_bytes=2500))
    assert error.code == "too_large"
    assert "over the limit of 2500 bytes" in str(error)
    assert len(contents(dest) or b"") <= 2500


# --- a server that misbehaves --------------------------------------------------------------


async def test_a_body_that_stalls_is_an_error(dest: Path) -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(response_head(1000) + b"s" * 10)
        await writer.drain()
        await wait_for_client_to_close(reader)

    async with raw_server(stall) as base:
        error = await fetch_error(f"{base}/f", dest, FetchLimits(stall_timeout=0.3))
    assert error.code == "stalled"
    assert contents(dest) == b"s" * 10


async def test_a_server_that_never_answers_is_stalled(dest: Path) -> None:
    async with raw_server(lambda reader, writer: wait_for_client_to_close(reader)) as base:
        error = await fetch_error(f"{base}/f", dest, FetchLimits(stall_timeout=0.3))
    assert error.code == "stalled"


async def test_the_total_timeout_ends_a_slow_but_steady_body(dest: Path) -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(response_head(1000))
        for _ in range(1000):
            writer.write(b"t")
            await writer.drain()
            await asyncio.sleep(0.02)  # the server being slow, not synchronisation

    async with raw_server(trickle) as base:
        limits = FetchLimits(stall_timeout=5, total_timeout=0.3)
        error = await fetch_error(f"{base}/f", dest, limits)
    assert error.code == "timeout"
    assert "not finished within 0.3 s" in str(error)
    assert 0 < len(contents(dest) or b"") < 1000


async def test_a_connection_closed_before_content_length_is_closed_early(dest: Path) -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(response_head(1000) + b"c" * 10)
        await writer.drain()  # and the connection closes

    async with raw_server(short) as base:
        error = await fetch_error(f"{base}/f", dest)
    assert error.code == "closed_early"
    assert "after 10 of 1000 bytes" in str(error)


async def test_a_connection_closed_before_any_answer_is_closed_early(dest: Path) -> None:
    async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        return

    async with raw_server(close_at_once) as base:
        error = await fetch_error(f"{base}/f", dest)
    assert error.code == "closed_early"


async def test_an_answer_that_is_not_http_is_a_protocol_error(dest: Path) -> None:
    async def ssh(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        await wait_for_client_to_close(reader)

    async with raw_server(ssh) as base:
        error = await fetch_error(f"{base}/f", dest)
    assert error.code == "protocol"
    assert "not a valid HTTP answer" in str(error)
    assert "\n" not in str(error)


async def test_a_refused_connection_is_a_connect_error(dest: Path) -> None:
    error = await fetch_error(f"http://127.0.0.1:{free_port()}/f", dest)
    assert error.code == "connect"
    assert "cannot connect" in str(error)


async def test_https_to_a_plain_http_server_is_a_tls_error(dest: Path) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=BODY)

    async with web_server(web.get("/f", handler)) as base:
        error = await fetch_error(base.replace("http://", "https://") + "/f", dest)
    assert error.code == "tls"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no one has signed, and its key."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@contextlib.asynccontextmanager
async def trusting_session(certificate: tuple[Path, Path]) -> AsyncIterator[aiohttp.ClientSession]:
    """A session that trusts the test certificate, as a caller could hand to fetch()."""
    trusting = ssl.create_default_context(cafile=certificate[0])
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting)) as session:
        yield session


async def test_an_untrusted_certificate_is_a_tls_error_and_a_given_session_can_trust_it(
    tmp_path: Path, certificate: tuple[Path, Path], server_tls: ssl.SSLContext
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=BODY)

    async with web_server(web.get("/f", handler), tls=server_tls) as base:
        error = await fetch_error(f"{base}/f", tmp_path / "untrusted")
        async with trusting_session(certificate) as session:
            fetched = await fetch(f"{base}/f", tmp_path / "trusted", limits=LIMITS, session=session)
    assert error.code == "tls"
    assert "certificate verify failed" in str(error)
    assert fetched.sha256 == hashlib.sha256(BODY).hexdigest()


async def test_an_https_only_fetch_is_not_redirected_to_http(
    dest: Path, certificate: tuple[Path, Path], server_tls: ssl.SSLContext
) -> None:
    plain_requests = 0

    async def plain(request: web.Request) -> web.Response:
        nonlocal plain_requests
        plain_requests += 1
        return web.Response(body=BODY)

    async with web_server(web.get("/f", plain)) as plain_base:

        async def downgrade(request: web.Request) -> web.Response:
            raise web.HTTPFound(f"{plain_base}/f")

        async with (
            web_server(web.get("/r", downgrade), tls=server_tls) as base,
            trusting_session(certificate) as session,
        ):
            limits = FetchLimits(stall_timeout=5, schemes=frozenset({"https"}))
            error = await fetch_error(f"{base}/r", dest, limits, session=session)
    assert error.code == "scheme"
    assert plain_requests == 0


# --- cancellation --------------------------------------------------------------------------


@pytest.mark.parametrize("given_session", [False, True], ids=["own session", "given session"])
async def test_cancelling_mid_body_closes_the_connection(dest: Path, given_session: bool) -> None:
    disconnected = asyncio.Event()

    async def stream_then_wait(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(response_head(1000) + b"m" * 10)
        await writer.drain()
        await wait_for_client_to_close(reader)
        disconnected.set()

    first_bytes = asyncio.Event()

    def on_progress(done: int, total: int | None, rate: float) -> None:
        if done:
            first_bytes.set()

    async with raw_server(stream_then_wait) as base, contextlib.AsyncExitStack() as stack:
        session = None
        if given_session:
            session = await stack.enter_async_context(aiohttp.ClientSession())
        task = asyncio.create_task(
            fetch(f"{base}/f", dest, limits=LIMITS, on_progress=on_progress, session=session)
        )
        async with asyncio.timeout(5):
            await first_bytes.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The session (when given) is still open: only closing the response ends the connection.
        async with asyncio.timeout(5):
            await disconnected.wait()


# --- schemes, URLs and credentials ---------------------------------------------------------


async def test_a_file_url_is_copied_when_file_is_allowed(tmp_path: Path) -> None:
    source = tmp_path / "my pack.tgz"
    source.write_bytes(BODY)
    done: list[int] = []
    limits = FetchLimits(schemes=frozenset({"http", "https", "file"}))
    fetched = await fetch(
        source.as_uri(),
        tmp_path / "copy",
        limits=limits,
        sha256=hashlib.sha256(BODY).hexdigest(),
        on_progress=lambda size, total, rate: done.append(size),
    )
    assert contents(tmp_path / "copy") == BODY
    assert fetched.filename == "my pack.tgz"
    assert fetched.bytes == len(BODY)
    assert done[-1] == len(BODY)


async def test_file_url_errors(tmp_path: Path) -> None:
    limits = FetchLimits(max_bytes=100, schemes=frozenset({"file"}))
    big = tmp_path / "big"
    big.write_bytes(b"b" * 101)
    missing = await fetch_error((tmp_path / "missing").as_uri(), tmp_path / "1", limits)
    folder = await fetch_error(tmp_path.as_uri(), tmp_path / "2", limits)
    too_large = await fetch_error(big.as_uri(), tmp_path / "3", limits)
    remote = await fetch_error("file://example.com/etc/passwd", tmp_path / "4", limits)
    assert (missing.code, folder.code, too_large.code) == ("unreadable", "unreadable", "too_large")
    assert "No such file" in str(missing)
    assert remote.code == "invalid_url"


@pytest.mark.parametrize(
    "url",
    ["file:///etc/hostname", "ftp://127.0.0.1/pack.tgz", "gopher://127.0.0.1/", "javascript:1"],
)
async def test_a_scheme_not_allowed_is_refused(dest: Path, url: str) -> None:
    error = await fetch_error(url, dest)
    assert error.code == "scheme"
    assert contents(dest) is None


@pytest.mark.parametrize(
    "url", ["", "http://", "not a url", "http://[::1/x", "http://127.0.0.1:99999/x"]
)
async def test_an_invalid_url_is_refused(dest: Path, url: str) -> None:
    error = await fetch_error(url, dest)
    assert error.code == "invalid_url"
    assert contents(dest) is None


async def test_credentials_in_the_url_are_never_echoed(dest: Path) -> None:
    port = free_port()
    error = await fetch_error(f"http://alice:s3cret@127.0.0.1:{port}/f", dest)
    assert error.code == "connect"
    assert error.url == f"http://127.0.0.1:{port}/f"
    assert "s3cret" not in str(error)
    assert "alice" not in str(error)
    invalid = await fetch_error("http://alice:s3cret@127.0.0.1:99999/f", dest)
    assert invalid.code == "invalid_url"
    assert "s3cret" not in str(invalid)


async def test_credentials_go_to_their_origin_only(tmp_path: Path) -> None:
    seen: dict[str, str | None] = {}

    async def elsewhere_file(request: web.Request) -> web.Response:
        seen["elsewhere"] = request.headers.get("Authorization")
        return web.Response(body=BODY)

    async with web_server(web.get("/file", elsewhere_file)) as elsewhere:

        async def first(request: web.Request) -> web.Response:
            seen["first"] = request.headers.get("Authorization")
            raise web.HTTPFound("/second")

        async def second(request: web.Request) -> web.Response:
            seen["second"] = request.headers.get("Authorization")
            raise web.HTTPFound(f"{elsewhere}/file")

        async with web_server(web.get("/first", first), web.get("/second", second)) as base:
            url = base.replace("http://", "http://alice:s3cret@") + "/first"
            fetched = await fetch(url, tmp_path / "f", limits=LIMITS)
    credentials = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert seen == {"first": credentials, "second": credentials, "elsewhere": None}
    assert "s3cret" not in fetched.final_url


async def test_an_existing_dest_is_not_overwritten(dest: Path) -> None:
    write_file(dest, b"mine")

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=BODY)

    async with web_server(web.get("/f", handler)) as base:
        error = await fetch_error(f"{base}/f", dest)
    assert error.code == "write"
    assert contents(dest) == b"mine"
