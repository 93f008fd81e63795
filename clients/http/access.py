"""Who may use the gateway: the Host names it answers to, the browser origins it serves (CORS),
and the bearer token. Pure functions of a request's headers, in the order they are checked.

1. ``Host`` (when serving on loopback only): a loopback name or address, any port. A web page
   can make a browser send requests to 127.0.0.1 under a name it controls (DNS rebinding);
   the browser then sends that name as ``Host``, so a name that is not loopback is refused.
   The port is not checked: it says nothing about who asks, and an SSH tunnel from another
   port must keep working.
2. ``Origin`` (sent by browsers, not by curl or the ``openai`` package): an allowed origin
   gets ``Access-Control-Allow-Origin`` on every response; any other is refused with a 403
   before anything is done, which also stops a cross-site form post (a browser sends those
   without asking first). A preflight (``OPTIONS`` with ``Access-Control-Request-Method``)
   from an allowed origin is answered with what may be sent.
3. The bearer token, when one is set: ``Authorization: Bearer <token>``, else a 401.

``Host`` is checked whenever the gateway serves on loopback, ``--allow-remote`` or not: the
browser of this machine's user is the one a rebinding page drives. Served on other addresses
(then with a token), the names clients reach it by are not known here.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*")
"""Pages served from this machine's loopback addresses, on any port (a dev server's)."""
ALLOWED_METHODS = "GET, HEAD, POST, DELETE, OPTIONS"
ALLOWED_HEADERS = ("Authorization", "Content-Type", "OpenAI-Beta", "Last-Event-ID")
PREFLIGHT_MAX_AGE = 600
"""Seconds a browser may keep a preflight's answer (Chromium keeps at most 7,200)."""

