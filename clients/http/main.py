"""The ``assistantd-http`` command: options, the bind check, and the server's life."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from assistantd.client.aio import AsyncClient
from assistantd.client.curve import ClientSecurity
from assistantd.client.discovery import events_endpoint
from assistantd.client.sync import DEFAULT_TIMEOUT

from .app import make_app
from .sse import EventHub

DEFAULT_LISTEN = "127.0.0.1:1337"  # Jan's API port
TOKEN_ENV = "ASSISTANTD_HTTP_TOKEN"
EXIT_USAGE = 2

EPILOG = f"""\
The daemon is found like assistantctl finds it: --command, else command.sock in --runtime-dir,
$ASSISTANTD_RUNTIME_DIR, $XDG_RUNTIME_DIR/assistantd, or /tmp/assistantd-$UID.
Only loopback addresses are served unless --allow-remote is given; then every request needs
'Authorization: Bearer <token>', the token read from --token-file or ${TOKEN_ENV}.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assistantd-http",
        description="Serve assistantd over HTTP: the OpenAI Assistants API, Jan's extensions, "
        "and the event stream as Server-Sent Events.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=DEFAULT_LISTEN,
        help=f"where to serve (default {DEFAULT_LISTEN}; port 0 picks a free one)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback HOST; requires a bearer token",
    )
    parser.add_argument(
        "--token-file",
        metavar="FILE",
        help=f"the bearer token every request must carry (default: ${TOKEN_ENV} if set)",
    )
    parser.add_argument("--runtime-dir", metavar="PATH", help="the daemon's runtime dir")
    parser.add_argument(
        "--command",
        metavar="ENDPOINT",
        help="the daemon's command endpoint (overrides --runtime-dir)",
    )
    parser.add_argument(
        "--events",
        metavar="ENDPOINT",
        help="the daemon's event endpoint (default: events.sock beside command.sock)",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"how long to wait for the daemon's reply (default {DEFAULT_TIMEOUT:g}); a 503 after",
    )
    parser.add_argument(
        "--insecure-tcp",
        action="store_true",
        help="reach a tcp:// endpoint without CURVE (a daemon started with --insecure-tcp)",
    )
    parser.add_argument(
        "--heartbeat",
        metavar="SECONDS",
        type=float,
        default=15.0,
        help="how often an idle /v1/events stream gets a comment line (default 15)",
    )
    return parser


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as ``(host, port)``.

    >>> parse_listen("127.0.0.1:1337"), parse_listen("[::1]:8080")
    (('127.0.0.1', 1337), ('::1', 8080))
    """
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen wants HOST:PORT, not {value!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only.

    >>> [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "example.org")]
    [True, True, True, False, False]
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve to anything


def read_token(token_file: str | None) -> str | None:
    """The bearer token from ``token_file``, else the environment; None when neither."""
    if token_file is not None:
        token = Path(token_file).read_text().strip()
        if not token:
            raise ValueError(f"the token file {token_file} is empty")
        return token
    return os.environ.get(TOKEN_ENV) or None


async def serve(args: argparse.Namespace, host: str, port: int, token: str | None) -> None:
    security = ClientSecurity(insecure_tcp=args.insecure_tcp)
    client = AsyncClient(
        command=args.command,
        events=args.events,
        runtime_dir=args.runtime_dir,
        timeout=args.timeout,
        insecure_tcp=args.insecure_tcp,
    )
    hub = EventHub(events_endpoint(events=args.events, runtime_dir=args.runtime_dir), security)
    hub.start()
    app = make_app(client, hub, token=token, heartbeat=args.heartbeat)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        for address in runner.addresses:
            bound_host, bound_port = address[0], address[1]
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            print(
                f"assistantd-http: serving http://{shown}:{bound_port}/v1 for the daemon at "
                f"{client.endpoint}",
                file=sys.stderr,
                flush=True,
            )
        await stop.wait()
    finally:
        await runner.cleanup()
        await hub.close()
        await client.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        host, port = parse_listen(args.listen)
        token = read_token(args.token_file)
    except (ValueError, OSError) as exc:
        parser.exit(EXIT_USAGE, f"assistantd-http: {exc}\n")
    if not is_loopback(host):
        if not args.allow_remote:
            parser.exit(
                EXIT_USAGE,
                f"assistantd-http: refusing to serve on {host}, which is not a loopback "
                f"address: anyone who can reach it could use the daemon. Pass --allow-remote "
                f"(with --token-file or ${TOKEN_ENV}) to do it anyway.\n",
            )
        if token is None:
            parser.exit(
                EXIT_USAGE,
                f"assistantd-http: --allow-remote needs a bearer token: --token-file FILE or "
                f"${TOKEN_ENV}.\n",
            )
    try:
        asyncio.run(serve(args, host, port, token))
    except OSError as exc:  # the address is taken, or cannot be bound
        print(f"assistantd-http: cannot serve on {args.listen}: {exc}", file=sys.stderr)
        sys.exit(1)
