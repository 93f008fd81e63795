"""Bad input over raw ZeroMQ gets a clear error, and nothing is lost (issue 2).

Every test talks to one real daemon process over its ipc socket with plain pyzmq REQ and DEALER
sockets, sends something wrong, and then checks three things: the reply (with the id echoed
where one can be recovered, ``null`` and a warning in the log where not), that another client
is still served, and that nothing outside the assistants root (nor the default assistant) was
touched. Beside the root lies ``outside/assistant.json``: a path that escapes the root by one
``..`` would find a real assistant there.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from assistantd.client import AssistantdError, Client, NotFoundError
from assistantd.protocol.limits import ID_MAX_CHARS, REQUEST_MAX_BYTES, TRANSPORT_MAX_BYTES
from tests.e2e.helpers import (
    exchange,
    log_mark,
    reply_of,
    request_body,
    tree,
    wait_for_new_log,
    write_json,
)
from tests.utils import DaemonProcess, running_daemon

ROOT_NAME = "assistants"
OUTSIDE = "<outside>"  # stands for the absolute path of the folder beside the root

# "req": a REQ socket (the envelope ends with an empty delimiter frame, added by zmq);
# "dealer": a DEALER that adds the delimiter itself; "bare-dealer": a DEALER that sends the
# body alone. Each must get the reply back in the envelope it used.
CLIENTS = ("req", "dealer", "bare-dealer")


class Served:
    """The module's daemon, a zmq context, and what must stay as it was."""

    def __init__(self, daemon: DaemonProcess, base: Path, context: zmq.Context[Any]) -> None:
        self.daemon = daemon
        self.base = base
        self.context = context
        self.outside = base / "outside"
        self.before = self._outside_root()
        self.jan = (daemon.root / "jan" / "assistant.json").read_bytes()

    def _outside_root(self) -> dict[str, Any]:
        return {
            path: entry
            for path, entry in tree(self.base).items()
            if path != ROOT_NAME and not path.startswith(f"{ROOT_NAME}/")
        }

    def ask(self, client: str, body: list[bytes]) -> dict[str, Any]:
        """Send ``body`` (the frames after any envelope) as ``client``; the reply body, after
        checking that it came back in the same envelope."""
        endpoint = self.daemon.command
        if client == "req":
            frames = exchange(self.context, endpoint, body, kind=zmq.REQ)
            assert len(frames) == 1, frames
        elif client == "dealer":
            frames = exchange(self.context, endpoint, [b"", *body])
            assert len(frames) == 2, frames
            assert frames[0] == b"", frames
        else:
            assert client == "bare-dealer"
            frames = exchange(self.context, endpoint, body)
            assert len(frames) == 1, frames
        reply = reply_of(frames)
        if "error" in reply:
            assert "result" not in reply, reply
            assert set(reply["error"]) == {"message", "type", "param", "code", "status"}, reply
            assert reply["error"]["message"], reply
        return reply

    def check_unharmed(self) -> None:
        """Another client is served, and nothing outside the root or in it was changed."""
        ping = reply_of(
            exchange(
                self.context,
                self.daemon.command,
                [request_body("after", "ping", {})],
                kind=zmq.REQ,
            )
        )
        assert ping["id"] == "after", ping
        assert ping["result"]["protocol_version"] == 1, ping
        got = reply_of(
            exchange(
                self.context,
                self.daemon.command,
                [b"", request_body(7, "getAssistant", {"assistant_id": "jan"})],
            )
        )
        assert (got["id"], got["result"]["id"]) == (7, "jan"), got
        assert self._outside_root() == self.before
        assert (self.daemon.root / "jan" / "assistant.json").read_bytes() == self.jan
        visible = {name for name in os.listdir(self.daemon.root) if not name.startswith(".")}
        assert visible == {"jan"}, "a bad request created something in the root"
        assert self.daemon.process.poll() is None


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("bad-input")
    root = base / ROOT_NAME
    root.mkdir()
    write_json(base / "outside" / "assistant.json", {"name": "Outside", "created_at": 1})
    (base / "sentinel.txt").write_text("must stay as it is\n")
    context: zmq.Context[Any] = zmq.Context()
    try:
        with running_daemon(root) as daemon:
            yield Served(daemon, base, context)
    finally:
        context.destroy(linger=0)


def _unrecoverable_id_logged(served: Served, mark: int) -> None:
    line = wait_for_new_log(
        served.daemon,
        mark,
        lambda line: line.get("level") == "warning" and "request_id" in line,
    )
    assert line["request_id"] is None, line


