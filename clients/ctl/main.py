"""``assistantctl``: manage the assistants of a running assistantd from the shell.

Import time is most of a short command's run time, so this imports only what it needs: argparse,
the stdlib's json, and a byte transport: for a local ``ipc://`` endpoint a small ZMTP peer of
our own (``assistantd.client.zmtp``), since importing pyzmq alone would take longer than the
rest of the command. It works on the protocol's plain JSON rather than the typed client, whose
msgspec import would cost as much again.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from . import output

# The typing module costs milliseconds to import and is needed only by type checkers here
# (mypy treats any name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Transport(Protocol):
        endpoint: str
        timeout: float

        def exchange(self, body: bytes, timeout: float | None = None) -> bytes: ...
        def close(self) -> None: ...


EXIT_OK = 0
EXIT_ERROR = 1  # the daemon answered with an error
EXIT_USAGE = 2  # argparse's own code for bad options
EXIT_UNAVAILABLE = 3  # no daemon answered

EPILOG = """\
The daemon is found like assistantd places it: --command, else command.sock in --runtime-dir,
$ASSISTANTD_RUNTIME_DIR, $XDG_RUNTIME_DIR/assistantd, or /tmp/assistantd-$UID.
Exit codes: 0 done, 1 the daemon refused (the message says why), 2 bad usage, 3 no daemon answered.
`assistantctl watch` prints events until Ctrl-C; see `assistantctl watch --help`.
`assistantctl invoke` calls a method of a running assistant's worker; see its --help.
`assistantctl download URL` downloads an assistant and shows the download; see its --help.
A tcp:// --command is reached with CURVE: `assistantctl keys` makes this client's key pair.
`assistantctl service install` sets assistantd up as a systemd service; see its --help.
"""


def _common_options() -> argparse.ArgumentParser:
    # SUPPRESS as default lets the same options stand before or after the subcommand without the
    # subcommand's defaults overwriting what was given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts"
    )
    common.add_argument(
        "--runtime-dir", metavar="PATH", default=argparse.SUPPRESS, help="the daemon's runtime dir"
    )
    common.add_argument(
        "--command",
        metavar="ENDPOINT",
        default=argparse.SUPPRESS,
        help="the daemon's command endpoint (overrides --runtime-dir)",
    )
    common.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=argparse.SUPPRESS,
        help="how long to wait for a reply (default 10); the worker commands wait this long "
        "on top of the time the daemon may take for them (an invoke's --timeout-ms)",
    )
    common.add_argument(
        "--insecure-tcp",
        action="store_true",
        default=argparse.SUPPRESS,
        help="reach a tcp:// endpoint without CURVE (a daemon started with --insecure-tcp)",
    )
    return common


def _field_options(parser: argparse.ArgumentParser) -> None:
    fields = parser.add_argument_group("assistant fields")
    fields.add_argument("--name")
    fields.add_argument("--description")
    text = fields.add_mutually_exclusive_group()
    text.add_argument("--instructions", metavar="TEXT")
    text.add_argument("--instructions-file", metavar="FILE", help="read instructions from FILE")
    fields.add_argument(
        "--model",
        action="append",
        metavar="MODEL",
        help="a model id; repeat for a list (the first is `model`, all are `models`)",
    )
    fields.add_argument(
        "--tool", action="append", metavar="TYPE", help="a tool by type; repeat for more"
    )
    fields.add_argument("--file-id", action="append", metavar="ID", dest="file_ids")
    fields.add_argument(
        "--metadata", action="append", metavar="KEY=VALUE", help="repeat for more pairs"
    )
    fields.add_argument("--avatar", metavar="URL")
    fields.add_argument("--thread-location", metavar="PATH")
    fields.add_argument("--temperature", type=float)
    fields.add_argument("--top-p", type=float)
    fields.add_argument(
        "--from-json",
        metavar="FILE",
        help="a JSON object of fields ('-' for stdin); the options above override it",
    )


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="assistantctl",
        description="Manage the assistants of a running assistantd.",
        epilog=EPILOG,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="action", metavar="COMMAND", required=True)

    def add(name: str, help: str, handler: Callable[..., int]) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, parents=[common])
        sub.set_defaults(handler=handler)
        return sub

    listing = add("list", "List assistants, newest first.", _list)
    listing.add_argument("--limit", type=int, default=20, help="1 to 100 (default 20)")
    listing.add_argument("--order", choices=("asc", "desc"), default="desc")
    listing.add_argument("--after", metavar="ID", help="the page after this assistant")
    listing.add_argument("--before", metavar="ID", help="the page before this assistant")
    listing.add_argument("--all", action="store_true", help="every assistant, all pages")

    add("get", "Show one assistant.", _get).add_argument("assistant_id", metavar="ID")

    create = add("create", "Create an assistant.", _create)
    create.add_argument("--id", help="a free folder name to use as the id (default asst_...)")
    _field_options(create)

    modify = add("modify", "Change some fields of an assistant; others are kept.", _modify)
    modify.add_argument("assistant_id", metavar="ID")
    _field_options(modify)

    add("delete", "Delete an assistant.", _delete).add_argument("assistant_id", metavar="ID")
    add("ping", "Check that the daemon answers; show its version and uptime.", _ping)

    worker_commands = (
        ("start", "Start an assistant's worker; show it once the worker is up.", "startAssistant"),
        ("stop", "Stop an assistant's worker and what it started.", "stopAssistant"),
        ("restart", "Stop an assistant's worker, then start it again.", "restartAssistant"),
    )
    for name, help, method in worker_commands:
        worker = add(name, help, _worker_command)
        worker.set_defaults(method=method)
        worker.add_argument("assistant_id", metavar="ID")

    invoke = commands.add_parser(
        "invoke",
        help="Call a method of a running assistant's worker; print what it returned.",
        description=INVOKE_DESCRIPTION,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    invoke.set_defaults(handler=_invoke)
    invoke.add_argument("assistant_id", metavar="ID")
    invoke.add_argument("method", metavar="METHOD")
    invoke.add_argument("args", metavar="ARG", nargs="*", help="an argument (see above)")
    invoke.add_argument(
        "--timeout-ms",
        metavar="MS",
        type=int,
        help="how long the daemon waits for the answer (default: its invoke-timeout)",
    )

    send = add("send", "Send a message to a running assistant's worker (no answer).", _send)
    send.add_argument("assistant_id", metavar="ID")
    send.add_argument("message", metavar="MESSAGE", help="JSON (a bare word is a string)")

    download = commands.add_parser(
        "download",
        help="Download an assistant from a URL; show the download until it ends.",
        description=DOWNLOAD_DESCRIPTION,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    download.set_defaults(handler=_download)
    download.add_argument(
        "url",
        metavar="URL",
        nargs="?",
        help="an http(s) URL of a .zip, a .tar.gz or an assistant.json (optional with --id)",
    )
    download.add_argument("--sha256", metavar="HEX", help="the SHA-256 the download must have")
    download.add_argument(
        "--id",
        metavar="ID",
        help="the assistant's id (default: the name the URL gives); alone, downloads a "
        "to_download assistant again",
    )
    download.add_argument(
        "--start", action="store_true", help="start the assistant's worker once downloaded"
    )
    download.add_argument(
        "--no-wait", action="store_true", help="print the assistant, downloading, and exit"
    )
    download.add_argument(
        "--events",
        metavar="ENDPOINT",
        help="the daemon's event endpoint (default events.sock in the runtime dir)",
    )

    cancel = add("cancel", "Cancel an assistant's download; it goes back to to_download.", _cancel)
    cancel.add_argument("assistant_id", metavar="ID")

    importing = add(
        "import",
        "Copy an assistant in from a folder, a .zip or .tar.gz, or an assistant.json.",
        _import,
    )
    importing.add_argument("path", metavar="PATH", help="relative to the working directory")
    importing.add_argument(
        "--id",
        metavar="ID",
        help="the assistant's id (default: its assistant.json's id, else the folder's name)",
    )

    export = add(
        "export",
        "Write an assistant's folder to a .zip or .tar.gz (by PATH's extension).",
        _export,
    )
    export.add_argument("assistant_id", metavar="ID")
    export.add_argument("path", metavar="PATH", help="a file that does not exist yet")

    keys = commands.add_parser(
        "keys",
        help="Make this client's CURVE key pair for tcp:// endpoints (or show the daemon's key).",
        description=KEYS_DESCRIPTION,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    keys.set_defaults(handler=_keys)
    keys.add_argument("--dir", metavar="DIR", help="where the keys are (see above)")
    keys.add_argument(
        "--name", default="client", help="the pair's file name, without suffix (default client)"
    )
    keys.add_argument("--server", action="store_true", help="print the daemon's public key instead")

    service = commands.add_parser(
        "service",
        help="Install assistantd's systemd units (no daemon needed).",
        description=SERVICE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    service.set_defaults(handler=_service)
    service_actions = service.add_subparsers(dest="service_action", metavar="ACTION", required=True)
    for name, help in (
        ("install", "Write the units, filled in, and print what to run next."),
        ("uninstall", "Remove the units (and their enable links); print what to run next."),
    ):
        action = service_actions.add_parser(name, help=help, description=help)
        action.set_defaults(scope="user", assistantd=None)
        scope = action.add_mutually_exclusive_group()
        scope.add_argument(
            "--user",
            dest="scope",
            action="store_const",
            const="user",
            help="the user service, in ~/.config/systemd/user (the default)",
        )
        scope.add_argument(
            "--system",
            dest="scope",
            action="store_const",
            const="system",
            help="the hardened system service for the user assistantd (needs root)",
        )
        action.add_argument(
            "--dry-run", action="store_true", help="print what would be done, and do nothing"
        )
        action.add_argument(
            "--destdir",
            metavar="DIR",
            help="write under DIR instead of / (to stage the files, e.g. for a package)",
        )
        if name == "install":
            action.add_argument(
                "--assistantd",
                metavar="PATH",
                help="the program the service runs (default: the assistantd installed with "
                "this assistantctl)",
            )

    raw = add("request", "Send any method with JSON params; print the raw result.", _request)
    raw.add_argument("method")
    raw.add_argument("params", nargs="?", default="{}", help="a JSON object (default {})")

    watch = commands.add_parser(
        "watch",
        help="Print events as they come, until Ctrl-C.",
        description=WATCH_DESCRIPTION,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    watch.set_defaults(handler=_watch)
    watch.add_argument(
        "prefix",
        metavar="TOPIC_PREFIX",
        nargs="?",
        default="",
        help="only events whose topic starts with this (e.g. assistant.deleted)",
    )
    watch.add_argument(
        "--events",
        metavar="ENDPOINT",
        help="the daemon's event endpoint (default events.sock in the runtime dir)",
    )
    return parser


WATCH_DESCRIPTION = """\
Print the daemon's events as they come, one line each, until Ctrl-C (which exits 0).

