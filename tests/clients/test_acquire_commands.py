"""Downloads, imports and exports from the clients' side: ``Client``, ``AsyncClient`` and
``assistantctl`` against a real daemon that fetches from a real HTTP server on 127.0.0.1.

The server (:class:`AssistantServer`, ``http.server`` in a thread) serves archives built here
with zipfile and tarfile, a bare ``assistant.json``, a 404 for any other path, and *gated*
bodies: the first part at once, the rest only when the test opens the gate. A gated download
stays ``downloading`` for as long as a test needs (to see its progress, to cancel it, to
interrupt ``assistantctl download``), with no sleep anywhere.

One daemon serves the module; each test downloads under names of its own, so the tests do not
depend on their order.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import json
import queue
import re
import shutil
import signal
import subprocess
import tarfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from assistantd.client import (
    AssistantStateChanged,
    AsyncClient,
    AsyncWatch,
    Client,
    ConflictError,
    DownloadProgress,
    ExportResult,
    InvalidRequestError,
    NotFoundError,
    Synced,
    Watch,
    topic_of,
    waits,
)
from assistantd.client.clone import CloneSync
from assistantd.protocol.events import Snapshot
from tests.clients.test_ctl import CTL, ctl, watching
from tests.clients.test_worker_commands import (
    WAIT,
    anext_matching,
    fields_of,
    next_matching,
)
from tests.e2e.workers import write_assistant, write_config
from tests.utils import DaemonProcess, running_daemon, short_dir

DEFINITION = {"name": "Tutor", "model": "*", "instructions": "Explain fractions."}
PROCESS_JS = "exports.hello = (name) => `hello ${name}`;\n"
"""Module-style code: invoking ``hello`` proves that the code came with the download."""


def assistant_files() -> dict[str, bytes]:
    """The files of the assistant that the server hands out, by their path in its folder."""
    return {
        "assistant.json": json.dumps(DEFINITION).encode(),
        "src/process.js": PROCESS_JS.encode(),
    }


def zip_archive(files: dict[str, bytes], folder: str = "") -> bytes:
    """A .zip of ``files``, at its top or inside ``folder``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(folder + name, data)
    return buffer.getvalue()


