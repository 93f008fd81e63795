"""Downloads, imports and exports end to end (issue "Acquire"): a real daemon process fetches
from a real HTTP server on 127.0.0.1 (:mod:`tests.e2e.httpserver`), and the tests look at what
a client sees (replies, the event stream) and at the files (the root, its ``.staging`` and
``.downloads``, the sources of imports, the archives exported).

Most tests share one daemon (``acquiring``) whose ``[acquire]`` limits are small: a stall of
half a second fails a download, a few redirects are allowed, and the byte and file limits are
those of the hostile corpus of ``tests/daemon/test_archive.py``, whose archives are served here
as they are built there. Each test works on assistants of its own ids; the tests that stop or
kill a daemon start their own. Every wait has a deadline: an event, a reply, or a file polled
(the staging folder is removed just after the event that announces a failed download).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import signal
import socket
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zmq

from tests.daemon.test_archive import (
    HOSTILE,
    LIMITS,
    Builder,
    Hostile,
    member,
    tar_fifo,
    tar_symlink,
    tgz_of,
    zip_bomb,
    zip_of,
    zip_parent_path,
)
from tests.e2e.helpers import (
    Event,
    EventStream,
    exchange,
    reply_of,
    request_body,
    short_tmp,
    subject,
    tree,
)
from tests.e2e.httpserver import HttpServer, http_server
from tests.e2e.workers import wait_for, write_config
from tests.utils import DaemonProcess, running_daemon

EVENT_TIMEOUT = 15.0
REPLY_TIMEOUT = 15.0
INSTALL_TIMEOUT = 45.0
Context = zmq.Context[zmq.Socket[bytes]]
Reply = dict[str, Any]
Files = dict[str, bytes]

MAX_BYTES = 1_200_000
"""The daemon's ``max-bytes``: over the corpus's 1 MiB limit, so that its bombs (about 1.06 MB
of archive each) are fetched whole and refused by the unpacking as they are in the unit tests,
and under the 1.2 MiB of ``zip_declared_too_large``, which must still be too large."""
MAX_REDIRECTS = 3
STALL_TIMEOUT = 0.5

ACQUIRE = {
    "max-bytes": MAX_BYTES,
    "max-files": LIMITS.max_files,
    "connect-timeout": 5,
    "stall-timeout": STALL_TIMEOUT,
    "timeout": 20,
    "max-redirects": MAX_REDIRECTS,
}
"""The ``[acquire]`` table of the tests' daemons."""

TRICKLE = {"chunk": 100, "delay": 0.05}
"""A body that arrives at 2 kB/s, steadily enough never to stall: a download under way for as
long as a test needs one (a megabyte would take minutes)."""


# ============================================================================================
# The daemon, its commands and its events
# ============================================================================================


def steps(events: list[Event]) -> list[tuple[str, str | None, str]]:
    """The state events among ``events``: (topic, state before, state after)."""
    return [
        (event["topic"], event.get("previous"), event["assistant"]["state"])
        for event in events
        if event["topic"] in ("assistant.created", "assistant.state")
    ]


def progress_of(events: list[Event]) -> list[Event]:
    return [event for event in events if event["topic"] == "download.progress"]


@dataclass
class Acquiring:
    """A daemon under test, the HTTP server it downloads from, and the folder both live in."""

    daemon: DaemonProcess
    context: Context
    server: HttpServer
    base: Path

    @property
    def root(self) -> Path:
        return self.daemon.root

    def reply(self, name: str, /, *, timeout: float = REPLY_TIMEOUT, **params: Any) -> Reply:
        frames = exchange(
            self.context, self.daemon.command, [b"", request_body(1, name, params)], timeout=timeout
        )
        return reply_of(frames)

    def call(self, name: str, /, *, timeout: float = REPLY_TIMEOUT, **params: Any) -> Any:
        reply = self.reply(name, timeout=timeout, **params)
        assert "result" in reply, reply
        return reply["result"]

    def error(self, name: str, /, **params: Any) -> Reply:
        reply = self.reply(name, **params)
        assert "error" in reply, reply
        error: Reply = reply["error"]
        return error

    def get(self, assistant_id: str) -> Reply:
        got: Reply = self.call("getAssistant", assistant_id=assistant_id)
        return got

    def listed(self) -> set[str]:
        """The assistants the daemon lists."""
        found: set[str] = set()
        params: dict[str, Any] = {"limit": 100}
        while True:
            page = self.call("listAssistants", **params)
            found |= {assistant["id"] for assistant in page["data"]}
            if not page["has_more"]:
                return found
            params["after"] = page["last_id"]

    def folders(self) -> set[str]:
        """The assistant folders in the root (its dot entries are the daemon's)."""
        return {name for name in os.listdir(self.root) if not name.startswith(".")}

    def staged(self) -> list[str]:
        """What is in the staging area now."""
        staging = self.root / ".staging"
        return sorted(os.listdir(staging)) if staging.exists() else []

    def wait_staging_empty(self) -> None:
        # Removed in a thread right after the event that announces the failure.
        wait_for(lambda: not self.staged(), ".staging empty", timeout=EVENT_TIMEOUT)

    def record(self, assistant_id: str) -> Path:
        """The registry file of an assistant registered for download."""
        return self.root / ".downloads" / f"{assistant_id}.json"

    def events(self) -> EventStream:
        return EventStream(
            self.context,
            f"ipc://{self.daemon.runtime_dir}/events.sock",
            timeout=EVENT_TIMEOUT,
        )


def write_acquire_config(path: Path) -> Path:
    """The tests' config: small ``[workers]`` timeouts and the :data:`ACQUIRE` table."""
    write_config(path)
    lines = ["[acquire]", *(f"{key} = {value!r}" for key, value in ACQUIRE.items())]
    with path.open("a") as file:
        file.write("\n".join(lines) + "\n")
    return path


def daemon_env(base: Path) -> dict[str, str]:
    """The daemon's environment: npm never goes to the network nor the user's cache."""
    return {
        "npm_config_offline": "true",
        "npm_config_cache": str(base / "npm-cache"),
        "npm_config_update_notifier": "false",
    }