# -- frames that are not a request ------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    "body",
    [b"nope", b"{", b'{"id": 1,', b"{'id': 1}", b"\xff\xfe\x00", b'{"id": "a", "id": }'],
)
def test_a_frame_that_is_not_json_is_answered_with_null_id(
    served: Served, client: str, body: bytes
) -> None:
    mark = log_mark(served.daemon)
    reply = served.ask(client, [body])
    assert reply["id"] is None
    error = reply["error"]
    assert (error["status"], error["type"], error["code"]) == (
        400,
        "invalid_request_error",
        "invalid_json",
    )
    _unrecoverable_id_logged(served, mark)
    served.check_unharmed()


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    "body", [b"[1, 2]", b'["getAssistant", {"assistant_id": "jan"}]', b'"ping"', b"42", b"null"]
)
def test_json_that_is_not_an_object_is_answered_with_null_id(
    served: Served, client: str, body: bytes
) -> None:
    mark = log_mark(served.daemon)
    reply = served.ask(client, [body])
    assert reply["id"] is None
    error = reply["error"]
    assert (error["status"], error["type"]) == (400, "invalid_request_error")
    assert error["code"] == "invalid_type"
    _unrecoverable_id_logged(served, mark)
    served.check_unharmed()


@pytest.mark.parametrize(
    "request_id", [None, 1.5, True, [1], {"n": 1}], ids=["null", "float", "bool", "list", "dict"]
)
def test_an_id_of_the_wrong_type_is_refused_with_null_id(served: Served, request_id: Any) -> None:
    mark = log_mark(served.daemon)
    reply = served.ask("dealer", [request_body(request_id, "ping", {})])
    assert reply["id"] is None
    assert (reply["error"]["status"], reply["error"]["param"]) == (400, "id")
    _unrecoverable_id_logged(served, mark)
    served.check_unharmed()


def test_a_request_without_id_is_refused_and_logged(served: Served) -> None:
    mark = log_mark(served.daemon)
    reply = served.ask("req", [b'{"method": "ping"}'])
    assert reply["id"] is None
    error = reply["error"]
    assert (error["status"], error["param"], error["code"]) == (
        400,
        "id",
        "missing_required_parameter",
    )
    _unrecoverable_id_logged(served, mark)
    served.check_unharmed()


# -- methods ----------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_a_missing_method_is_a_400_naming_it(served: Served, client: str) -> None:
    reply = served.ask(client, [b'{"id": "m-1", "params": {"assistant_id": "jan"}}'])
    assert reply["id"] == "m-1"
    error = reply["error"]
    assert (error["status"], error["param"], error["code"]) == (
        400,
        "method",
        "missing_required_parameter",
    )
    served.check_unharmed()


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("method", ["nope", "getassistant", "GetAssistant", "", "__init__"])
def test_an_unknown_method_is_a_404(served: Served, client: str, method: str) -> None:
    reply = served.ask(client, [request_body(41, method, {"assistant_id": "jan"})])
    assert reply["id"] == 41
    error = reply["error"]
    assert (error["status"], error["param"], error["code"]) == (404, "method", "unknown_method")
    served.check_unharmed()


def test_a_method_that_is_not_a_string_is_a_400(served: Served) -> None:
    reply = served.ask("dealer", [b'{"id": "m-2", "method": ["ping"]}'])
    assert reply["id"] == "m-2"
    assert (reply["error"]["status"], reply["error"]["param"]) == (400, "method")
    served.check_unharmed()


def test_an_unknown_top_level_member_is_a_400_naming_it(served: Served) -> None:
    reply = served.ask("req", [b'{"id": "t-1", "method": "ping", "params": {}, "jsonrpc": "2"}'])
    assert reply["id"] == "t-1"
    error = reply["error"]
    assert (error["status"], error["param"], error["code"]) == (
        400,
        "jsonrpc",
        "unknown_parameter",
    )
    served.check_unharmed()


# -- params -----------------------------------------------------------------------------------


