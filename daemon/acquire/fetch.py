"""Download one URL to a file: size limits, timeouts, a checksum, progress, and clear errors.

    limits = FetchLimits(max_bytes=64 * 1024 * 1024)
    fetched = await fetch("https://example.com/pack.tgz", dest, limits=limits, sha256=digest)

`dest` is created exclusively (``O_EXCL``) once the URL is checked, before the first request
goes out; the caller owns its folder and deletes `dest` when `fetch` raises. Every failure is a
`FetchError` with a `code` (never an aiohttp exception); cancelling the task closes the
connection and lets `CancelledError` through.

Decisions, and why:

- Only the schemes in `FetchLimits.schemes` are fetched (http and https by default). ``file://``
  is copied from the local path when "file" is allowed, with the same limits, checksum and
  progress. A redirect goes only to http or https (and only if allowed): a server must never be
  able to send us to a local file.
- Redirects are followed here, not by aiohttp, so that each hop's scheme is checked against
  `schemes` before a byte is sent to it (aiohttp would follow https -> http on its own).
  `max_redirects` is the number of redirects followed; one more is a "redirects" error.
  Credentials in the URL (``https://user:pass@host/``) go only to the URL's own origin: a
  redirect to another host or port does not carry them.
- Credentials are never echoed: error messages, `FetchError.url` and `Fetched.final_url` show
  URLs without their userinfo.
- The body is saved as sent: the request asks for ``Accept-Encoding: identity`` and a session
  made here does not decompress, so the byte count, the limit and the checksum are about the
  bytes on the wire (a ``.tar.gz`` served with ``Content-Encoding: gzip`` stays a ``.tar.gz``).
  A session handed in should be made with ``auto_decompress=False`` for the same reason.
- A session made here has ``trust_env=True``: HTTP_PROXY, HTTPS_PROXY and NO_PROXY apply (what
  users behind a proxy expect of a download), and so does ``~/.netrc`` for hosts whose URL
  carries no credentials.
- Timeouts: `connect_timeout` for each TCP connect (aiohttp's ``sock_connect``),
  `stall_timeout` for any wait for bytes, headers included (``sock_read``), and
  `total_timeout` for the whole fetch, redirects and the final fsync included.
- A Content-Length over `max_bytes` is refused before the body is read; a body without one is
  counted while it arrives and stopped before the chunk that would pass the limit, so `dest`
  never holds more than `max_bytes`.
- `on_progress(bytes_so_far, total_or_None, bytes_per_second)` is called for the first bytes,
  then at most every 0.1 s while bytes arrive, then once at the end (also for an empty body).
  The rate is the average since the body began.
- aiohttp >= 3.10: `ConnectionTimeoutError` (a connect that timed out, "connect") and
  `SocketTimeoutError` (a read that did, "stalled") came apart in 3.10.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import re
import ssl
import stat
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

import aiohttp
from yarl import URL

FetchErrorCode = Literal[
    "scheme",
    "invalid_url",
    "connect",
    "tls",
    "http_status",
    "too_large",
    "stalled",
    "timeout",
    "closed_early",
    "redirects",
    "sha256_mismatch",
    "protocol",
    "unreadable",
    "write",
]

MiB = 1024 * 1024
PROGRESS_INTERVAL = 0.1
FILE_CHUNK = MiB
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Schemes this module can fetch, whatever FetchLimits.schemes allows.
SUPPORTED_SCHEMES = frozenset({"http", "https", "file"})
REDIRECT_SCHEMES = frozenset({"http", "https"})

ProgressCallback = Callable[[int, int | None, float], None]


class FetchError(Exception):
    """A fetch failed. `code` says how; the message names the URL without its credentials.

    Codes (the module docstring has the details):

    - ``scheme``: the URL's scheme (or a redirect's) is not allowed.
    - ``invalid_url``: the URL (or a redirect's Location) is not a usable URL.
    - ``connect``: name resolution, connection refused, or no connection within connect_timeout.
    - ``tls``: the TLS handshake failed (an untrusted certificate, a plain HTTP server, ...).
    - ``http_status``: the final response is not 2xx; `status` holds it.
    - ``too_large``: the body is over max_bytes.
    - ``stalled``: no byte arrived for stall_timeout seconds.
    - ``timeout``: the whole fetch took longer than total_timeout.
    - ``closed_early``: the connection ended before the body was complete.
    - ``redirects``: more than max_redirects redirects.
    - ``sha256_mismatch``: the body's sha256 is not the expected one.
    - ``protocol``: the server's answer is not HTTP that aiohttp can read.
    - ``unreadable``: a ``file://`` source cannot be read (missing, not a file, no permission).
    - ``write``: `dest` cannot be created or written (it exists, the disk is full, ...).
    """

    def __init__(
        self, code: FetchErrorCode, message: str, *, url: str, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.code: FetchErrorCode = code
        self.url = url
        self.status = status


@dataclass(frozen=True)
class FetchLimits:
    """What a fetch may take: bytes, seconds, redirects and schemes."""

    max_bytes: int = 256 * MiB
    connect_timeout: float = 30
    stall_timeout: float = 30
    total_timeout: float = 3600
    max_redirects: int = 10
    schemes: frozenset[str] = field(default=frozenset({"http", "https"}))


@dataclass(frozen=True)
class Fetched:
    """What was fetched. `final_url` is after redirects, without credentials."""

    bytes: int
    sha256: str
    final_url: str
    content_type: str | None
    filename: str | None


# The userinfo of a URL at the start of a string, up to the authority's last "@".
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#]*@")
# Userinfo anywhere in a text (an exception's message that quotes a URL).
_USERINFO_IN_TEXT = re.compile(r"(//)[^/?#\s'\"<>@]*@")
# "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)" -> "wrong version number"
_SSL_DECORATIONS = re.compile(r"^\[[^\]]*\]\s*|\s*\(_ssl\.c:\d+\)$")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def redact(url: str) -> str:
    """The URL without its userinfo, for messages and logs.

    >>> redact("https://user:secret@example.com/a.tgz")
    'https://example.com/a.tgz'
    >>> redact("https://example.com/a@b.tgz")
    'https://example.com/a@b.tgz'
    """
    return _USERINFO.sub(r"\1", url)


def _scrub(text: str) -> str:
    return _USERINFO_IN_TEXT.sub(r"\1", text)


async def fetch(
    url: str,
    dest: Path,
    *,
    limits: FetchLimits,
    sha256: str | None = None,
    on_progress: ProgressCallback | None = None,
    session: aiohttp.ClientSession | None = None,
    sync: bool = True,
) -> Fetched:
    """Download `url` into `dest` (created here, exclusively); FetchError on any failure.

    `sha256` (hex) is checked once the body is complete. `session` is used as is when given
    (its proxies, TLS context and connection pool); otherwise one is made for this fetch.
    `sync=False` leaves out the fsync of `dest`, for a file that is unpacked and deleted at
    once (what is made of it is synced instead): a third of a fast local download's time.
    """
    shown = redact(url)
    expected = _expected_sha256(sha256)
    parsed = _parse(url, shown, limits)
    loop = asyncio.get_running_loop()
    progress = _Progress(on_progress, loop)
    try:
        async with asyncio.timeout(limits.total_timeout) as deadline:
            with _open_dest(dest) as file:
                sink = _Sink(file, dest, limits.max_bytes, shown, progress, sync=sync)
                if parsed.scheme == "file":
                    source = await _copy_file(parsed, sink, shown)
                else:
                    source = await _download(parsed, sink, shown, limits, session)
                await sink.finish()
    except TimeoutError:
        if not deadline.expired():
            raise
        raise FetchError(
            "timeout", f"{shown}: not finished within {limits.total_timeout:g} s", url=shown
        ) from None
    digest = sink.hexdigest()
    if expected is not None and digest != expected:
        raise FetchError(
            "sha256_mismatch",
            f"{shown}: sha256 mismatch: expected {expected}, got {digest}",
            url=shown,
        )
    return Fetched(
        bytes=sink.size,
        sha256=digest,
        final_url=source.final_url,
        content_type=source.content_type,
        filename=source.filename,
    )


@dataclass(frozen=True)
class _Source:
    final_url: str
    content_type: str | None
    filename: str | None


def _expected_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    expected = sha256.strip().lower()
    if not _SHA256_HEX.fullmatch(expected):
        raise ValueError(f"sha256 must be 64 hex digits, not {sha256!r}")
    return expected


def _parse(url: str, shown: str, limits: FetchLimits) -> URL:
    """The URL, checked: a scheme we fetch and allow, and a host (or a local path for file)."""

    def invalid(reason: str) -> FetchError:
        return FetchError("invalid_url", f"invalid URL {shown!r}: {reason}", url=shown)

    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        raise invalid(_scrub(str(exc))) from None
    if not parsed.scheme:
        raise invalid("no scheme (like https://)")
    if parsed.scheme not in SUPPORTED_SCHEMES or parsed.scheme not in limits.schemes:
        allowed = ", ".join(sorted(limits.schemes & SUPPORTED_SCHEMES))
        raise FetchError(
            "scheme",
            f"{shown}: scheme {parsed.scheme!r} is not allowed (allowed: {allowed})",
            url=shown,
        )
    if parsed.scheme == "file":
        if parsed.host not in (None, "", "localhost"):
            raise invalid("a file URL must name a local path (file:///path)")
        if not parsed.path.startswith("/"):
            raise invalid("a file URL needs an absolute path")
        return parsed
    try:
        host, _ = parsed.host, parsed.port
    except ValueError as exc:
        raise invalid(_scrub(str(exc))) from None
    if not host:
        raise invalid("no host")
    return parsed


class _Progress:
    """Calls on_progress at most every PROGRESS_INTERVAL seconds, and always at the end."""

    def __init__(self, callback: ProgressCallback | None, loop: asyncio.AbstractEventLoop) -> None:
        self._callback = callback
        self._loop = loop
        self._total: int | None = None
        self._started = loop.time()
        self._last = -math.inf

    def begin(self, total: int | None) -> None:
        """The body starts; no call yet, so that its first bytes are reported at once."""
        self._total = total
        self._started = self._loop.time()

    def update(self, size: int) -> None:
        now = self._loop.time()
        if now - self._last >= PROGRESS_INTERVAL:
            self._report(size, now)

    def end(self, size: int) -> None:
        self._report(size, self._loop.time())

    def _report(self, size: int, now: float) -> None:
        self._last = now
        if self._callback is not None:
            elapsed = now - self._started
            self._callback(size, self._total, size / elapsed if elapsed > 0 else 0.0)


@contextmanager
def _open_dest(dest: Path) -> Iterator[BinaryIO]:
    """`dest` created exclusively; FetchError ("write") when it cannot be."""
    try:
        file = open(dest, "xb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise _write_error(dest, exc) from exc
    with file:
        yield file


def _write_error(dest: Path, exc: OSError) -> FetchError:
    return FetchError("write", f"cannot write {dest}: {exc.strerror or exc}", url=str(dest))


class _Sink:
    """Where the body goes: the size limit, the checksum and the progress, chunk by chunk."""

    def __init__(
        self,
        file: BinaryIO,
        dest: Path,
        max_bytes: int,
        shown: str,
        progress: _Progress,
        *,
        sync: bool = True,
    ) -> None:
        self._sync = sync
        self._file = file
        self._dest = dest
        self._max_bytes = max_bytes
        self._shown = shown
        self._digest = hashlib.sha256()
        self.progress = progress
        self.size = 0

    def refuse_declared(self, declared: int | None, what: str) -> None:
        """Refuse a body whose announced size is over the limit, before reading it."""
        if declared is not None and declared > self._max_bytes:
            raise FetchError(
                "too_large",
                f"{self._shown}: {declared} bytes ({what}) is over the limit of "
                f"{self._max_bytes} bytes",
                url=self._shown,
            )

    def write(self, chunk: bytes) -> None:
        if self.size + len(chunk) > self._max_bytes:
            raise FetchError(
                "too_large",
                f"{self._shown}: the body is over the limit of {self._max_bytes} bytes",
                url=self._shown,
            )
        try:
            # A blocking write, on purpose: chunks are at most a few hundred KiB into the page
            # cache; the one slow step, fsync, runs in a thread.
            self._file.write(chunk)
        except OSError as exc:
            raise _write_error(self._dest, exc) from exc
        self._digest.update(chunk)
        self.size += len(chunk)
        self.progress.update(self.size)

    async def finish(self) -> None:
        """Flush and fsync (in a thread, on its own descriptor), then the last progress call."""
        if not self._sync:
            try:
                self._file.flush()
            except OSError as exc:
                raise _write_error(self._dest, exc) from exc
            self.progress.end(self.size)
            return
        try:
            self._file.flush()
            fd = os.dup(self._file.fileno())
        except OSError as exc:
            raise _write_error(self._dest, exc) from exc

        def sync() -> None:
            # The thread owns `fd`: a cancelled wait here must not close it under fsync.
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

        try:
            await asyncio.to_thread(sync)
        except OSError as exc:
            raise _write_error(self._dest, exc) from exc
        self.progress.end(self.size)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


async def _copy_file(url: URL, sink: _Sink, shown: str) -> _Source:
    path = Path(url.path)

    def unreadable(reason: str) -> FetchError:
        return FetchError("unreadable", f"{shown}: {reason}", url=shown)

    try:
        info = await asyncio.to_thread(path.stat)
        # Only regular files: opening a FIFO would block a thread forever.
        if not stat.S_ISREG(info.st_mode):
            raise unreadable("not a regular file")
        sink.refuse_declared(info.st_size, "file size")
        source = await asyncio.to_thread(path.open, "rb")
        with source:
            sink.progress.begin(info.st_size)
            while chunk := await asyncio.to_thread(source.read, FILE_CHUNK):
                sink.write(chunk)
    except OSError as exc:
        raise unreadable(exc.strerror or str(exc)) from exc
    return _Source(final_url=shown, content_type=None, filename=_safe_filename(path.name))


@asynccontextmanager
async def _session(given: aiohttp.ClientSession | None) -> AsyncIterator[aiohttp.ClientSession]:
    if given is not None:
        yield given
        return
    async with aiohttp.ClientSession(trust_env=True, auto_decompress=False) as session:
        yield session


async def _download(
    url: URL,
    sink: _Sink,
    shown: str,
    limits: FetchLimits,
    given: aiohttp.ClientSession | None,
) -> _Source:
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=None,
        sock_connect=limits.connect_timeout,
        sock_read=limits.stall_timeout,
    )
    headers = {"Accept-Encoding": "identity"}
    async with _session(given) as session:
        current = url
        redirects = 0
        while True:
            try:
                response = await session.get(
                    current, headers=headers, timeout=timeout, allow_redirects=False
                )
            except aiohttp.ClientError as exc:
                raise _translate(exc, shown, limits, sink) from exc
            try:
                location = response.headers.get("Location")
                if response.status in REDIRECT_STATUSES and location is not None:
                    redirects += 1
                    if redirects > limits.max_redirects:
                        raise FetchError(
                            "redirects",
                            f"{shown}: more than {limits.max_redirects} redirects",
                            url=shown,
                        )
                    current = _redirect_target(url, current, location, shown, limits)
                    response.release()
                    continue
                source = await _read_body(response, sink, shown, limits)
            except BaseException:
                # Whatever stopped us (an error, a cancel), the connection goes, not back to
                # the pool with an unread body in it.
                response.close()
                raise
            response.release()
            return source


def _redirect_target(
    origin_url: URL, current: URL, location: str, shown: str, limits: FetchLimits
) -> URL:
    """Where a redirect goes, checked as the first URL was; credentials only to their origin."""
    try:
        target = current.join(URL(location))
        target_host = target.host
    except ValueError:
        target, target_host = URL(), None
    if target.scheme and (
        target.scheme not in REDIRECT_SCHEMES or target.scheme not in limits.schemes
    ):
        raise FetchError(
            "scheme",
            f"{shown}: redirect to {redact(str(target))} refused: "
            f"scheme {target.scheme!r} is not allowed",
            url=shown,
        )
    if not target.scheme or not target_host:
        raise FetchError(
            "invalid_url",
            f"{shown}: redirected to an invalid URL {redact(location)!r}",
            url=shown,
        )
    if (
        origin_url.user is not None
        and target.user is None
        and target.origin() == origin_url.origin()
    ):
        target = target.with_user(origin_url.user).with_password(origin_url.password)
    return target


async def _read_body(
    response: aiohttp.ClientResponse, sink: _Sink, shown: str, limits: FetchLimits
) -> _Source:
    if not 200 <= response.status < 300:
        raise FetchError(
            "http_status",
            f"{shown}: HTTP {response.status} {response.reason or ''}".rstrip(),
            url=shown,
            status=response.status,
        )
    total = response.content_length
    sink.refuse_declared(total, "Content-Length")
    sink.progress.begin(total)
    try:
        async for chunk in response.content.iter_any():
            sink.write(chunk)
    except aiohttp.ClientError as exc:
        raise _translate(exc, shown, limits, sink, total) from exc
    return _Source(
        final_url=redact(str(response.url)),
        content_type=response.content_type if "Content-Type" in response.headers else None,
        filename=_response_filename(response),
    )


def _response_filename(response: aiohttp.ClientResponse) -> str | None:
    with warnings.catch_warnings():
        # aiohttp warns about a malformed Content-Disposition; a bad header only means no name.
        warnings.simplefilter("ignore")
        disposition = response.content_disposition
    if disposition is not None and disposition.filename:
        name = _safe_filename(disposition.filename)
        if name is not None:
            return name
    return _safe_filename(response.url.name)


def _safe_filename(name: str) -> str | None:
    """The last path segment of a name a server gave, or None when nothing usable is left.

    >>> _safe_filename("../../etc/passwd"), _safe_filename("..\\\\x.tgz"), _safe_filename("..")
    ('passwd', 'x.tgz', None)
    """
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return None if name in ("", ".", "..") else name


def _translate(
    exc: aiohttp.ClientError,
    shown: str,
    limits: FetchLimits,
    sink: _Sink,
    total: int | None = None,
) -> FetchError:
    """The FetchError for an aiohttp error."""

    def error(code: FetchErrorCode, what: str) -> FetchError:
        return FetchError(code, f"{shown}: {_scrub(what)}", url=shown)

    if isinstance(exc, aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch):
        return error("tls", f"TLS handshake failed: {_tls_reason(exc)}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ssl.SSLError):
            return error("tls", f"TLS handshake failed: {_tls_reason(exc)}")
        where = "to the proxy" if isinstance(exc, aiohttp.ClientProxyConnectionError) else ""
        reason = exc.os_error.strerror or exc.os_error
        return error("connect", f"cannot connect{' ' + where if where else ''}: {reason}")
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return error("connect", f"the proxy refused: {exc.status} {exc.message}")
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return error("connect", f"cannot connect within {limits.connect_timeout:g} s")
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return error("stalled", f"no data for {limits.stall_timeout:g} s (after {sink.size} bytes)")
    if isinstance(exc, aiohttp.TooManyRedirects):
        return error("redirects", f"more than {limits.max_redirects} redirects")
    if isinstance(exc, aiohttp.InvalidURL):
        return error("invalid_url", "invalid URL")
    if isinstance(
        exc, aiohttp.ClientPayloadError | aiohttp.ServerConnectionError | aiohttp.ClientOSError
    ):
        of_total = "" if total is None else f" of {total}"
        return error("closed_early", f"the connection closed after {sink.size}{of_total} bytes")
    if isinstance(exc, aiohttp.ClientResponseError):
        # The parser's message spans lines (it draws a caret under the bad byte): its first says it.
        first_line = exc.message.splitlines()[0].rstrip(":") if exc.message else str(exc.status)
        return error("protocol", f"not a valid HTTP answer ({first_line})")
    return error("protocol", f"unexpected answer: {type(exc).__name__}: {exc}")


def _tls_reason(exc: aiohttp.ClientError) -> str:
    """What OpenSSL said, without its library tags: "certificate verify failed: self-signed
    certificate", "wrong version number" (an https URL to a plain HTTP server), ..."""
    cause: object = getattr(exc, "certificate_error", None) or getattr(exc, "os_error", None)
    if isinstance(cause, ssl.SSLCertVerificationError) and cause.verify_message:
        return f"certificate verify failed: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError):
        return _SSL_DECORATIONS.sub("", cause.strerror or str(cause)) or str(cause.reason)
    return str(cause or exc)