@contextmanager
def acquire_daemon(base: Path, root: Path) -> Iterator[DaemonProcess]:
    config = base / "assistantd.toml"
    if not config.exists():
        write_acquire_config(config)
    with running_daemon(root, args=("--config", str(config)), env=daemon_env(base)) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def context() -> Iterator[Context]:
    context: Context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture(scope="module")
def server() -> Iterator[HttpServer]:
    with http_server() as running:
        yield running


@pytest.fixture(scope="module")
def acquiring(context: Context, server: HttpServer) -> Iterator[Acquiring]:
    with short_tmp() as base:
        root = base / "assistants"
        root.mkdir()
        with acquire_daemon(base, root) as daemon:
            yield Acquiring(daemon, context, server, base)


@pytest.fixture
def events(acquiring: Acquiring) -> Iterator[EventStream]:
    """A subscription to every event of the shared daemon, made before the test acts."""
    subscriber = acquiring.events()
    yield subscriber
    subscriber.close()


_numbers = itertools.count(1)


def unique(label: str) -> str:
    """A new id (and URL name) for one test's assistant."""
    return f"{label}-{next(_numbers)}"


def assert_quiet(acquiring: Acquiring, events: EventStream, about: str) -> None:
    """No event about ``about`` came: the next state event is one the test makes now."""
    marker = unique("marker")
    acquiring.call("createAssistant", id=marker)
    seen = events.until(
        lambda event: subject(event) == marker, what=f"the creation of {marker}", timeout=5
    )
    assert [event for event in seen if subject(event) == about] == []
    acquiring.call("deleteAssistant", assistant_id=marker)


# ============================================================================================
# Assistants as archives, and the files they become
# ============================================================================================


def definition(name: str, **more: Any) -> bytes:
    return json.dumps({"name": name, "model": "*", **more}).encode()


def assistant_files(name: str) -> Files:
    """An assistant with code, a nested folder and binary data, by relative path."""
    return {
        "assistant.json": definition(name, instructions="Be brief."),
        "src/process.js": b"exports.ping = () => 'pong';\n",
        "docs/notes/readme.md": b"# Notes\n",
        "data.bin": bytes(range(256)) * 8,
    }


_archives = itertools.count(1)


def packed(kind: str, files: Files, folder: Path, *, top: str | None = None) -> bytes:
    """``files`` as a ``zip`` or a ``tar.gz`` (inside the one folder ``top``, if given, as
    GitHub's archive links make them), written by the corpus's own builders; its bytes."""
    prefix = f"{top}/" if top else ""
    path = folder / f"packed-{next(_archives)}.{kind}"
    if kind == "zip":
        entries: list[tuple[str | zipfile.ZipInfo, bytes]] = [(prefix, b"")] if top else []
        entries += [(prefix + name, data) for name, data in files.items()]
        zip_of(path, entries)
    else:
        members = [(member(top, tarfile.DIRTYPE, mode=0o755), b"")] if top else []
        members += [(member(prefix + name), data) for name, data in files.items()]
        tgz_of(path, members)
    return path.read_bytes()


def with_folders(files: Files) -> dict[str, bytes | None]:
    """``files`` and the folders they imply (None)."""
    found: dict[str, bytes | None] = dict(files)
    for name in files:
        parts = name.split("/")
        for end in range(1, len(parts)):
            found["/".join(parts[:end])] = None
    return found


