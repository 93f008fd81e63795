"""The ``assistantd-http`` command: options, settings, and the server's life."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from assistantd.client.curve import ClientSecurity
from assistantd.client.discovery import command_endpoint, events_endpoint
from assistantd.client.sync import DEFAULT_TIMEOUT

from .access import Access
from .app import Gateway
from .link import open_link
from .server import HttpServer
from .settings import (
    DEFAULT_LISTEN,
    TOKEN_ENV,
    GatewaySettings,
    SettingsError,
    is_loopback,
    resolve,
)
from .sse import EventHub

EXIT_USAGE = 2
SHUTDOWN_GRACE = 2.0
"""Seconds the responses under way get to finish when the gateway stops."""

EPILOG = f"""\
The daemon is found like assistantctl finds it: --command, else command.sock in --runtime-dir,
$ASSISTANTD_RUNTIME_DIR, $XDG_RUNTIME_DIR/assistantd, or /tmp/assistantd-$UID.
Settings also come from the [http] table of assistantd's config file (listen, allow-remote,
token or token-file, cors-origins); options win over it.
Only loopback addresses are served unless --allow-remote, which needs a token. With a token
(--token-file, ${TOKEN_ENV} or the config file) every request needs
'Authorization: Bearer <token>'. Browsers are served for the loopback origins only
(http://localhost, 127.0.0.1 and [::1], any port) unless --cors-origin names others.
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
        help=f"where to serve (default {DEFAULT_LISTEN}; port 0 picks a free one)",
    )
    parser.add_argument(
        "--allow-remote",
        action=argparse.BooleanOptionalAction,
        help="allow a non-loopback HOST; requires a bearer token",
    )
    parser.add_argument(
        "--token-file",
        metavar="FILE",
        help=f"the bearer token every request must carry (else ${TOKEN_ENV}, else the config "
        "file's); the file must not be readable by others",
    )
    parser.add_argument(
        "--cors-origin",
        metavar="ORIGIN",
        action="append",
        help="a browser origin to serve, such as http://localhost:5173 or app://my-app "
        "(':*' for any port); repeatable; replaces the default loopback origins",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="assistantd's config file, for its [http] table (default: "
        "$XDG_CONFIG_HOME/assistantd/config.toml, when it exists)",
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


async def serve(args: argparse.Namespace, settings: GatewaySettings) -> None:
    security = ClientSecurity(insecure_tcp=args.insecure_tcp)
    endpoint = command_endpoint(command=args.command, runtime_dir=args.runtime_dir)
    link = open_link(endpoint, args.timeout, security)
    hub = EventHub(events_endpoint(events=args.events, runtime_dir=args.runtime_dir), security)
    hub.start()
    # On loopback, --allow-remote or not, Host is what stops DNS rebinding (see .access).
    access = Access(settings.origins, settings.token, check_host=is_loopback(settings.host))
    server = HttpServer(Gateway(link, hub, access, heartbeat=args.heartbeat))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        for bound_host, bound_port in await server.listen(settings.host, settings.port):
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            print(
                f"assistantd-http: serving http://{shown}:{bound_port}/v1 for the daemon at "
                f"{endpoint}",
                file=sys.stderr,
                flush=True,
            )
        await stop.wait()
    finally:
        await hub.close()  # ends every SSE stream first, so that their connections close
        await server.stop(SHUTDOWN_GRACE)
        await link.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = resolve(args)
    except SettingsError as exc:
        parser.exit(EXIT_USAGE, f"assistantd-http: {exc}\n")
    try:
        asyncio.run(serve(args, settings))
    except OSError as exc:  # the address is taken, or cannot be bound
        print(
            f"assistantd-http: cannot serve on {settings.host}:{settings.port}: {exc}",
            file=sys.stderr,
        )
        sys.exit(1)