WRONG_TYPES: list[tuple[str, Any, str | tuple[str, ...]]] = [
    ("getAssistant", 3, "params"),
    ("getAssistant", "jan", "params"),
    ("getAssistant", ["jan"], "params"),
    ("listAssistants", {"limit": "x"}, "limit"),
    ("listAssistants", {"limit": 2.5}, "limit"),
    ("listAssistants", {"order": 1}, "order"),
    ("listAssistants", {"order": "sideways"}, "order"),
    ("listAssistants", {"after": 7}, "after"),
    ("getAssistant", {"assistant_id": 5}, "assistant_id"),
    ("getAssistant", {"assistant_id": None}, "assistant_id"),
    ("deleteAssistant", {"assistant_id": ["jan"]}, "assistant_id"),
    ("modifyAssistant", {"assistant_id": "jan", "name": 5}, "name"),
    # msgspec cannot say which key of a dict held the bad value: naming the member
    # ("metadata") or the key's path ("metadata.k", as the limit checks do) are both fine.
    ("modifyAssistant", {"assistant_id": "jan", "metadata": {"k": 1}}, ("metadata.k", "metadata")),
    ("modifyAssistant", {"assistant_id": "jan", "tools": {"type": "x"}}, "tools"),
    ("createAssistant", {"id": 5}, "id"),
    ("createAssistant", {"temperature": "hot"}, "temperature"),
    ("createAssistant", {"tools": [{"type": 3}]}, "tools[0].type"),
    ("createAssistant", {"file_ids": [1]}, "file_ids[0]"),
]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    ("method", "params", "param"),
    [
        pytest.param(
            method, params, param, id=f"{method}.{param if isinstance(param, str) else param[0]}"
        )
        for method, params, param in WRONG_TYPES
    ],
)
def test_params_of_the_wrong_type_are_a_400_naming_the_field(
    served: Served, client: str, method: str, params: Any, param: str | tuple[str, ...]
) -> None:
    body = json.dumps({"id": f"w-{client}", "method": method, "params": params}).encode()
    reply = served.ask(client, [body])
    assert reply["id"] == f"w-{client}"
    error = reply["error"]
    assert (error["status"], error["type"]) == (400, "invalid_request_error")
    assert error["param"] in ((param,) if isinstance(param, str) else param), error
    assert error["code"] in ("invalid_type", "invalid_value"), error
    served.check_unharmed()


@pytest.mark.parametrize(
    ("method", "params", "param"),
    [
        ("getAssistant", {"assistant_id": "jan", "colour": "red"}, "colour"),
        ("listAssistants", {"limit": 1, "page": 2}, "page"),
        ("ping", {"verbose": True}, "verbose"),
        ("modifyAssistant", {"assistant_id": "jan", "nmae": "typo"}, "nmae"),
        ("createAssistant", {"name": "x", "state": "running"}, "state"),
        ("createAssistant", {"name": "x", "assistant_id": "y"}, "assistant_id"),
    ],
)
def test_unknown_params_are_a_400_naming_them(
    served: Served, method: str, params: dict[str, Any], param: str
) -> None:
    reply = served.ask("dealer", [request_body("u-1", method, params)])
    assert reply["id"] == "u-1"
    error = reply["error"]
    assert (error["status"], error["param"], error["code"]) == (400, param, "unknown_parameter")
    served.check_unharmed()


def test_null_params_count_as_no_params(served: Served) -> None:
    """PROTOCOL.md: ``"params": null`` is ``{}`` (JSON-RPC clients send it for "none")."""
    reply = served.ask("dealer", [b'{"id": "n-1", "method": "ping", "params": null}'])
    assert reply["id"] == "n-1"
    assert reply["result"]["protocol_version"] == 1
    reply = served.ask("dealer", [b'{"id": "n-2", "method": "getAssistant", "params": null}'])
    assert (reply["error"]["status"], reply["error"]["param"]) == (400, "assistant_id")
    served.check_unharmed()


def test_a_missing_required_param_is_a_400_naming_it(served: Served) -> None:
    reply = served.ask("req", [request_body("r-1", "getAssistant", {})])
    error = reply["error"]
    assert (reply["id"], error["status"], error["param"], error["code"]) == (
        "r-1",
        400,
        "assistant_id",
        "missing_required_parameter",
    )
    served.check_unharmed()


# -- size -------------------------------------------------------------------------------------


def _padded_create(request_id: str, size: int) -> bytes:
    """A createAssistant body of exactly ``size`` bytes (the padding is in ``instructions``)."""
    empty = request_body(request_id, "createAssistant", {"name": "big", "instructions": ""})
    padding = size - len(empty)
    assert padding > 0
    body = request_body(
        request_id, "createAssistant", {"name": "big", "instructions": "a" * padding}
    )
    assert len(body) == size
    return body