For people a line shows the time, the topic, the seq, the assistant's id and its name (or, for
assistant.invalid, the reason), and its worker's status when it has one. A worker's events show
as the time and [ID PID WHAT]: WHAT is stdout, stderr or install for a line the worker (or npm
install) wrote, message for a message it sent, exited when it ended. With --json each line is
the event's JSON object as the daemon sent it. Lines with the topic client.synced are the
watcher's own: it took a snapshot (at the start, after lost events, or when the daemon
restarted), so changes between the lines before it and the state after it may have been merged.
The watch goes on across daemon restarts. `assistantctl watch worker.` shows only the workers'
events; `assistantctl watch worker.log` only their output.
"""

DOWNLOAD_DESCRIPTION = """\
Download an assistant from URL (a .zip, a .tar.gz or an assistant.json) into the daemon's
folder of assistants, and show the download until it ends: a progress bar on a terminal, a
line about every second otherwise. Exits 0 once the assistant is ready (with --start, once its
worker is running too), 1 if the download failed (the assistant is back to to_download, with
the error: `assistantctl download --id ID` tries again).

The download runs in the daemon: Ctrl-C stops only the showing (exit 130), and
`assistantctl cancel ID` cancels the download. With --no-wait the assistant is printed as the
daemon registered it (downloading) and the command exits at once. With --json each line is a
JSON object: the assistant as answered, each download.progress event, and the assistant once
ready (and once running).
"""

INVOKE_DESCRIPTION = """\
Call METHOD of a running assistant's worker with the ARGs; print what it returned, as JSON.