def files_in(folder: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under ``folder``; a link fails the test."""
    found: dict[str, bytes | None] = {}
    for path in folder.rglob("*"):
        assert not path.is_symlink(), path
        found[path.relative_to(folder).as_posix()] = None if path.is_dir() else path.read_bytes()
    return found


def archive_contents(path: Path) -> dict[str, tuple[str, int, bytes]]:
    """What an archive holds: each entry's type, permission bits and bytes, by name."""
    found: dict[str, tuple[str, int, bytes]] = {}
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zipped:
            for info in zipped.infolist():
                mode = (info.external_attr >> 16) & 0o7777
                if info.is_dir():
                    found[info.filename.rstrip("/")] = ("dir", mode, b"")
                else:
                    found[info.filename] = ("file", mode, zipped.read(info))
        return found
    with tarfile.open(path, "r:gz") as tar:
        for entry in tar.getmembers():
            extracted = tar.extractfile(entry) if entry.isreg() else None
            data = extracted.read() if extracted is not None else b""
            found[entry.name] = ("dir" if entry.isdir() else "file", entry.mode, data)
    return found


def free_port() -> int:
    """A port nobody listens on: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def redirect_chain(server: HttpServer, path: str, hops: int, target: str) -> str:
    """``hops`` redirects from ``path`` (the last to ``target``); the first URL."""
    urls = [server.url(f"{path}/hop-{hop}") for hop in range(hops)] + [target]
    first = server.url(path)
    for number, url in enumerate(urls[1:]):
        server.redirect(path if number == 0 else f"{path}/hop-{number}", url)
    return first


def wait_ready(acquiring: Acquiring, events: EventStream, assistant_id: str) -> list[Event]:
    """The assistant's events up to its move to ``ready``; its staging folder gone too (just
    after that event)."""
    seen = events.move(assistant_id, "downloading", "ready")
    acquiring.wait_staging_empty()
    return seen


def wait_failed(acquiring: Acquiring, events: EventStream, assistant_id: str, code: str) -> Event:
    """The move back to ``to_download`` with ``code``, checked with what it leaves: nothing in
    the root, an empty staging area, the record with its error."""
    moved = events.move(assistant_id, "downloading", "to_download")[-1]
    error = moved["error"]
    assert error is not None
    assert (error["code"], error["type"], error["status"]) == (code, "download_error", 502), error
    assert moved["assistant"]["download"]["error"] == error
    got = acquiring.get(assistant_id)
    assert got["state"] == "to_download"
    assert got["download"]["error"]["code"] == code
    assert assistant_id not in acquiring.folders()
    acquiring.wait_staging_empty()
    record = json.loads(acquiring.record(assistant_id).read_text())
    assert record["download"]["error"]["code"] == code
    return moved


# ============================================================================================
# 1. Good downloads
# ============================================================================================


@pytest.mark.parametrize(
    ("kind", "suffix"), [("zip", ".zip"), ("tar.gz", ".tar.gz"), ("tar.gz", ".tgz")]
)
def test_an_archive_is_downloaded_whole_with_its_events(
    acquiring: Acquiring, events: EventStream, tmp_path: Path, kind: str, suffix: str
) -> None:
    assistant_id = unique("math-tutor")
    files = assistant_files("Math tutor")
    body = packed(kind, files, tmp_path)
    url = acquiring.server.serve(f"/assistants/{assistant_id}{suffix}", body)

    answer = acquiring.call("downloadAssistant", url=url)

    assert answer["id"] == assistant_id
    assert answer["state"] == "downloading"
    assert answer["download"] == {"url": url, "sha256": None, "start": False, "error": None}
    seen = wait_ready(acquiring, events, assistant_id)
    assert steps(seen) == [
        ("assistant.created", None, "to_download"),
        ("assistant.state", "to_download", "downloading"),
        ("assistant.state", "downloading", "ready"),
    ]
    assert seen[0]["cause"] == "request"
    assert seen[-1]["error"] is None
    progress = progress_of(seen)
    assert progress, seen
    assert progress[-1]["bytes"] == progress[-1]["total"] == len(body)
    # The progress comes between the move to downloading and the move to ready.
    assert seen.index(progress[0]) > 1
    assert seen.index(progress[-1]) == len(seen) - 2
    ready = acquiring.get(assistant_id)
    assert ready["state"] == "ready"
    assert ready["download"] is None
    assert ready["name"] == "Math tutor"
    assert files_in(acquiring.root / assistant_id) == with_folders(files)
    assert not acquiring.record(assistant_id).exists()


def test_a_bare_assistant_json_is_downloaded(acquiring: Acquiring, events: EventStream) -> None:
    name = unique("translator")
    body = b'\n  {"name": "Translator", "model": "*"}\n'
    url = acquiring.server.serve(f"/a/{name}/assistant.json", body)

    answer = acquiring.call("downloadAssistant", url=url)

    assert answer["id"] == name
    wait_ready(acquiring, events, name)
    assert files_in(acquiring.root / name) == {"assistant.json": body}
    assert acquiring.get(name)["name"] == "Translator"


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_github_archive_is_unwrapped_and_named_after_its_repository(
    acquiring: Acquiring, events: EventStream, tmp_path: Path, kind: str
) -> None:
    repo = unique("jan-assistant")
    files = assistant_files("From GitHub")
    body = packed(kind, files, tmp_path, top=f"{repo}-main")
    extension = "zip" if kind == "zip" else "tar.gz"
    url = acquiring.server.serve(f"/janhq/{repo}/archive/refs/heads/main.{extension}", body)

    answer = acquiring.call("downloadAssistant", url=url)

    assert answer["id"] == repo
    wait_ready(acquiring, events, repo)
    assert files_in(acquiring.root / repo) == with_folders(files)


def test_progress_comes_at_most_about_ten_times_a_second(
    acquiring: Acquiring, events: EventStream, tmp_path: Path
) -> None:
    assistant_id = unique("slow")
    files = assistant_files("Slow") | {"noise.bin": os.urandom(60_000)}
    body = packed("zip", files, tmp_path)
    # About a second and a half: 150 writes 10 ms apart.
    url = acquiring.server.serve(
        f"/slow/{assistant_id}.zip", body, chunk=len(body) // 150 + 1, delay=0.01
    )

    acquiring.call("downloadAssistant", url=url)

    progress = progress_of(wait_ready(acquiring, events, assistant_id))
    sizes = [event["bytes"] for event in progress]
    assert sizes == sorted(sizes)
    assert sizes[-1] == len(body)
    assert {event["total"] for event in progress} == {len(body)}
    assert all(event["rate"] >= 0 for event in progress)
    assert len(progress) >= 3, progress  # the first bytes, some on the way, the end
    # One at the first bytes, then one per 0.1 s at most, and one at the end: counted against
    # the daemon's own times of the first and the last, with room to spare.
    elapsed = progress[-1]["time"] - progress[0]["time"]
    assert len(progress) <= elapsed * 10 * 1.5 + 3, (len(progress), elapsed)


def test_a_download_with_start_runs_its_worker(
    acquiring: Acquiring, events: EventStream, tmp_path: Path
) -> None:
    assistant_id = unique("starts")
    url = acquiring.server.serve(
        f"/start/{assistant_id}.zip", packed("zip", assistant_files("Starts"), tmp_path)
    )

    answer = acquiring.call("downloadAssistant", url=url, start=True)

    assert answer["download"]["start"] is True
    seen = events.move(assistant_id, "ready", "running")
    acquiring.wait_staging_empty()
    assert [step[1:] for step in steps(seen)][-2:] == [
        ("downloading", "ready"),
        ("ready", "running"),
    ]
    running = acquiring.get(assistant_id)
    assert running["state"] == "running"
    assert running["runtime"]["status"] == "up"
    invoked = acquiring.call("invokeAssistant", assistant_id=assistant_id, method="ping")
    assert invoked == {"result": "pong"}
    acquiring.call("stopAssistant", assistant_id=assistant_id)


def test_a_redirect_chain_within_the_limit_is_followed(
    acquiring: Acquiring, events: EventStream, tmp_path: Path
) -> None:
    assistant_id = unique("moved")
    target = acquiring.server.serve(
        f"/new-home/{assistant_id}-v2.zip", packed("zip", assistant_files("Moved"), tmp_path)
    )
    url = redirect_chain(acquiring.server, f"/old/{assistant_id}.zip", MAX_REDIRECTS, target)

    answer = acquiring.call("downloadAssistant", url=url)

    assert answer["id"] == assistant_id  # named by the URL asked for, not where it led
    wait_ready(acquiring, events, assistant_id)
    assert acquiring.server.times_asked(f"/new-home/{assistant_id}-v2.zip") == 1


def test_the_right_sha256_installs_and_a_wrong_one_installs_nothing(
    acquiring: Acquiring, events: EventStream, tmp_path: Path
) -> None:
    body = packed("tar.gz", assistant_files("Checked"), tmp_path)
    digest = hashlib.sha256(body).hexdigest()
    right, wrong = unique("checked"), unique("tampered")
    for assistant_id in (right, wrong):
        acquiring.server.serve(f"/sums/{assistant_id}.tgz", body)

    answer = acquiring.call(
        "downloadAssistant", url=acquiring.server.url(f"/sums/{right}.tgz"), sha256=digest.upper()
    )
    assert answer["download"]["sha256"] == digest
    wait_ready(acquiring, events, right)
    assert (acquiring.root / right / "assistant.json").exists()

    other = hashlib.sha256(body + b"!").hexdigest()
    acquiring.call(
        "downloadAssistant", url=acquiring.server.url(f"/sums/{wrong}.tgz"), sha256=other
    )
    moved = wait_failed(acquiring, events, wrong, "sha256_mismatch")
    assert other in moved["error"]["message"]
    assert acquiring.get(wrong)["download"]["sha256"] == other


# ============================================================================================
# 2. Failed downloads
# ============================================================================================


def not_found(server: HttpServer, path: str, body: bytes) -> str:
    return server.url(path)


def server_error(server: HttpServer, path: str, body: bytes) -> str:
    return server.fail(path, 500)


def stalls(server: HttpServer, path: str, body: bytes) -> str:
    return server.serve(path, body, stall_after=100)


def closes_early(server: HttpServer, path: str, body: bytes) -> str:
    return server.serve(path, body, close_after=100)


def plain_http_for_https(server: HttpServer, path: str, body: bytes) -> str:
    server.serve(path, body)
    return server.url(path, scheme="https")


def declares_too_much(server: HttpServer, path: str, body: bytes) -> str:
    return server.serve(path, body + os.urandom(MAX_BYTES + 1 - len(body)))


def sends_too_much_without_a_length(server: HttpServer, path: str, body: bytes) -> str:
    return server.serve(path, body + os.urandom(MAX_BYTES + 1 - len(body)), length=False)


def redirects_too_often(server: HttpServer, path: str, body: bytes) -> str:
    target = server.serve(f"{path}/target", body)
    return redirect_chain(server, path, MAX_REDIRECTS + 1, target)


def redirects_to_a_local_file(server: HttpServer, path: str, body: bytes) -> str:
    return server.redirect(path, "file:///etc/passwd")


def refuses_connections(server: HttpServer, path: str, body: bytes) -> str:
    return f"http://127.0.0.1:{free_port()}{path}"


def serves_text(server: HttpServer, path: str, body: bytes) -> str:
    return server.serve(path, b"Hello! This is a web page, not an assistant.\n")


def serves_an_archive_without_a_definition(server: HttpServer, path: str, body: bytes) -> str:
    with zipfile.ZipFile(buffer := io.BytesIO(), "w") as zipped:
        zipped.writestr("src/process.js", "exports.ping = () => 'pong';\n")
    return server.serve(path, buffer.getvalue())


def serves_an_archive_with_a_broken_definition(server: HttpServer, path: str, body: bytes) -> str:
    with zipfile.ZipFile(buffer := io.BytesIO(), "w") as zipped:
        zipped.writestr("assistant.json", '{"name": "cut short", ')
    return server.serve(path, buffer.getvalue())


def serves_an_invalid_bare_definition(server: HttpServer, path: str, body: bytes) -> str:
    return server.serve(path, b'{"name": 42, "tools": "none"}')


Serving = Callable[[HttpServer, str, bytes], str]


@pytest.mark.parametrize(
    ("serving", "code"),
    [
        (not_found, "http_status"),
        (server_error, "http_status"),
        (stalls, "stalled"),
        (closes_early, "closed_early"),
        (plain_http_for_https, "tls"),
        (declares_too_much, "too_large"),
        (sends_too_much_without_a_length, "too_large"),
        (redirects_too_often, "redirects"),
        (redirects_to_a_local_file, "unsupported_scheme"),
        (refuses_connections, "connect"),
        (serves_text, "not_an_archive"),
        (serves_an_archive_without_a_definition, "invalid_definition"),
        (serves_an_archive_with_a_broken_definition, "invalid_definition"),
        (serves_an_invalid_bare_definition, "invalid_definition"),
    ],
    ids=lambda value: value.__name__ if callable(value) else value,
)
def test_a_failed_download_goes_back_to_to_download_and_leaves_nothing(
    acquiring: Acquiring, events: EventStream, tmp_path: Path, serving: Serving, code: str
) -> None:
    assistant_id = unique(serving.__name__.replace("_", "-"))
    body = packed("zip", assistant_files("Never"), tmp_path)
    url = serving(acquiring.server, f"/fail/{assistant_id}.zip", body)
    folders = acquiring.folders()

    answer = acquiring.call("downloadAssistant", url=url)

    assert answer["state"] == "downloading"
    wait_failed(acquiring, events, assistant_id, code)
    assert acquiring.folders() == folders
    assert assistant_id in acquiring.listed()


# ============================================================================================
# 3. The hostile corpus, over HTTP
# ============================================================================================

NOT_SERVED = {
    # The corpus's depth limit is 8; the daemon's is 32 (not a setting): a zip nested 33 deep
    # below stands for these.
    "zip_too_deep",
    "tar_too_deep",
    # Named .tgz, a zip inside: the unit test asks for a tar.gz; the daemon goes by the first
    # bytes, so it is a good zip (without an assistant.json).
    "tar_gz_that_is_a_zip",
}


def zip_too_deep_for_the_daemon(folder: Path) -> Hostile:
    name = "d/" * 33 + "deep.txt"
    return Hostile(zip_of(folder / "a.zip", [(name, b"x")]), "zip", "too_deep", name)


CORPUS: list[Builder] = [
    *(build for build in HOSTILE if build.__name__ not in NOT_SERVED),
    zip_too_deep_for_the_daemon,
]


def paths_under(top: Path, *, besides: Path | None = None) -> set[str]:
    """Every path under ``top``, those under ``besides`` left out."""
    return {
        str(path)
        for path in top.rglob("*")
        if besides is None or (path != besides and besides not in path.parents)
    }


def test_the_corpus_served_is_large_enough() -> None:
    assert len(CORPUS) >= 20


@pytest.mark.parametrize("build", CORPUS, ids=lambda build: build.__name__)
def test_a_hostile_archive_is_refused_and_nothing_escapes(
    acquiring: Acquiring, events: EventStream, tmp_path: Path, build: Builder
) -> None:
    archives = tmp_path / "archives"
    archives.mkdir()
    case = build(archives)  # its absolute names point into tmp_path/work
    assistant_id = unique(build.__name__.replace("_", "-"))
    suffix = ".zip" if case.kind == "zip" else ".tgz"
    url = acquiring.server.serve(f"/hostile/{assistant_id}{suffix}", case.archive.read_bytes())
    around = paths_under(tmp_path)
    beside_root = paths_under(acquiring.base, besides=acquiring.root)
    folders = acquiring.folders()

    acquiring.call("downloadAssistant", url=url)

    moved = wait_failed(acquiring, events, assistant_id, case.code)
    if case.entry is not None:
        assert repr(case.entry)[:100] in moved["error"]["message"]
    assert acquiring.folders() == folders
    assert paths_under(tmp_path) == around
    assert paths_under(acquiring.base, besides=acquiring.root) == beside_root
    dot_entries = {name for name in os.listdir(acquiring.root) if name.startswith(".")}
    assert dot_entries <= {".staging", ".downloads", ".trash", ".lock", ".running.json"}
    assert acquiring.call("ping")["epoch"]  # still serving
    acquiring.call("deleteAssistant", assistant_id=assistant_id)


# ============================================================================================
# 4. Cancel, delete, download again
# ============================================================================================


def start_trickle(acquiring: Acquiring, events: EventStream, assistant_id: str) -> str:
    """A download of ``assistant_id`` under way, its first bytes arrived; its URL path."""
    path = f"/trickle/{assistant_id}.zip"
    url = acquiring.server.serve(path, bytes(1_000_000), **TRICKLE)
    acquiring.call("downloadAssistant", url=url)
    events.until(
        lambda event: event["topic"] == "download.progress" and event["bytes"] > 0,
        what=f"{assistant_id}: the first bytes",
        about=assistant_id,
    )
    assert acquiring.staged(), "the download is fetched into the staging area"
    return path


def test_a_cancelled_download_goes_back_to_to_download(
    acquiring: Acquiring, events: EventStream
) -> None:
    assistant_id = unique("cancelled")
    start_trickle(acquiring, events, assistant_id)

    answer = acquiring.call("cancelDownload", assistant_id=assistant_id)

    assert answer["state"] == "to_download"
    assert answer["download"]["error"]["code"] == "cancelled"
    moved = events.move(assistant_id, "downloading", "to_download")[-1]
    assert moved["cause"] == "request"
    assert moved["error"]["code"] == "cancelled"
    assert acquiring.staged() == []  # removed before the answer
    assert assistant_id not in acquiring.folders()

    again = acquiring.call("cancelDownload", assistant_id=assistant_id)
    assert again == acquiring.get(assistant_id)
    assert_quiet(acquiring, events, assistant_id)


def test_cancelling_an_assistant_on_disk_is_refused(acquiring: Acquiring) -> None:
    error = acquiring.error("cancelDownload", assistant_id="jan")
    assert (error["status"], error["code"]) == (409, "not_downloading")
    assert acquiring.get("jan")["state"] == "ready"
    error = acquiring.error("cancelDownload", assistant_id="nobody-here")
    assert (error["status"], error["code"]) == (404, "not_found")


def test_deleting_a_download_under_way_cancels_and_forgets_it(
    acquiring: Acquiring, events: EventStream
) -> None:
    assistant_id = unique("deleted-downloading")
    start_trickle(acquiring, events, assistant_id)
    assert acquiring.record(assistant_id).exists()

    answer = acquiring.call("deleteAssistant", assistant_id=assistant_id)

    assert answer["deleted"] is True
    seen = events.until(
        lambda event: event["topic"] == "assistant.deleted",
        what=f"{assistant_id} deleted",
        about=assistant_id,
    )
    assert seen[-1]["cause"] == "request"
    assert not acquiring.record(assistant_id).exists()
    assert acquiring.staged() == []
    assert acquiring.error("getAssistant", assistant_id=assistant_id)["status"] == 404
    assert assistant_id not in acquiring.folders()


def test_a_to_download_assistant_is_deleted_and_downloaded_again(
    acquiring: Acquiring, events: EventStream, tmp_path: Path
) -> None:
    gone, again = unique("deleted-to-download"), unique("again")
    for assistant_id in (gone, again):
        acquiring.call("downloadAssistant", url=acquiring.server.url(f"/later/{assistant_id}.zip"))
        wait_failed(acquiring, events, assistant_id, "http_status")

    acquiring.call("deleteAssistant", assistant_id=gone)
    events.until(lambda event: event["topic"] == "assistant.deleted", what="deleted", about=gone)
    assert not acquiring.record(gone).exists()
    assert gone not in acquiring.listed()

    files = assistant_files("Again")
    acquiring.server.serve(f"/later/{again}.zip", packed("zip", files, tmp_path))
    answer = acquiring.call("downloadAssistant", assistant_id=again)
    assert answer["state"] == "downloading"
    assert answer["download"]["error"] is None
    seen = wait_ready(acquiring, events, again)
    assert steps(seen)[0] == ("assistant.state", "to_download", "downloading")
    assert files_in(acquiring.root / again) == with_folders(files)
    assert not acquiring.record(again).exists()


def test_a_to_download_assistant_is_downloaded_again_from_a_new_url(
    acquiring: Acquiring, events: EventStream, tmp_path: Path
) -> None:
    assistant_id = unique("moved-away")
    acquiring.call("downloadAssistant", url=acquiring.server.url(f"/moved/{assistant_id}.zip"))
    wait_failed(acquiring, events, assistant_id, "http_status")
    url = acquiring.server.serve(
        "/elsewhere/pack.zip", packed("zip", assistant_files("Elsewhere"), tmp_path)
    )

    answer = acquiring.call("downloadAssistant", assistant_id=assistant_id, url=url)

    assert (answer["id"], answer["download"]["url"]) == (assistant_id, url)
    wait_ready(acquiring, events, assistant_id)
    assert acquiring.get(assistant_id)["name"] == "Elsewhere"


def test_a_download_under_way_cannot_be_started_twice(
    acquiring: Acquiring, events: EventStream
) -> None:
    assistant_id = unique("twice")
    start_trickle(acquiring, events, assistant_id)

    error = acquiring.error("downloadAssistant", assistant_id=assistant_id)
    assert (error["status"], error["code"]) == (409, "download_in_progress")
    error = acquiring.error("startAssistant", assistant_id=assistant_id)
    assert (error["status"], error["code"]) == (409, "illegal_transition")
    acquiring.call("deleteAssistant", assistant_id=assistant_id)


# ============================================================================================
# 5. A daemon stopped or killed during a download
# ============================================================================================


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_download_cut_by_the_daemon_stopping_is_to_download_after_a_restart(
    context: Context, server: HttpServer, tmp_path: Path, how: str
) -> None:
    cut, failed = unique(f"cut-by-{how.lower()}"), unique("failed-before")
    with short_tmp() as base:
        root = base / "assistants"
        root.mkdir()
        with acquire_daemon(base, root) as daemon:
            first = Acquiring(daemon, context, server, base)
            events = first.events()
            first.call("downloadAssistant", url=server.url(f"/gone/{failed}.zip"))
            wait_failed(first, events, failed, "http_status")
            path = start_trickle(first, events, cut)
            events.close()
            if how == "SIGTERM":
                assert daemon.stop() == 0
            else:
                daemon.process.send_signal(signal.SIGKILL)
                assert daemon.process.wait(10) == -signal.SIGKILL
                assert first.staged(), "a kill leaves the partial download where it was"

        with acquire_daemon(base, root) as daemon:
            second = Acquiring(daemon, context, server, base)
            assert second.staged() == []
            assert second.folders() == {"jan"}
            stopped = second.get(cut)
            assert stopped["state"] == "to_download"
            if how == "SIGTERM":
                assert stopped["download"]["error"]["code"] == "cancelled"
            survivor = second.get(failed)
            assert survivor["state"] == "to_download"
            assert survivor["download"]["error"]["code"] == "http_status"

            events = second.events()
            files = assistant_files("Resumed")
            server.serve(path, packed("zip", files, tmp_path))
            second.call("downloadAssistant", assistant_id=cut)
            wait_ready(second, events, cut)
            events.close()
            assert files_in(root / cut) == with_folders(files)


# ============================================================================================
# 6. Ids
# ============================================================================================


def test_assistant_id_names_the_download(
    acquiring: Acquiring, events: EventStream, tmp_path: Path
) -> None:
    chosen = unique("chosen")
    # An id in the downloaded assistant.json renames nothing either.
    files = assistant_files("Chosen") | {"assistant.json": definition("Chosen", id="not-this")}
    url = acquiring.server.serve("/named/other-name.zip", packed("zip", files, tmp_path))

    answer = acquiring.call("downloadAssistant", url=url, assistant_id=chosen)

    assert answer["id"] == chosen
    wait_ready(acquiring, events, chosen)
    assert (acquiring.root / chosen / "assistant.json").exists()
    assert not (acquiring.root / "other-name").exists()
    assert not (acquiring.root / "not-this").exists()


@pytest.mark.parametrize("by", ["url", "assistant_id"])
def test_a_taken_id_is_refused_before_anything_is_written(
    acquiring: Acquiring, events: EventStream, by: str
) -> None:
    taken = unique("taken")
    acquiring.call("createAssistant", id=taken)
    events.until(lambda event: subject(event) == taken, what="created", about=taken)
    path = f"/taken/{taken}.zip"
    params = {"url": acquiring.server.url(path)}
    if by == "assistant_id":
        params = {"url": acquiring.server.url("/taken/other.zip"), "assistant_id": taken}
    before = tree(acquiring.root / taken)

    error = acquiring.error("downloadAssistant", **params)

    assert (error["status"], error["code"], error["param"]) == (409, "id_taken", "assistant_id")
    assert not acquiring.record(taken).exists()
    assert tree(acquiring.root / taken) == before
    assert acquiring.get(taken)["state"] == "ready"
    assert (
        acquiring.server.times_asked(path) == acquiring.server.times_asked("/taken/other.zip") == 0
    )
    assert_quiet(acquiring, events, taken)


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://127.0.0.1/pack.zip", "unsupported_scheme"),
        ("file:///etc/passwd", "unsupported_scheme"),
        ("FILE:///etc/passwd", "unsupported_scheme"),
        ("gopher://127.0.0.1/pack.zip", "unsupported_scheme"),
        ("not a url", "invalid_url"),
        ("pack.zip", "invalid_url"),
        ("/srv/pack.zip", "invalid_url"),
        ("//127.0.0.1/pack.zip", "invalid_url"),
        ("http://", "invalid_url"),
        ("http:///pack.zip", "invalid_url"),
        ("http://[::1/pack.zip", "invalid_url"),
    ],
)
def test_a_url_that_cannot_be_downloaded_is_refused(
    acquiring: Acquiring, url: str, code: str
) -> None:
    listed = acquiring.listed()
    error = acquiring.error("downloadAssistant", url=url)
    assert (error["status"], error["code"], error["param"]) == (400, code, "url")
    assert acquiring.listed() == listed
    registry = acquiring.root / ".downloads"
    records = set(os.listdir(registry)) if registry.exists() else set()
    assert {record.removesuffix(".json") for record in records} <= listed


@pytest.mark.parametrize("sha256", ["abc", "g" * 64, "0" * 63, "0" * 65, ""])
def test_a_malformed_sha256_is_refused(acquiring: Acquiring, sha256: str) -> None:
    assistant_id = unique("bad-sum")
    url = acquiring.server.url(f"/sums/{assistant_id}.zip")
    error = acquiring.error("downloadAssistant", url=url, sha256=sha256)
    assert (error["status"], error["param"]) == (400, "sha256")
    assert acquiring.error("getAssistant", assistant_id=assistant_id)["status"] == 404
    assert not acquiring.record(assistant_id).exists()


# ============================================================================================
# 7. A download runs no code
# ============================================================================================


def test_a_download_runs_none_of_its_code_and_a_start_runs_only_its_worker(
    acquiring: Acquiring, events: EventStream, tmp_path: Path
) -> None:
    assistant_id = unique("runs-nothing")
    markers = acquiring.base / "markers" / assistant_id
    markers.mkdir(parents=True)
    loaded, installed, dependency = (markers / name for name in ("loaded", "installed", "dep"))
    package = {
        "name": "runs-nothing",
        "version": "1.0.0",
        "scripts": {"preinstall": f"touch {installed}", "postinstall": f"touch {installed}"},
        "dependencies": {"helper": "file:./vendor/helper"},
    }
    helper = {
        "name": "helper",
        "version": "1.0.0",
        "main": "index.js",
        "scripts": {"install": f"touch {dependency}", "postinstall": f"touch {dependency}"},
    }
    files = {
        "assistant.json": definition("Runs nothing"),
        "src/process.js": (
            f"require('fs').writeFileSync({json.dumps(str(loaded))}, String(process.pid));\n"
            "exports.ping = () => require('helper').hello;\n"
        ).encode(),
        "package.json": json.dumps(package).encode(),
        "vendor/helper/package.json": json.dumps(helper).encode(),
        "vendor/helper/index.js": b"exports.hello = 'from helper';\n",
    }
    url = acquiring.server.serve(f"/code/{assistant_id}.tgz", packed("tar.gz", files, tmp_path))

    acquiring.call("downloadAssistant", url=url)
    wait_ready(acquiring, events, assistant_id)

    assert sorted(os.listdir(markers)) == []
    assert acquiring.get(assistant_id)["runtime"] is None
    assert not (acquiring.root / assistant_id / "node_modules").exists()

    started = acquiring.call("startAssistant", assistant_id=assistant_id, timeout=INSTALL_TIMEOUT)
    assert started["state"] == "running"
    wait_for(loaded.exists, "the worker's marker")
    assert (acquiring.root / assistant_id / "node_modules" / "helper").exists()  # npm ran
    answer = acquiring.call("invokeAssistant", assistant_id=assistant_id, method="ping")
    assert answer == {"result": "from helper"}
    assert sorted(os.listdir(markers)) == ["loaded"]  # no install script ran
    acquiring.call("stopAssistant", assistant_id=assistant_id)


# ============================================================================================
# 8. Import
# ============================================================================================


def make_source(folder: Path, document: dict[str, Any] | None = None) -> Files:
    """An assistant folder to import, with a node_modules (links inside) that must not come
    along; the files that must."""
    files: Files = {
        "assistant.json": json.dumps(document or {"name": "Imported"}).encode(),
        "src/process.js": b"exports.ping = () => 'pong';\n",
        "assets/logo.bin": os.urandom(2000),
    }
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    modules = folder / "node_modules"
    (modules / "left-pad").mkdir(parents=True)
    (modules / "left-pad" / "index.js").write_text("module.exports = 1\n")
    (modules / ".bin").mkdir()
    (modules / ".bin" / "left-pad").symlink_to("../left-pad/index.js")
    return files


def import_sources(tmp_path: Path, shape: str, name: str) -> tuple[Path, Files]:
    """A source of ``shape`` whose names say ``name``: its path and the files it brings."""
    if shape == "folder":
        folder = tmp_path / name
        folder.mkdir()
        return folder, make_source(folder)
    if shape == "assistant.json":
        folder = tmp_path / name
        folder.mkdir()
        (folder / "assistant.json").write_text('{"name": "Bare"}')
        return folder / "assistant.json", {"assistant.json": b'{"name": "Bare"}'}
    files = assistant_files("Packed")
    if shape == "zip":
        path = tmp_path / f"{name}.zip"
        path.write_bytes(packed("zip", files, tmp_path))  # no top folder: named by the file
    else:
        path = tmp_path / "pack.tar.gz"
        path.write_bytes(packed("tar.gz", files, tmp_path, top=name))  # named by its folder
    return path, files


@pytest.mark.parametrize("shape", ["folder", "zip", "tar.gz", "assistant.json"])
def test_an_import_copies_the_assistant_in_and_changes_nothing_at_the_source(
    acquiring: Acquiring, events: EventStream, tmp_path: Path, shape: str
) -> None:
    name = unique(f"imported-{shape.replace('.', '-')}")
    source, files = import_sources(tmp_path, shape, name)
    before = tree(tmp_path)

    answer = acquiring.call("importAssistant", path=str(source))

    assert answer["id"] == name
    assert answer["state"] == "ready"
    created = events.until(
        lambda event: event["topic"] == "assistant.created", what="created", about=name
    )[-1]
    assert created["assistant"]["state"] == "ready"
    assert files_in(acquiring.root / name) == with_folders(files)
    assert tree(tmp_path) == before  # contents, modes and modification times
    assert acquiring.staged() == []


@pytest.mark.parametrize(
    ("given", "in_file", "named_by"),
    [
        (True, "valid", "assistant_id"),
        (False, "valid", "file"),
        (False, "not an id", "folder"),
        (False, None, "folder"),
    ],
)
def test_an_import_is_named_by_assistant_id_else_its_file_else_its_folder(
    acquiring: Acquiring, tmp_path: Path, given: bool, in_file: str | None, named_by: str
) -> None:
    names = {
        "assistant_id": unique("given-id"),
        "file": unique("file-id"),
        "folder": unique("folder-name"),
    }
    folder = tmp_path / names["folder"]
    folder.mkdir()
    document: dict[str, Any] = {"name": "Named"}
    if in_file is not None:
        document["id"] = names["file"] if in_file == "valid" else "../escape"
    make_source(folder, document)
    params: dict[str, Any] = {"path": str(folder)}
    if given:
        params["assistant_id"] = names["assistant_id"]

    answer = acquiring.call("importAssistant", **params)

    assert answer["id"] == names[named_by]
    assert acquiring.folders() & set(names.values()) == {names[named_by]}
    assert not (acquiring.root.parent / "escape").exists()


def test_an_import_of_a_folder_with_a_link_writes_nothing(
    acquiring: Acquiring, events: EventStream, tmp_path: Path
) -> None:
    name = unique("linked")
    folder = tmp_path / name
    folder.mkdir()
    make_source(folder)
    (folder / "src" / "secrets").symlink_to("/etc")
    folders = acquiring.folders()

    error = acquiring.error("importAssistant", path=str(folder))

    assert (error["status"], error["code"], error["param"]) == (400, "link", "path")
    assert "src/secrets" in error["message"]
    assert str(tmp_path) not in error["message"]  # the entry, not the client's local path
    assert acquiring.folders() == folders
    assert acquiring.staged() == []
    assert_quiet(acquiring, events, name)


@pytest.mark.parametrize(
    "build", [zip_parent_path, tar_symlink, tar_fifo, zip_bomb], ids=lambda build: build.__name__
)
def test_an_import_of_a_hostile_archive_is_refused(
    acquiring: Acquiring, tmp_path: Path, build: Builder
) -> None:
    case = build(tmp_path)
    folders = acquiring.folders()
    around = paths_under(tmp_path)

    error = acquiring.error("importAssistant", path=str(case.archive))

    assert (error["status"], error["code"], error["param"]) == (400, case.code, "path")
    assert repr(case.entry)[:100] in error["message"]
    assert acquiring.folders() == folders
    assert acquiring.staged() == []
    assert paths_under(tmp_path) == around


def test_an_import_is_refused_for_a_bad_path_or_a_taken_id(
    acquiring: Acquiring, tmp_path: Path
) -> None:
    error = acquiring.error("importAssistant", path="assistants/translator")
    assert (error["status"], error["code"], error["param"]) == (400, "invalid_path", "path")
    error = acquiring.error("importAssistant", path=str(tmp_path / "nothing-here"))
    assert (error["status"], error["code"], error["param"]) == (404, "path_not_found", "path")

    taken = tmp_path / "jan"
    taken.mkdir()
    make_source(taken)
    before = (acquiring.root / "jan" / "assistant.json").read_bytes()
    error = acquiring.error("importAssistant", path=str(taken))
    assert (error["status"], error["code"]) == (409, "id_taken")
    assert (acquiring.root / "jan" / "assistant.json").read_bytes() == before
    assert acquiring.staged() == []


# ============================================================================================
# 9. Export
# ============================================================================================


@pytest.mark.parametrize(
    ("kind", "suffix"), [("zip", ".zip"), ("tar.gz", ".tar.gz"), ("tar.gz", ".tgz")]
)
def test_an_export_imported_again_exports_the_same_files(
    acquiring: Acquiring, tmp_path: Path, kind: str, suffix: str
) -> None:
    source = tmp_path / unique("exported")
    source.mkdir()
    files = make_source(source)
    original = acquiring.call("importAssistant", path=str(source))["id"]
    # node_modules as npm leaves it after a start: never exported.
    (acquiring.root / original / "node_modules" / "dep").mkdir(parents=True)
    (acquiring.root / original / "node_modules" / "dep" / "index.js").write_text("x")
    first = tmp_path / f"first{suffix}"

    result = acquiring.call("exportAssistant", assistant_id=original, path=str(first))

    assert result == {
        "object": "assistant.export",
        "assistant_id": original,
        "path": str(first),
        "format": kind,
        "files": len(files),
        "bytes": sum(map(len, files.values())),
    }
    contents = archive_contents(first)
    assert {name: data for name, (what, _, data) in contents.items() if what == "file"} == files
    assert not any(name.startswith("node_modules") for name in contents)

    copy = acquiring.call("importAssistant", path=str(first), assistant_id=unique("copy"))["id"]
    second = tmp_path / f"second{suffix}"
    acquiring.call("exportAssistant", assistant_id=copy, path=str(second))
    assert archive_contents(second) == contents
    # The same folder exported twice gives the same bytes.
    third = tmp_path / f"third{suffix}"
    acquiring.call("exportAssistant", assistant_id=copy, path=str(third))
    assert third.read_bytes() == second.read_bytes()


def test_an_export_is_refused_for_a_bad_path_or_an_assistant_not_on_disk(
    acquiring: Acquiring, events: EventStream, tmp_path: Path
) -> None:
    existing = tmp_path / "precious.zip"
    existing.write_bytes(b"precious")
    error = acquiring.error("exportAssistant", assistant_id="jan", path=str(existing))
    assert (error["status"], error["code"], error["param"]) == (409, "path_exists", "path")
    assert existing.read_bytes() == b"precious"

    for path in ("jan.zip", str(tmp_path / "jan.rar"), str(tmp_path / "jan")):
        error = acquiring.error("exportAssistant", assistant_id="jan", path=path)
        assert (error["status"], error["code"], error["param"]) == (400, "invalid_path", "path")

    pending = unique("pending")
    acquiring.call("downloadAssistant", url=acquiring.server.url(f"/pending/{pending}.zip"))
    wait_failed(acquiring, events, pending, "http_status")
    error = acquiring.error("exportAssistant", assistant_id=pending, path=str(tmp_path / "p.zip"))
    assert (error["status"], error["code"]) == (409, "not_downloaded")
    assert sorted(os.listdir(tmp_path)) == ["precious.zip"]


def test_a_folder_put_in_by_hand_under_a_downloads_id_wins(
    acquiring: Acquiring, events: EventStream, tmp_path: Path
) -> None:
    assistant_id = unique("handmade")
    # A whole archive, sent slowly (a filler file makes it last): the folder comes first.
    files = assistant_files("From the download") | {"filler.bin": bytes(2_000)}
    url = acquiring.server.serve(
        f"/slow/{assistant_id}.zip", packed("zip", files, tmp_path), **TRICKLE
    )
    acquiring.call("downloadAssistant", url=url)
    events.until(
        lambda event: event["topic"] == "download.progress" and event["bytes"] > 0,
        what=f"{assistant_id}: the first bytes",
        about=assistant_id,
    )
    by_hand = tmp_path / "by-hand"
    by_hand.mkdir()
    (by_hand / "assistant.json").write_bytes(definition("Made by hand"))
    by_hand.rename(acquiring.root / assistant_id)

    events.until(
        lambda event: event["topic"] == "assistant.deleted",
        what=f"{assistant_id}: its registration dropped",
        about=assistant_id,
    )
    created = events.until(
        lambda event: event["topic"] == "assistant.created",
        what=f"{assistant_id}: the folder listed",
        about=assistant_id,
    )[-1]
    assert created["assistant"]["name"] == "Made by hand"
    assert created["assistant"]["state"] == "ready"
    assert acquiring.get(assistant_id)["name"] == "Made by hand"
    assert not acquiring.record(assistant_id).exists()
    assert sorted(os.listdir(acquiring.root / assistant_id)) == ["assistant.json"]
    acquiring.wait_staging_empty()