@pytest.mark.parametrize("client", CLIENTS)
def test_a_body_over_the_limit_is_a_413_with_the_id(served: Served, client: str) -> None:
    body = _padded_create(f"big-{client}", REQUEST_MAX_BYTES + 1)
    reply = served.ask(client, [body])
    assert reply["id"] == f"big-{client}"
    error = reply["error"]
    assert (error["status"], error["code"]) == (413, "request_too_large")
    assert str(REQUEST_MAX_BYTES) in error["message"]
    served.check_unharmed()


def test_a_body_at_the_limit_is_read_and_judged_on_its_content(served: Served) -> None:
    # 2 MiB of instructions is within the size limit but over OpenAI's 256,000 characters.
    reply = served.ask("dealer", [_padded_create("at-limit", REQUEST_MAX_BYTES)])
    assert reply["id"] == "at-limit"
    error = reply["error"]
    assert (error["status"], error["param"], error["code"]) == (
        400,
        "instructions",
        "string_above_max_length",
    )
    served.check_unharmed()


def test_a_body_over_the_limit_that_is_not_json_is_a_413_and_logged(served: Served) -> None:
    mark = log_mark(served.daemon)
    reply = served.ask("bare-dealer", [b"x" * (REQUEST_MAX_BYTES + 10)])
    assert reply["id"] is None
    assert reply["error"]["status"] == 413
    _unrecoverable_id_logged(served, mark)
    served.check_unharmed()


# -- frames -----------------------------------------------------------------------------------


def _create_body(request_id: str, assistant_id: str) -> bytes:
    return request_body(request_id, "createAssistant", {"id": assistant_id, "name": "x"})


EXTRA_FRAMES = [
    pytest.param(client, extra, id=f"{client}-{name}")
    for client in CLIENTS
    for name, extra in (("one", [b"extra"]), ("empty", [b""]), ("two", [b"{}", b"{}"]))
    # [body, b""] from a DEALER without a delimiter is, on the wire, a routing envelope ending
    # in a delimiter and no body; it is answered, but in that envelope.
    if (client, name) != ("bare-dealer", "empty")
]


@pytest.mark.parametrize(("client", "extra"), EXTRA_FRAMES)
def test_extra_frames_after_the_body_are_refused_with_the_id(
    served: Served, client: str, extra: list[bytes]
) -> None:
    # The body alone would create an assistant: refusing the message must not run it.
    reply = served.ask(client, [_create_body(f"x-{client}", "from-extra-frames"), *extra])
    assert reply["id"] == f"x-{client}"
    error = reply["error"]
    assert (error["status"], error["code"]) == (400, "invalid_frames")
    served.check_unharmed()


def test_a_dealer_sending_only_the_delimiter_gets_an_error_and_a_log_line(
    served: Served,
) -> None:
    mark = log_mark(served.daemon)
    frames = exchange(served.context, served.daemon.command, [b""])
    assert len(frames) == 2, frames
    assert frames[0] == b"", frames
    reply = reply_of(frames)
    assert reply["id"] is None
    assert (reply["error"]["status"], reply["error"]["code"]) == (400, "invalid_frames")
    _unrecoverable_id_logged(served, mark)
    served.check_unharmed()


def test_a_req_sending_an_empty_body_gets_an_error(served: Served) -> None:
    mark = log_mark(served.daemon)
    reply = served.ask("req", [b""])
    assert reply["id"] is None
    assert reply["error"]["status"] == 400
    _unrecoverable_id_logged(served, mark)
    served.check_unharmed()


# -- replies come back in the envelope they came in -------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("request_id", [7, "seven", 0, -1, "", "é-☃"])
def test_a_good_request_is_answered_in_the_clients_envelope(
    served: Served, client: str, request_id: int | str
) -> None:
    reply = served.ask(client, [request_body(request_id, "getAssistant", {"assistant_id": "jan"})])
    assert reply["id"] == request_id
    assert type(reply["id"]) is type(request_id)
    assert reply["result"]["id"] == "jan"
    assert reply["result"]["state"] == "ready"


def test_a_request_through_a_proxy_gets_the_whole_envelope_back(served: Served) -> None:
    # A ROUTER-DEALER broker in between adds its own routing frames before the delimiter.
    body = request_body("via", "ping", {})
    frames = exchange(served.context, served.daemon.command, [b"hop-2", b"hop-1", b"", body])
    assert frames[:3] == [b"hop-2", b"hop-1", b""]
    assert reply_of(frames)["id"] == "via"