Each ARG is JSON (42, true, null, [1, 2], {"a": 1}, "text"); a bare word that is not JSON is
taken as a string (hello is "hello"), but an ARG that starts with {, [ or " must be valid JSON.
Put -- after the options and before ARGs that start with a dash (numbers need none).

If the method throws, the error says so (exit 1) with the worker's error and stack. An invoke
is never sent twice: if no reply comes, the method may still have run (exit 3).
"""


KEYS_DESCRIPTION = """\
Make this client's CURVE key pair, which it needs to reach a daemon's tcp:// endpoints, and
print what to copy where: NAME.key_secret (mode 0600: it stays here) and NAME.key (the public
key: it goes into the daemon's curve-clients folder), in --dir, by default
$XDG_CONFIG_HOME/assistantd (~/.config/assistantd), where the clients look for it. An existing
pair is never replaced: it is shown again. No daemon is needed.

With --server, print the daemon's public key instead: server.key in --dir, by default the
daemon's state dir ($XDG_STATE_HOME/assistantd, ~/.local/state/assistantd), where the daemon
makes its pair when it first serves tcp://. A client is given it with $ASSISTANTD_SERVER_KEY,
or a copy at ~/.config/assistantd/server.key.
"""

SERVICE_DESCRIPTION = """\
Install assistantd as a systemd service: `assistantctl service install` writes the user units
(assistantd.service and its sockets assistantd-command.socket and assistantd-events.socket) to
~/.config/systemd/user with the path of the assistantd installed with this assistantctl, and
prints the systemctl commands that start it. With --system it writes the hardened system-wide
units to /etc/systemd/system, with /etc/sysusers.d/assistantd.conf (their user) and
/etc/tmpfiles.d/assistantd.conf (their runtime folder), as root. No daemon is needed; exits 1
when the files cannot be written (the message says why).
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from assistantd.client.discovery import command_endpoint
    from assistantd.protocol.errors import AssistantdError, UnavailableError

    endpoint = command_endpoint(
        command=getattr(args, "command", None), runtime_dir=getattr(args, "runtime_dir", None)
    )
    transport = _transport(
        endpoint, getattr(args, "timeout", 10.0), getattr(args, "insecure_tcp", False)
    )
    try:
        code: int = args.handler(Session(transport), args)
        return code
    except UsageError as exc:
        parser.exit(EXIT_USAGE, f"assistantctl: error: {exc}\n")
    except AssistantdError as exc:
        _report(exc, as_json=getattr(args, "json", False))
        return EXIT_UNAVAILABLE if isinstance(exc, UnavailableError) else EXIT_ERROR
    finally:
        transport.close()


def _transport(endpoint: str, timeout: float, insecure_tcp: bool = False) -> Transport:
    """The ZMTP peer of our own for a local socket (no pyzmq import), pyzmq for the rest: a
    tcp:// endpoint needs CURVE, which only pyzmq speaks (keys found as client.curve says)."""
    if endpoint.startswith("ipc://"):
        from assistantd.client.zmtp import UnixZmtpTransport

        return UnixZmtpTransport(endpoint, timeout)
    from assistantd.client.curve import ClientSecurity
    from assistantd.client.transport import BlockingTransport

    return BlockingTransport(endpoint, timeout, ClientSecurity(insecure_tcp=insecure_tcp))


class Session:
    """Requests over one transport, with ids, returning results as plain JSON values."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._next_id = 1

    def call(self, method: str, params: dict[str, Any]) -> Any:
        from assistantd.protocol.errors import AssistantdError, InternalError

        request = {"id": self._next_id, "method": method, "params": params}
        self._next_id += 1
        from assistantd.client.waits import reply_timeout

        wait = reply_timeout(method, params, self.transport.timeout)
        body = self.transport.exchange(json.dumps(request).encode(), wait)
        try:
            reply = json.loads(body)
            if isinstance(reply.get("error"), dict):
                raise AssistantdError.from_object(reply["error"])
            return reply["result"]
        except (ValueError, KeyError, AttributeError) as exc:
            raise InternalError(f"The daemon sent a reply that cannot be read: {exc}") from None


class UsageError(Exception):
    """Options that parse but do not make sense together."""


def _report(exc: Any, *, as_json: bool) -> None:
    if as_json:
        sys.stderr.write(json.dumps({"error": exc.to_object()}) + "\n")
        return
    details = ", ".join(
        str(part) for part in (exc.status, exc.code, exc.param and f"param {exc.param}") if part
    )
    sys.stderr.write(f"assistantctl: error: {exc.message} ({details})\n")
    for line in output.detail_lines(exc.details):
        sys.stderr.write(f"  {line}\n")


# --- commands ---------------------------------------------------------------------------------
# Each takes the session and the parsed options and returns the exit code.


def _list(session: Session, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit, "order": args.order}
    if args.after:
        params["after"] = args.after
    if args.before:
        params["before"] = args.before
    if args.all:
        params["limit"] = 100
        assistants: list[dict[str, Any]] = []
        while True:
            page = session.call("listAssistants", params)
            assistants += page["data"]
            if not page["has_more"]:
                break
            params["after"] = page["last_id"]
        if _json(args):
            return output.print_json(assistants)
        return output.print_table(assistants, more_after=None)
    page = session.call("listAssistants", params)
    if _json(args):
        return output.print_json(page)
    return output.print_table(page["data"], more_after=page["has_more"] and page["last_id"])


def _get(session: Session, args: argparse.Namespace) -> int:
    return _show(session.call("getAssistant", {"assistant_id": args.assistant_id}), args)


def _create(session: Session, args: argparse.Namespace) -> int:
    params = _fields(args)
    if args.id is not None:
        params["id"] = args.id
    return _show(session.call("createAssistant", params), args)


def _modify(session: Session, args: argparse.Namespace) -> int:
    fields = _fields(args)
    if not fields:
        raise UsageError("nothing to change: give at least one field option")
    params = {**fields, "assistant_id": args.assistant_id}
    return _show(session.call("modifyAssistant", params), args)


def _delete(session: Session, args: argparse.Namespace) -> int:
    deleted = session.call("deleteAssistant", {"assistant_id": args.assistant_id})
    if _json(args):
        return output.print_json(deleted)
    sys.stdout.write(f"deleted {deleted['id']}\n")
    return EXIT_OK


def _ping(session: Session, args: argparse.Namespace) -> int:
    info = session.call("ping", {})
    if _json(args):
        return output.print_json(info)
    return output.print_fields(
        [
            ("daemon", str(info["daemon_version"])),
            ("protocol", str(info["protocol_version"])),
            ("epoch", str(info["epoch"])),
            ("uptime", f"{info['uptime']:.1f}s"),
            ("endpoint", session.transport.endpoint),
        ]
    )


def _worker_command(session: Session, args: argparse.Namespace) -> int:
    """start, stop and restart: the method is in ``args.method``."""
    assistant = session.call(args.method, {"assistant_id": args.assistant_id})
    if _json(args):
        return output.print_json(assistant)
    return output.print_worker(assistant)


def _invoke(session: Session, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {
        "assistant_id": args.assistant_id,
        "method": args.method,
        "args": [_json_arg(arg, "ARG") for arg in args.args],
    }
    if args.timeout_ms is not None:
        params["timeout_ms"] = args.timeout_ms
    answer = session.call("invokeAssistant", params)
    return output.print_json(answer["result"])


def _send(session: Session, args: argparse.Namespace) -> int:
    message = _json_arg(args.message, "MESSAGE")
    sent = session.call("sendToAssistant", {"assistant_id": args.assistant_id, "message": message})
    if _json(args):
        return output.print_json(sent)
    sys.stdout.write(f"sent to {sent['assistant_id']}\n")
    return EXIT_OK


def _download(session: Session, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {}
    if args.url is not None:
        params["url"] = args.url
    elif args.id is None:
        raise UsageError("give a URL, or --id ID to download a to_download assistant again")
    if args.sha256 is not None:
        params["sha256"] = args.sha256
    if args.id is not None:
        params["assistant_id"] = args.id
    if args.start:
        params["start"] = True
    if args.no_wait:
        assistant = session.call("downloadAssistant", params)
        if _json(args):
            return output.print_json(assistant)
        return output.print_download(assistant)
    from . import download  # pyzmq, msgspec and rich: for this long-running command only

    return download.follow(args, params, session.transport.endpoint)


def _cancel(session: Session, args: argparse.Namespace) -> int:
    assistant = session.call("cancelDownload", {"assistant_id": args.assistant_id})
    if _json(args):
        return output.print_json(assistant)
    return output.print_download(assistant)


def _import(session: Session, args: argparse.Namespace) -> int:
    import os

    # The daemon has a working directory of its own: it takes absolute paths only.
    params = {"path": os.path.abspath(args.path)}
    if args.id is not None:
        params["assistant_id"] = args.id
    return _show(session.call("importAssistant", params), args)


def _export(session: Session, args: argparse.Namespace) -> int:
    import os

    params = {"assistant_id": args.assistant_id, "path": os.path.abspath(args.path)}
    exported = session.call("exportAssistant", params)
    if _json(args):
        return output.print_json(exported)
    return output.print_export(exported)


def _json_arg(text: str, what: str) -> Any:
    """``text`` as JSON, or as a string when it is a bare word that is not JSON.

    >>> [_json_arg(text, "ARG") for text in ("42", "hello", '"42"', "[1]", "NaN", "a b")]
    [42, 'hello', '42', [1], 'NaN', 'a b']
    """
    try:
        return json.loads(text, parse_constant=_not_json)
    except ValueError as exc:
        if text.lstrip().startswith(("{", "[", '"')):
            raise UsageError(f"{what} {text!r} is not valid JSON: {exc}") from None
        return text


def _not_json(constant: str) -> Any:
    # Python's json reads NaN and Infinity, which JSON does not have: here they are words.
    raise ValueError(f"{constant} is not JSON")


def _keys(session: Session, args: argparse.Namespace) -> int:
    from . import keys  # pyzmq: for this rare command only

    return keys.run(args)


def _service(session: Session, args: argparse.Namespace) -> int:
    from . import service  # for this rare command only

    return service.run(args)


def _request(session: Session, args: argparse.Namespace) -> int:
    try:
        params = json.loads(args.params)
    except ValueError as exc:
        raise UsageError(f"params must be a JSON object: {exc}") from None
    if not isinstance(params, dict):
        raise UsageError("params must be a JSON object")
    return output.print_json(session.call(args.method, params))


def _watch(session: Session, args: argparse.Namespace) -> int:
    try:
        # A long-running command: the import time of pyzmq and msgspec does not matter here.
        import msgspec

        from assistantd.client.clone import Synced, topic_of
        from assistantd.client.sync import Client

        client = Client(
            command=session.transport.endpoint,
            events=args.events,
            runtime_dir=getattr(args, "runtime_dir", None),
            timeout=getattr(args, "timeout", 10.0),
            insecure_tcp=getattr(args, "insecure_tcp", False),
        )
        with client, client.watch(args.prefix) as watch:
            for event in watch:
                if _json(args):
                    line = msgspec.json.encode(event).decode()
                else:
                    note = None
                    if isinstance(event, Synced):
                        mirror = watch.mirror
                        count = len(mirror.assistants)
                        note = f"{count} assistant{'' if count == 1 else 's'}, "
                        note += f"{len(mirror.invalid)} invalid"
                    line = output.event_line(topic_of(event), msgspec.to_builtins(event), note)
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        # The reader went away (`| head`): a normal end. Point stdout at /dev/null so that the
        # interpreter's last flush does not complain about it once more.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return EXIT_OK  # pragma: no cover - a watch ends only by an exception


def _show(assistant: dict[str, Any], args: argparse.Namespace) -> int:
    if _json(args):
        return output.print_json(assistant)
    return output.print_assistant(assistant)


def _json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    """The assistant fields given on the command line, over those of --from-json."""
    fields: dict[str, Any] = _read_json_fields(args.from_json) if args.from_json else {}
    for name in ("name", "description", "avatar", "thread_location", "temperature", "top_p"):
        value = getattr(args, name)
        if value is not None:
            fields[name] = value
    if args.instructions is not None:
        fields["instructions"] = args.instructions
    elif args.instructions_file is not None:
        fields["instructions"] = _read_text(args.instructions_file)
    if args.model:
        fields["model"] = args.model[0] if len(args.model) == 1 else args.model
    if args.tool:
        fields["tools"] = [{"type": tool_type} for tool_type in args.tool]
    if args.file_ids:
        fields["file_ids"] = args.file_ids
    if args.metadata:
        fields["metadata"] = dict(_pair(item) for item in args.metadata)
    return fields


def _pair(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise UsageError(f"--metadata takes KEY=VALUE, not {item!r}")
    return key, value


def _read_text(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


def _read_json_fields(path: str) -> dict[str, Any]:
    try:
        fields = json.loads(_read_text(path))
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise UsageError(f"{path} must hold a JSON object of assistant fields")
    return fields


if __name__ == "__main__":
    sys.exit(main())