_ORIGIN = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*)://"
    r"(?P<host>[a-z0-9._~-]+|\[[0-9a-f:.]+\])"
    r"(?::(?P<port>\*|[0-9]{1,5}))?"
)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""An HTTP token, such as a header name."""


class Origins:
    """The allowed origins: each exactly as a browser sends it (``https://app.example``,
    ``http://localhost:5173``, ``app://my-app``), or with the port ``*`` for any port or none.

    >>> origins = Origins(DEFAULT_ORIGINS)
    >>> [origins.allows(o) for o in ("http://localhost:5173", "http://[::1]", "http://evil.test")]
    [True, True, False]
    >>> Origins(["https://app.example"]).allows("https://app.example:443")
    False

    ValueError (:func:`check_origin`'s) for one that cannot be allowed.
    """

    def __init__(self, origins: Iterable[str]) -> None:
        self.listed = tuple(origins)
        """The origins as given."""
        self._exact: set[str] = set()
        self._any_port: set[str] = set()
        for origin in self.listed:
            checked = check_origin(origin)
            if checked.endswith(":*"):
                self._any_port.add(checked.removesuffix(":*"))
            else:
                self._exact.add(checked)

    def allows(self, origin: str) -> bool:
        if origin in self._exact:
            return True
        base, _, port = origin.rpartition(":")
        if port.isdigit() and base in self._any_port and "://" in base:
            return True
        return origin in self._any_port


def check_origin(origin: str) -> str:
    """``origin`` if it can be allowed; ValueError saying why not.

    >>> check_origin("http://localhost:*"), check_origin("app://my-app"), check_origin("file://")
    ('http://localhost:*', 'app://my-app', 'file://')
    >>> check_origin("null")
    Traceback (most recent call last):
    ...
    ValueError: 'null' cannot be allowed: sandboxed frames and data: pages of any site send it
    >>> check_origin("https://app.example/")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: 'https://app.example/' is not an origin: write scheme://host[:port], ...
    """
    if origin == "null":
        raise ValueError(
            "'null' cannot be allowed: sandboxed frames and data: pages of any site send it"
        )
    if origin == "*":
        raise ValueError(
            "'*' cannot be allowed: every web page could then drive the daemon (and import and "
            "export files); name each origin"
        )
    if origin == "file://":
        return origin  # Electron's pages loaded from files
    match = _ORIGIN.fullmatch(origin)
    if match is None or (match["port"] not in (None, "*") and int(match["port"]) > 65535):
        raise ValueError(
            f"{origin!r} is not an origin: write scheme://host[:port], in lower case, with no "
            f"path (such as http://localhost:5173)"
        )
    return origin


@functools.lru_cache(maxsize=256)  # a client sends the same Host again and again
def is_loopback_host(host: str) -> bool:
    """Whether a ``Host`` header names this machine's loopback (any port).

    >>> [is_loopback_host(h) for h in ("localhost:1337", "127.0.0.1", "[::1]:80", "LocalHost")]
    [True, True, True, True]
    >>> [is_loopback_host(h) for h in ("evil.test:1337", "localhost.evil.test", "[::1", "")]
    [False, False, False, False]
    >>> [is_loopback_host(h) for h in ("127.0.0.1:x", "localhost:1:2", "10.0.0.1:1337")]
    [False, False, False]
    """
    host = host.strip().lower()
    if host.startswith("["):
        name, bracket, rest = host[1:].partition("]")
        if not bracket:
            return False
    else:
        name, _, rest = host.partition(":")
        rest = f":{rest}" if _ else ""
    if rest and not (rest.startswith(":") and rest[1:].isdigit() and int(rest[1:]) <= 65535):
        return False
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token``, compared in constant time (the
    time taken says nothing of how much of it was right). An empty token matches nothing.

    >>> [bearer_matches(v, "s3cret") for v in ("Bearer s3cret", "bearer  s3cret", "Basic x", None)]
    [True, True, False, False]
    >>> bearer_matches("Bearer ", ""), bearer_matches("Bearer", "")
    (False, False)
    """
    if authorization is None or not token:
        return False
    scheme, _, value = authorization.strip().partition(" ")
    # The server decodes header values as Latin-1: encoded back, they are the bytes sent, so a
    # UTF-8 token sent as UTF-8 matches.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode("latin-1", "replace"), token.encode()
    )


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    code: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Access:
    """The rules of one gateway."""

    origins: Origins
    token: str | None
    check_host: bool
    """Serving on loopback only: refuse a ``Host`` that is not loopback."""

    def refusal(
        self, method: str, headers: dict[str, str], repeated: frozenset[str]
    ) -> Refusal | None:
        """Why a request may not be served, or None; the CORS headers are :meth:`cors`'s."""
        if self.check_host:
            host = headers.get("host")
            if host is None or "host" in repeated:
                return Refusal(400, "The request needs one Host header.", "invalid_host")
            if not is_loopback_host(host):
                return Refusal(
                    403,
                    f"The gateway serves loopback names only, not Host {host!r} (a DNS "
                    f"rebinding attempt, or a name this machine's gateway does not know).",
                    "host_not_allowed",
                )
        origin = headers.get("origin")
        if origin is not None and not self.origins.allows(origin):
            return Refusal(
                403,
                f"Origin {origin!r} is not allowed: add it with --cors-origin, or cors-origins "
                f"in the [http] table of the config file.",
                "origin_not_allowed",
            )
        if (
            self.token is not None
            and not is_preflight(method, headers)  # a browser never sends a token in one
            and not bearer_matches(headers.get("authorization"), self.token)
        ):
            return Refusal(
                401,
                "Missing or wrong API key: send 'Authorization: Bearer <token>'.",
                "invalid_api_key",
                (("WWW-Authenticate", "Bearer"),),
            )
        return None

    def cors(self, headers: dict[str, str]) -> list[tuple[str, str]]:
        """The CORS headers of any response to a request with these headers (its origin is
        allowed, or there is none)."""
        origin = headers.get("origin")
        if origin is None or not self.origins.allows(origin):
            return [("Vary", "Origin")]
        return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]


def is_preflight(method: str, headers: dict[str, str]) -> bool:
    return method == "OPTIONS" and "access-control-request-method" in headers


def preflight_headers(headers: dict[str, str]) -> list[tuple[str, str]]:
    """What an allowed origin may send: the gateway's methods, the headers it reads, and the
    ones the page asks for (an SDK adds its own, such as ``X-Stainless-*``; the origin is
    allowed, so what it sends is its business).

    >>> dict(preflight_headers({"access-control-request-headers": "x-stainless-os, a b"}))
    ... # doctest: +NORMALIZE_WHITESPACE
    {'Access-Control-Allow-Methods': 'GET, HEAD, POST, DELETE, OPTIONS',
     'Access-Control-Allow-Headers': 'Authorization, Content-Type, OpenAI-Beta, Last-Event-ID,
        x-stainless-os',
     'Access-Control-Max-Age': '600'}
    """
    asked = headers.get("access-control-request-headers", "")
    wanted = [name.strip() for name in asked.split(",")]
    known = {name.lower() for name in ALLOWED_HEADERS}
    extra = [name for name in wanted if _TOKEN.fullmatch(name) and name.lower() not in known]
    return [
        ("Access-Control-Allow-Methods", ALLOWED_METHODS),
        ("Access-Control-Allow-Headers", ", ".join([*ALLOWED_HEADERS, *extra])),
        ("Access-Control-Max-Age", str(PREFLIGHT_MAX_AGE)),
    ]