def test_a_pipelining_dealer_gets_one_reply_per_message(served: Served) -> None:
    """Good and bad messages interleaved on one socket: each gets its reply, none is lost."""
    socket = served.context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    expected_ids: list[Any] = []
    try:
        socket.connect(served.daemon.command)
        for n in range(40):
            kind = n % 4
            if kind == 0:
                socket.send_multipart([b"", request_body(n, "ping", {})])
            elif kind == 1:
                socket.send_multipart([b"", b"{broken"])
            elif kind == 2:
                socket.send_multipart([request_body(n, "nope", {})])
            else:
                socket.send_multipart([b"", request_body(n, "getAssistant", {"assistant_id": 5})])
            expected_ids.append(None if kind == 1 else n)
        replies = []
        for _ in expected_ids:
            assert socket.poll(5000, zmq.POLLIN), f"only {len(replies)} replies came"
            replies.append(reply_of(socket.recv_multipart()))
        assert not socket.poll(0, zmq.POLLIN)
    finally:
        socket.close(linger=0)
    # Replies may come in any order; each id comes back once, with the right outcome.
    assert Counter(reply["id"] for reply in replies) == Counter(expected_ids)
    for reply in replies:
        assert ("result" in reply) == (reply["id"] is not None and reply["id"] % 4 == 0), reply
    served.check_unharmed()


# -- messages that strain the parser or the transport -----------------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000  # 200 kB, well under the size limit


@pytest.mark.parametrize(
    "frames",
    [
        [b"", b'{"id": "deep", "method": "ping", "params": {"a": ' + DEEP + b"}}"],
        [
            b"",
            b'{"id": "deep", "method": "createAssistant", "params": {"tools": '
            b'[{"type": "x", "a": ' + DEEP + b"}]}}",
        ],
        [b"", b'{"id": "deep", "method": "ping", "params": {"a": ' + DEEP + b"}}", b"extra"],
    ],
    ids=["params", "tool", "extra-frames"],
)
def test_deeply_nested_json_is_refused_and_the_daemon_lives(
    daemon: DaemonProcess, frames: list[bytes]
) -> None:
    """JSON nested deeper than the decoder's recursion limit is a bad request like any other;
    it must not end the daemon (its own daemon: a failure here would take the module's down)."""
    context: zmq.Context[Any] = zmq.Context()
    try:
        mark = log_mark(daemon)
        sender = context.socket(zmq.DEALER)
        sender.setsockopt(zmq.LINGER, 0)
        sender.connect(daemon.command)
        sender.send_multipart(frames)
        # Wait for a reply or for the daemon's end, whichever comes first.
        deadline = time.monotonic() + 5
        while not (answered := bool(sender.poll(100, zmq.POLLIN))):
            if daemon.process.poll() is not None or time.monotonic() > deadline:
                break
        alive = daemon.process.poll() is None
        assert alive, "the daemon died of a deeply nested message"
        assert answered, "no reply to a deeply nested message"
        reply = reply_of(sender.recv_multipart())
        sender.close(linger=0)
        assert reply["error"]["status"] == 400, reply
        assert reply["id"] in ("deep", None), reply
        if reply["id"] is None:
            wait_for_new_log(daemon, mark, lambda line: line.get("level") == "warning")
        ping = reply_of(
            exchange(context, daemon.command, [request_body(1, "ping", {})], kind=zmq.REQ)
        )
        assert ping["result"]["protocol_version"] == 1
    finally:
        context.destroy(linger=0)


def test_a_message_over_the_transport_limit_costs_only_its_sender(served: Served) -> None:
    """Over TRANSPORT_MAX_BYTES, ZeroMQ itself drops the message and the sender's connection
    (limits.py); the daemon reads on, for the others."""
    sender = served.context.socket(zmq.DEALER)
    sender.setsockopt(zmq.LINGER, 0)
    monitor = sender.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        sender.connect(served.daemon.command)
        sender.send_multipart([b"", b'{"id": "huge", "x": "' + b"a" * TRANSPORT_MAX_BYTES + b'"}'])
        assert monitor.poll(10_000, zmq.POLLIN), "the daemon kept the connection"
        event = recv_monitor_message(monitor)
        assert event["event"] == zmq.EVENT_DISCONNECTED
    finally:
        sender.disable_monitor()
        monitor.close(linger=0)
        sender.close(linger=0)
    served.check_unharmed()


# -- ids that are not safe folder names -------------------------------------------------------

BAD_IDS = [
    "..",
    "../outside",
    "..\\outside",
    "../..",
    "/",
    "a/b",
    "jan/",
    "a\\b",
    "a\0b",
    "\0",
    OUTSIDE,
    "/etc/passwd",
    ".hidden",
    ".",
    ".staging",
    ".trash",
    ".lock",
    "",
    " jan",
    "jan\n",
    "x" * (ID_MAX_CHARS + 1),
]