def tar_gz_archive(files: dict[str, bytes], folder: str = "") -> bytes:
    """A .tar.gz of ``files``, at its top or inside ``folder`` (as GitHub's archive links)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            entry = tarfile.TarInfo(folder + name)
            entry.size = len(data)
            entry.mode = 0o644
            archive.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


ZIP = zip_archive(assistant_files())
TAR_GZ = tar_gz_archive(assistant_files(), folder="tutor-main/")
BARE = json.dumps(DEFINITION).encode()


# --- the HTTP server ----------------------------------------------------------------------------


class AssistantServer:
    """An HTTP server on 127.0.0.1 in a thread: the bodies given to :meth:`serve`, the gated
    ones of :meth:`gated`, and a 404 for every other path."""

    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}
        self.gates: dict[str, tuple[bytes, int, threading.Event]] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path in server.gates:
                    server._send_gated(self, *server.gates[self.path])
                elif self.path in server.bodies:
                    self._head(len(server.bodies[self.path]))
                    self.wfile.write(server.bodies[self.path])
                else:
                    self.send_error(404)

            def _head(self, length: int) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(length))
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass  # the test's output stays the test's

        self._handler = Handler
        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def serve(self, path: str, body: bytes) -> str:
        """Serve ``body`` at ``path``; its URL."""
        self.bodies[path] = body
        return self.base + path

    def gated(self, path: str, body: bytes, first: int) -> tuple[str, threading.Event]:
        """Serve ``body`` at ``path``, announcing its whole size but sending only ``first``
        bytes until the returned gate is set; the URL and the gate."""
        gate = threading.Event()
        self.gates[path] = (body, first, gate)
        return self.base + path, gate

    @staticmethod
    def _send_gated(
        handler: http.server.BaseHTTPRequestHandler, body: bytes, first: int, gate: threading.Event
    ) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[:first])
        handler.wfile.flush()
        # Bounded, so that a test that forgot its gate cannot hold the server up forever.
        gate.wait(timeout=60)
        with contextlib.suppress(OSError):  # a cancelled download has hung up
            handler.wfile.write(body[first:])

    def close(self) -> None:
        for _, _, gate in self.gates.values():
            gate.set()
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(5)


@pytest.fixture(scope="module")
def server() -> Iterator[AssistantServer]:
    http_server = AssistantServer()
    try:
        yield http_server
    finally:
        http_server.close()


@pytest.fixture(scope="module")
def served() -> Iterator[DaemonProcess]:
    """A daemon with short worker timeouts and two assistants: ``exportable`` (with code) and
    ``plain``."""
    folder = short_dir()
    root = folder / "assistants"
    root.mkdir()
    write_assistant(root, "exportable", PROCESS_JS)
    write_assistant(root, "plain")
    config = write_config(folder / "assistantd.toml")
    # A proxy in the environment must not come between the daemon and the local server.
    no_proxy = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    try:
        with running_daemon(root, args=("--config", str(config)), env=no_proxy) as daemon:
            yield daemon
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def client(served: DaemonProcess) -> Iterator[Client]:
    with Client(runtime_dir=served.runtime_dir) as client:
        yield client


def state_change(watch: Watch, assistant_id: str, state: str) -> AssistantStateChanged:
    """The next ``assistant.state`` event of ``assistant_id`` to ``state``, within WAIT."""
    event = next_matching(
        watch,
        lambda e: (
            isinstance(e, AssistantStateChanged)
            and e.assistant.id == assistant_id
            and e.assistant.state == state
        ),
        f"assistant.state of {assistant_id} to {state}",
    )
    assert isinstance(event, AssistantStateChanged)
    return event


def ends_of(watch: Watch, assistant_ids: set[str]) -> dict[str, AssistantStateChanged]:
    """The ``assistant.state`` event that ends the download of each of ``assistant_ids`` (to
    ``ready`` or back to ``to_download``), in whatever order they come, within WAIT."""
    ended: dict[str, AssistantStateChanged] = {}
    while len(ended) < len(assistant_ids):
        event = next_matching(
            watch,
            lambda e: (
                isinstance(e, AssistantStateChanged)
                and e.assistant.id in assistant_ids
                and e.previous == "downloading"
            ),
            f"the end of the downloads of {sorted(assistant_ids - ended.keys())}",
        )
        assert isinstance(event, AssistantStateChanged)
        ended[event.assistant.id] = event
    return ended


async def astate_change(watch: AsyncWatch, assistant_id: str, state: str) -> None:
    """:func:`state_change` for the asyncio watch."""
    await anext_matching(
        watch,
        lambda e: (
            isinstance(e, AssistantStateChanged)
            and e.assistant.id == assistant_id
            and e.assistant.state == state
        ),
        f"assistant.state of {assistant_id} to {state}",
    )


def progress_of(watch: Watch, assistant_id: str) -> DownloadProgress:
    """The next ``download.progress`` event of ``assistant_id``, within WAIT."""
    event = next_matching(
        watch,
        lambda e: isinstance(e, DownloadProgress) and e.assistant_id == assistant_id,
        f"download.progress of {assistant_id}",
    )
    assert isinstance(event, DownloadProgress)
    return event


def folder_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by its relative path, with its bytes."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# --- the Python clients: downloads --------------------------------------------------------------


def test_download_a_zip_and_follow_it_in_a_watch(
    client: Client, server: AssistantServer, served: DaemonProcess
) -> None:
    url = server.serve("/zipped.zip", ZIP)
    with client.watch() as watch:
        assert isinstance(watch.next(timeout=WAIT), Synced)
        answered = client.download_assistant(url)
        assert (answered.id, answered.state) == ("zipped", "downloading")
        assert answered.download is not None
        assert (answered.download.url, answered.download.start) == (url, False)
        assert answered.download.error is None

        ready = state_change(watch, "zipped", "ready")
        assert (ready.previous, ready.error) == ("downloading", None)
    assistant = client.get_assistant("zipped")
    assert (assistant.state, assistant.name, assistant.download) == ("ready", "Tutor", None)
    assert assistant.instructions == DEFINITION["instructions"]
    assert folder_files(served.root / "zipped") == assistant_files()


async def test_download_a_tar_gz_and_start_it_with_the_async_client(
    served: DaemonProcess, server: AssistantServer
) -> None:
    url = server.serve("/started.tar.gz", TAR_GZ)
    async with (
        AsyncClient(runtime_dir=served.runtime_dir) as client,
        client.watch("assistant.state") as watch,
    ):
        assert isinstance(await watch.next(timeout=WAIT), Synced)
        answered = await client.download_assistant(url, start=True)
        assert answered.id == "started"  # the name the URL gives, not the archive's folder
        assert answered.download is not None
        assert answered.download.start
        await astate_change(watch, "started", "ready")
        await astate_change(watch, "started", "running")
        try:
            # The archive's one top-level folder was unwrapped, its code came along.
            assert await client.invoke_assistant("started", "hello", "you") == "hello you"
        finally:
            await client.stop_assistant("started")


def test_download_a_bare_assistant_json_checked_by_its_sha256(
    client: Client, server: AssistantServer
) -> None:
    good = server.serve("/bare-good/assistant.json", BARE)
    bad = server.serve("/bare-bad/assistant.json", BARE)
    digest = hashlib.sha256(BARE).hexdigest()
    with client.watch() as watch:
        assert client.download_assistant(good, sha256=digest.upper()).id == "bare-good"
        assert client.download_assistant(bad, sha256="0" * 64).id == "bare-bad"
        # Both run at once: either may end first.
        ended = ends_of(watch, {"bare-good", "bare-bad"})
        assert ended["bare-good"].assistant.state == "ready"
        failed = ended["bare-bad"]
        assert failed.assistant.state == "to_download"
        assert failed.error is not None
        assert failed.error["code"] == "sha256_mismatch"
    assert client.get_assistant("bare-good").name == "Tutor"
    kept = client.get_assistant("bare-bad").download
    assert kept is not None
    assert kept.sha256 == "0" * 64  # kept for a retry


def test_a_404_goes_back_to_to_download_and_a_new_url_gets_it(
    client: Client, server: AssistantServer
) -> None:
    missing = f"{server.base}/missing.zip"
    with client.watch() as watch:
        client.download_assistant(missing)
        failed = state_change(watch, "missing", "to_download")
        assert failed.error is not None
        assert (failed.error["code"], failed.error["status"]) == ("http_status", 502)
        listed = client.get_assistant("missing")
        assert listed.download is not None
        assert listed.download.error is not None
        assert listed.download.error["code"] == "http_status"

        # The same id from a URL that works.
        again = client.download_assistant(server.serve("/found.zip", ZIP), assistant_id="missing")
        assert again.state == "downloading"
        state_change(watch, "missing", "ready")
    assert client.get_assistant("missing").name == "Tutor"


def test_progress_events_then_a_cancel(client: Client, server: AssistantServer) -> None:
    url, gate = server.gated("/cancelled.zip", ZIP, first=len(ZIP) // 2)
    try:
        with client.watch() as watch:
            client.download_assistant(url)
            progress = progress_of(watch, "cancelled")
            assert 0 < progress.bytes <= len(ZIP) // 2
            assert progress.total == len(ZIP)
            assert progress.rate >= 0
            assert client.get_assistant("cancelled").state == "downloading"

            cancelled = client.cancel_download("cancelled")
            assert cancelled.state == "to_download"
            assert cancelled.download is not None
            assert cancelled.download.error is not None
            assert cancelled.download.error["code"] == "cancelled"
            event = state_change(watch, "cancelled", "to_download")
            assert event.error is not None
            assert event.error["code"] == "cancelled"
            assert watch.in_sync  # the progress events, which carry no seq, made no gap
        # Cancelling what is not under way answers it as it is.
        assert client.cancel_download("cancelled").state == "to_download"
    finally:
        gate.set()


def test_progress_events_up_to_the_whole_body(client: Client, server: AssistantServer) -> None:
    url, gate = server.gated("/gated.zip", ZIP, first=100)
    try:
        with client.watch() as watch:
            client.download_assistant(url)
            first = progress_of(watch, "gated")
            assert first.bytes <= 100
            gate.set()
            last = first
            while last.bytes < len(ZIP):
                last = progress_of(watch, "gated")
            assert (last.bytes, last.total) == (len(ZIP), len(ZIP))
            state_change(watch, "gated", "ready")
    finally:
        gate.set()


def test_a_watch_of_download_events_only_mirrors_the_states(
    client: Client, server: AssistantServer
) -> None:
    url = server.serve("/quiet.zip", ZIP)
    with client.watch("download.") as watch:
        assert isinstance(watch.next(timeout=WAIT), Synced)
        client.download_assistant(url)
        # assistant.created and assistant.state came first, but are mirrored, not yielded.
        event = watch.next(timeout=WAIT)
        assert isinstance(event, DownloadProgress)
        assert event.assistant_id == "quiet"
        assert watch.mirror.assistants["quiet"].state in ("downloading", "ready")


def test_download_progress_is_yielded_from_the_first_snapshot_on_and_never_mirrored() -> None:
    clone = CloneSync("download.", start_timeout=None, now=0.0)
    assert clone.subscriptions == ("assistant.", "daemon.", "download.")
    welcome = b'{"topic": "daemon.welcome", "epoch": "e1", "time": 0, "seq": 3, "subscription": ""}'
    progress = json.dumps(
        {
            "topic": "download.progress",
            "epoch": "e1",
            "time": 0,
            "assistant_id": "tutor",
            "bytes": 10,
            "total": None,
            "rate": 5.0,
        }
    ).encode()
    for prefix in clone.subscriptions:
        assert clone.receive([prefix.encode(), welcome], 0.0) == []
    assert clone.receive([b"download.progress", progress], 0.0) == []  # before the snapshot
    clone.snapshot_taken(Snapshot(epoch="e1", seq=3, assistants=[], invalid=[]), 0.0)
    [event] = clone.receive([b"download.progress", progress], 0.0)
    assert isinstance(event, DownloadProgress)
    assert (event.bytes, event.total, event.rate) == (10, None, 5.0)
    assert (clone.mirror.seq, clone.in_sync, clone.mirror.assistants) == (3, True, {})
    assert topic_of(event) == "download.progress"


# --- the Python clients: import and export ------------------------------------------------------


def test_import_a_folder_and_an_archive_by_relative_paths(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the daemon's working directory is another
    folder = tmp_path / "translator"
    (folder / "src").mkdir(parents=True)
    for name, data in assistant_files().items():
        (folder / name).write_bytes(data)
    (tmp_path / "packed.zip").write_bytes(ZIP)

    imported = client.import_assistant("translator")
    assert (imported.id, imported.state, imported.name) == ("translator", "ready", "Tutor")
    from_archive = client.import_assistant(Path("packed.zip"), assistant_id="unpacked")
    assert (from_archive.id, from_archive.state) == ("unpacked", "ready")
    assert folder_files(folder) == assistant_files()  # the source is left as it was


@pytest.mark.parametrize(("suffix", "kind"), [(".zip", "zip"), (".tar.gz", "tar.gz")])
async def test_export_then_import_gives_the_same_assistant(
    served: DaemonProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    suffix: str,
    kind: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    async with AsyncClient(runtime_dir=served.runtime_dir) as client:
        exported = await client.export_assistant("exportable", f"exportable{suffix}")
        assert exported == ExportResult(
            assistant_id="exportable",
            path=str(tmp_path / f"exportable{suffix}"),
            format=kind,  # type: ignore[arg-type]
            files=2,
            bytes=exported.bytes,
        )
        assert exported.bytes > 0
        copy_id = f"exportable-copy-{kind}"
        copy = await client.import_assistant(exported.path, assistant_id=copy_id)
        original = await client.get_assistant("exportable")
    assert (copy.name, copy.model, copy.state) == (original.name, original.model, "ready")
    assert folder_files(served.root / copy_id) == folder_files(served.root / "exportable")


# --- the Python clients: errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "code"),
    [
        (lambda c, url: c.download_assistant(url, assistant_id="plain"), ConflictError, "id_taken"),
        (lambda c, url: c.download_assistant("ftp://x/a.zip"), InvalidRequestError, None),
        (lambda c, url: c.download_assistant(), InvalidRequestError, "missing_required_parameter"),
        (lambda c, url: c.cancel_download("nobody"), NotFoundError, "not_found"),
        (lambda c, url: c.cancel_download("plain"), ConflictError, "not_downloading"),
        (lambda c, url: c.export_assistant("nobody", "/no/such/x.zip"), NotFoundError, "not_found"),
        (lambda c, url: c.import_assistant("/no/such/thing"), NotFoundError, "path_not_found"),
    ],
    ids=[
        "download-taken",
        "download-bad-scheme",
        "download-no-url",
        "cancel-unknown",
        "cancel-ready",
        "export-unknown",
        "import-nothing",
    ],
)
def test_errors_of_the_acquire_commands(
    client: Client,
    server: AssistantServer,
    call: Callable[[Client, str], object],
    error: type[Exception],
    code: str | None,
) -> None:
    url = server.serve("/taken.zip", ZIP)
    with pytest.raises(error) as caught:
        call(client, url)
    if code is not None:
        assert getattr(caught.value, "code", None) == code


def test_an_import_or_export_that_clashes_is_a_409(client: Client, tmp_path: Path) -> None:
    taken = tmp_path / "plain"
    taken.mkdir()
    (taken / "assistant.json").write_text(json.dumps(DEFINITION))
    with pytest.raises(ConflictError) as caught:
        client.import_assistant(taken)
    assert caught.value.code == "id_taken"
    there = tmp_path / "there.zip"
    there.write_bytes(b"mine")
    with pytest.raises(ConflictError) as caught:
        client.export_assistant("plain", there)
    assert caught.value.code == "path_exists"
    assert there.read_bytes() == b"mine"  # an export replaces nothing


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("importAssistant", {"path": "relative/folder"}),
        ("exportAssistant", {"assistant_id": "plain", "path": "relative.zip"}),
    ],
)
def test_a_relative_path_on_the_wire_is_a_400(
    client: Client, method: str, params: dict[str, str]
) -> None:
    # The typed methods make paths absolute; a raw request shows what the daemon says.
    with pytest.raises(InvalidRequestError) as caught:
        client.request(method, params)
    assert (caught.value.status, caught.value.code, caught.value.param) == (
        400,
        "invalid_path",
        "path",
    )


def test_the_clients_wait_long_enough_for_a_cancel_an_import_and_an_export() -> None:
    assert waits.reply_timeout("downloadAssistant", {"url": "https://x/a.zip"}, 10) == 10
    cancel = waits.reply_timeout("cancelDownload", {"assistant_id": "a"}, 10)
    assert cancel == 10 + waits.CANCEL_WORK_TIME
    for method in ("importAssistant", "exportAssistant"):
        assert waits.reply_timeout(method, {"path": "/a"}, 10) == 10 + waits.TRANSFER_WORK_TIME


# --- assistantctl -------------------------------------------------------------------------------


def ctl_in(daemon: DaemonProcess, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """assistantctl run in ``cwd`` (for relative paths)."""
    return subprocess.run(
        [*CTL, *args, "--runtime-dir", str(daemon.runtime_dir)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_ctl_download_prints_plain_progress_lines_and_exits_0(
    served: DaemonProcess, server: AssistantServer
) -> None:
    url = server.serve("/ctl-zip.zip", ZIP)
    done = ctl(served, "download", url)
    assert done.returncode == 0, done.stderr
    first, *middle, last = done.stdout.splitlines()
    assert first == f"ctl-zip: downloading {url}"
    size = len(ZIP)
    assert middle, "no progress line"
    for line in middle:
        assert re.fullmatch(rf"ctl-zip: \d+ bytes of {size} bytes \(\d+%\).*", line), line
    assert last == f"ctl-zip: downloaded {size} bytes, ready"
    assert "\x1b" not in done.stdout  # no bar, no colour: stdout is not a terminal
    assert fields_of(ctl(served, "get", "ctl-zip").stdout)["state"] == "ready"


def test_ctl_download_of_a_404_exits_1_and_get_and_list_show_why(
    served: DaemonProcess, server: AssistantServer
) -> None:
    url = f"{server.base}/ctl-missing.tar.gz"
    done = ctl(served, "download", url)
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1] == (
        "ctl-missing: the download failed, back to to_download "
        "(`assistantctl download --id ctl-missing` tries again)"
    )
    assert done.stderr.splitlines()[0].endswith("(502, http_status)")

    shown = fields_of(ctl(served, "get", "ctl-missing").stdout)
    assert (shown["state"], shown["download"]) == ("to_download", url)
    assert shown["download_error"].endswith("(http_status)")
    listed = ctl(served, "list", "--all").stdout.splitlines()
    assert listed[0].split()[-1] == "DOWNLOAD"
    [row] = [line for line in listed if line.startswith("ctl-missing ")]
    assert row.endswith(f"{url} (http_status)")


def test_ctl_download_with_start_prints_ready_then_running(
    served: DaemonProcess, server: AssistantServer
) -> None:
    url = server.serve("/ctl-started.tar.gz", TAR_GZ)
    done = ctl(served, "download", url, "--start")
    try:
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[-2] == f"ctl-started: downloaded {len(TAR_GZ)} bytes, ready"
        assert re.fullmatch(r"ctl-started: started, running \(pid \d+\)", lines[-1])
        invoked = ctl(served, "invoke", "ctl-started", "hello", "ctl")
        assert json.loads(invoked.stdout) == "hello ctl"
    finally:
        ctl(served, "stop", "ctl-started")


def test_ctl_download_in_json_prints_the_assistant_and_the_events(
    served: DaemonProcess, server: AssistantServer
) -> None:
    url = server.serve("/ctl-json.zip", ZIP)
    done = ctl(served, "download", url, "--id", "ctl-json-id", "--json")
    assert done.returncode == 0, done.stderr
    first, *events, last = [json.loads(line) for line in done.stdout.splitlines()]
    assert (first["id"], first["state"], first["download"]["url"]) == (
        "ctl-json-id",
        "downloading",
        url,
    )
    assert events
    assert {event["topic"] for event in events} == {"download.progress"}
    assert events[-1]["bytes"] == events[-1]["total"] == len(ZIP)
    assert (last["object"], last["state"], last["download"]) == ("assistant", "ready", None)


def test_ctl_download_no_wait_then_cancel(served: DaemonProcess, server: AssistantServer) -> None:
    url, gate = server.gated("/ctl-later.zip", ZIP, first=50)
    try:
        done = ctl(served, "download", url, "--no-wait")
        assert done.returncode == 0, done.stderr
        shown = fields_of(done.stdout)
        assert (shown["id"], shown["state"], shown["download"]) == (
            "ctl-later",
            "downloading",
            url,
        )
        cancelled = ctl(served, "cancel", "ctl-later")
        assert cancelled.returncode == 0, cancelled.stderr
        shown = fields_of(cancelled.stdout)
        assert shown["state"] == "to_download"
        assert shown["download_error"].endswith("(cancelled)")
    finally:
        gate.set()


def test_ctl_download_interrupted_exits_130_and_leaves_the_download_running(
    served: DaemonProcess, server: AssistantServer, client: Client
) -> None:
    url, gate = server.gated("/ctl-interrupted.zip", ZIP, first=50)
    process = subprocess.Popen(
        [*CTL, "download", url, "--runtime-dir", str(served.runtime_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert lines.get(timeout=WAIT) == f"ctl-interrupted: downloading {url}"
        # A progress line: the command is following the event stream.
        assert (lines.get(timeout=WAIT) or "").startswith("ctl-interrupted: ")
        process.send_signal(signal.SIGINT)
        assert process.wait(WAIT) == 130
        assert process.stderr is not None
        stderr = process.stderr.read()
        assert "goes on in the daemon" in stderr
        assert "`assistantctl cancel ctl-interrupted`" in stderr
        assert "Traceback" not in stderr
        assert client.get_assistant("ctl-interrupted").state == "downloading"
        assert client.cancel_download("ctl-interrupted").state == "to_download"
    finally:
        gate.set()
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(5)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_ctl_import_and_export_with_relative_paths(served: DaemonProcess, tmp_path: Path) -> None:
    folder = tmp_path / "ctl-imported"
    folder.mkdir()
    (folder / "assistant.json").write_text(json.dumps(DEFINITION))
    imported = ctl_in(served, tmp_path, "import", "ctl-imported")
    assert imported.returncode == 0, imported.stderr
    shown = fields_of(imported.stdout)
    assert (shown["id"], shown["state"], shown["name"]) == ("ctl-imported", "ready", "Tutor")

    exported = ctl_in(served, tmp_path, "export", "ctl-imported", "out/ctl.zip")
    assert exported.returncode == 1  # the folder out/ does not exist
    assert "(400, invalid_path" in exported.stderr
    (tmp_path / "out").mkdir()
    exported = ctl_in(served, tmp_path, "export", "ctl-imported", "out/ctl.zip")
    assert exported.returncode == 0, exported.stderr
    assert re.fullmatch(
        rf"exported ctl-imported to {re.escape(str(tmp_path))}/out/ctl\.zip "
        r"\(zip, 1 file, \d+ bytes\)\n",
        exported.stdout,
    )
    with zipfile.ZipFile(tmp_path / "out" / "ctl.zip") as archive:
        assert archive.namelist() == ["assistant.json"]

    again = ctl_in(served, tmp_path, "import", "out/ctl.zip", "--id", "ctl-reimported", "--json")
    assert again.returncode == 0, again.stderr
    assistant = json.loads(again.stdout)
    assert (assistant["id"], assistant["name"], assistant["state"]) == (
        "ctl-reimported",
        "Tutor",
        "ready",
    )
    as_json = ctl_in(served, tmp_path, "export", "ctl-reimported", "again.tgz", "--json")
    assert json.loads(as_json.stdout) == {
        "object": "assistant.export",
        "assistant_id": "ctl-reimported",
        "path": str(tmp_path / "again.tgz"),
        "format": "tar.gz",
        "files": 1,
        "bytes": json.loads(as_json.stdout)["bytes"],
    }


@pytest.mark.parametrize(
    ("args", "status", "code"),
    [
        (("download", "--id", "plain"), 409, "id_taken"),
        (("download", "file:///etc/passwd"), 400, "unsupported_scheme"),
        (("cancel", "nobody"), 404, "not_found"),
        (("cancel", "plain"), 409, "not_downloading"),
        (("import", "/no/such/folder"), 404, "path_not_found"),
        (("export", "nobody", "/no/such/nobody.zip"), 404, "not_found"),
    ],
)
def test_ctl_an_acquire_error_exits_1_with_status_and_code(
    served: DaemonProcess, args: tuple[str, ...], status: int, code: str
) -> None:
    done = ctl(served, *args)
    assert (done.returncode, done.stdout) == (1, "")
    assert f"({status}, {code}" in done.stderr.splitlines()[0]


def test_ctl_download_needs_a_url_or_an_id(served: DaemonProcess) -> None:
    done = ctl(served, "download")
    assert done.returncode == 2
    assert "give a URL, or --id ID" in done.stderr


@pytest.mark.parametrize("command", ["download", "cancel", "import", "export"])
def test_ctl_help_of_the_acquire_commands(command: str) -> None:
    done = subprocess.run(
        [*CTL, command, "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0
    assert done.stdout.startswith(f"usage: assistantctl {command}")


def test_ctl_watch_shows_download_progress(served: DaemonProcess, server: AssistantServer) -> None:
    url = server.serve("/ctl-watched.zip", ZIP)
    with watching(served, "download.") as watch:
        assert "client.synced" in watch.line()
        assert ctl(served, "download", url, "--no-wait").returncode == 0
        line = watch.line()
        while f"{len(ZIP)} bytes of" not in line:  # the last one has the whole body
            line = watch.line()
        whole = f"{len(ZIP)} bytes of {len(ZIP)} bytes (100%)"
        assert re.search(rf"  \[ctl-watched download\] {re.escape(whole)}(, .+/s)?$", line), line
        assert watch.interrupt() == 0
        assert watch.stderr() == ""


@pytest.mark.parametrize(
    "args",
    [
        ("download", "http://127.0.0.1:9/a.zip"),
        ("download", "http://127.0.0.1:9/a.zip", "--no-wait"),
        ("cancel", "a"),
        ("import", "/a"),
        ("export", "a", "/a.zip"),
    ],
)
def test_ctl_acquire_commands_with_no_daemon_exit_3(args: tuple[str, ...]) -> None:
    done = subprocess.run(
        [*CTL, *args, "--runtime-dir", str(short_dir())],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 3
    assert "No daemon is listening" in done.stderr