ID_METHODS = [
    ("getAssistant", "assistant_id", {}),
    ("modifyAssistant", "assistant_id", {"name": "Overwritten"}),
    ("deleteAssistant", "assistant_id", {}),
    ("createAssistant", "id", {"name": "Planted"}),
]


@pytest.mark.parametrize(("method", "param", "fields"), ID_METHODS, ids=[m[0] for m in ID_METHODS])
@pytest.mark.parametrize("bad_id", BAD_IDS, ids=repr)
def test_an_unsafe_id_is_a_400_and_nothing_outside_the_root_is_touched(
    served: Served, method: str, param: str, fields: dict[str, Any], bad_id: str
) -> None:
    if bad_id == OUTSIDE:
        bad_id = str(served.outside)
    reply = served.ask("req", [request_body("id-check", method, {param: bad_id, **fields})])
    assert reply["id"] == "id-check"
    error = reply["error"]
    assert (error["status"], error["param"], error["code"]) == (400, param, "invalid_id")
    served.check_unharmed()


def test_an_id_too_long_for_a_file_name_is_a_400_not_a_500(served: Served) -> None:
    """64 characters, well under the documented 128, but 256 bytes of UTF-8: more than a
    file name can hold (255 bytes on Linux file systems)."""
    long_id = "😀" * 64
    assert len(long_id) <= ID_MAX_CHARS
    assert len(long_id.encode()) > 255
    reply = served.ask("dealer", [request_body("long", "createAssistant", {"id": long_id})])
    assert reply["id"] == "long"
    error = reply["error"]
    assert (error["status"], error["param"], error["code"]) == (400, "id", "invalid_id"), error
    served.check_unharmed()


# -- symlinks planted in the root -------------------------------------------------------------


@pytest.fixture
def linked(tmp_path: Path) -> Iterator[tuple[DaemonProcess, Path]]:
    """A daemon whose assistant ``victim``'s folder was replaced by hand with a symlink to
    a folder outside the root that holds an ``assistant.json`` of its own."""
    root = tmp_path / "assistants"
    elsewhere = tmp_path / "elsewhere"
    write_json(elsewhere / "assistant.json", {"name": "Elsewhere", "created_at": 5})
    root.mkdir()
    with running_daemon(root) as daemon:
        with Client(command=daemon.command, timeout=5) as client:
            client.create_assistant(id="victim", name="Victim")
        shutil.rmtree(root / "victim")
        (root / "victim").symlink_to(elsewhere, target_is_directory=True)
        yield daemon, elsewhere


def test_a_symlinked_assistant_folder_is_not_read_through(
    linked: tuple[DaemonProcess, Path],
) -> None:
    daemon, _elsewhere = linked
    # A folder that is a symlink is not loaded at start; it must not be served later either.
    with Client(command=daemon.command, timeout=5) as client, pytest.raises(NotFoundError):
        client.get_assistant("victim")


def test_a_symlinked_assistant_folder_is_not_written_through(
    linked: tuple[DaemonProcess, Path],
) -> None:
    daemon, elsewhere = linked
    before = tree(elsewhere)
    with Client(command=daemon.command, timeout=5) as client:
        try:
            client.modify_assistant("victim", name="Written through the link")
        except NotFoundError:
            refused = True
        else:
            refused = False
        client.ping()
    assert tree(elsewhere) == before, "modifyAssistant wrote outside the root"
    assert refused, "modifyAssistant of a folder that is a symlink must be a 404"


def test_a_symlinked_definition_file_is_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "assistants"
    root.mkdir()
    secret = tmp_path / "secret.json"
    write_json(secret, {"name": "Secret", "instructions": "do not serve me"})
    secret_bytes = secret.read_bytes()
    with running_daemon(root) as daemon, Client(command=daemon.command, timeout=5) as client:
        client.create_assistant(id="linked", name="Linked")
        definition = root / "linked" / "assistant.json"
        definition.unlink()
        definition.symlink_to(secret)
        # The last good version stays served; the file behind the link is never read.
        served_now = client.get_assistant("linked")
        assert (served_now.name, served_now.instructions) == ("Linked", None)
        with pytest.raises(AssistantdError) as caught:
            client.modify_assistant("linked", name="Through the link")
        assert caught.value.status in (404, 409), caught.value
        assert secret.read_bytes() == secret_bytes
        client.ping()
