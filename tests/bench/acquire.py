"""Benchmark 8: acquire — a download, an archive unpacked, an import and an export, each against
what aiohttp or the standard library alone does with the very same bytes.

No figure has a target: each is a ratio to its floor, reported. Runs of the daemon's code and of
its floor alternate (which goes first rotates each round), each into a new file or folder that
is removed after it (not timed).

1. Download throughput: the daemon's :func:`fetch` (in this process, a new ``dest`` each time,
   a progress callback that does nothing) of a 64 MiB ``.tar.gz`` to the disk, against a bare
   aiohttp GET streaming the same body to a new file chunk by chunk as ``fetch`` does, without
   its sha256 and its fsync. Printed beside them: the same GET with an inline sha256, and with
   the sha256 and an fsync, which is what ``fetch`` does on top of a GET. Then
   ``downloadAssistant`` of that archive through a real daemon, from the command until the
   ``assistant.state`` event that it is ``ready``, against the bare GET plus a plain
   ``tarfile`` ``extractall(filter="fully_trusted")`` (the unsafe floor: no check at all);
   beside them, ``fetch`` then :func:`archive.extract` in this process, and the daemon's steps
   as its ``download.progress`` events show them.
2. Extraction: :func:`archive.extract` of a ``.tar.gz`` and of a ``.zip`` of 2,000 small files
   and a few large ones, against ``tarfile``'s ``extractall(filter="data")`` (reading the
   archive as a stream, ``r|gz``, as the daemon does: opened ``r:gz``, tarfile decompresses it
   twice) and ``ZipFile.extractall``.
3. Import and export: ``importAssistant`` of that folder through a real daemon (client to
   reply) against ``shutil.copytree`` of it; ``exportAssistant`` of it as a ``.tar.gz`` against
   ``tarfile`` writing the same tree at the same gzip level (6).

Where the files go: everything but figure 1's downloads is written to a tmpfs (``/dev/shm``, the
daemon's root included) when there is one. On these machines' ext4 (no journal) a new file
skips every inode deleted in the last 30 s, by anyone, and pays for each one it skips: perf put
40% of a copy's time in ``recently_deleted``, one extraction took anything from 0.5 to 1.3 s,
and the ratio of two runs side by side anything from 0.6x to 2.5x. On a tmpfs the figures are
the work of the code and of the kernel's page cache, and the medians of separate runs agree.
What the disk costs the daemon is its fsyncs, which figure 1 measures on the disk.

The HTTP server is aiohttp.web's static files in a process of its own
(``python -m tests.bench.acquire serve FOLDER``): it sends with sendfile(2), so it costs little,
and the same for the daemon and for its floor.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import math
import os
import random
import shutil
import socket
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import aiohttp
import zmq
from aiohttp import web

from assistantd.daemon.acquire.archive import Kind, extract
from assistantd.daemon.acquire.fetch import FetchLimits, fetch

from .common import (
    PYTHON,
    Child,
    Figure,
    Reported,
    Socket,
    alternate,
    call,
    command_endpoint,
    connect,
    daemon_argv,
    detail,
    heading,
    median,
    report,
    request_body,
    run_alone,
    serving,
    temp_dir,
    zmq_context,
)
from .latency import events_endpoint, subscriber, wait_for_welcome

MiB = 1024 * 1024
DOWNLOAD_FILES = 16
DOWNLOAD_FILE_BYTES = 4 * MiB  # 16 of them: 64 MiB of content
SMALL_FILES = 2_000
SMALL_BYTES = (1_024, 24 * 1_024)  # text, 12.5 KiB on average
LARGE_FILES = 3
LARGE_FILE_BYTES = 8 * MiB  # random: a model, an image, an index
GZIP_LEVEL = 6  # the daemon's exportAssistant, and gzip's own default
TMPFS = Path("/dev/shm")  # noqa: S108 - only a folder of our own in it, made by mkdtemp

FETCH_ROUNDS = 8
DOWNLOAD_ROUNDS = 5
EXTRACT_ROUNDS = 5
IMPORT_ROUNDS = 5
EXPORT_ROUNDS = 3

STEP_TIMEOUT = 60.0
"""Seconds for one download, import or export: a hang fails the benchmark instead of stalling
it."""


@dataclass(frozen=True)
class Tree:
    """The folder that is archived, imported and exported, and what it holds."""

    folder: Path
    files: int
    bytes: int


@dataclass(frozen=True)
class Corpus:
    download: Path
    """The ``.tar.gz`` the server hands out: one top folder (as GitHub's archive links give),
    an ``assistant.json`` and DOWNLOAD_FILES random files."""
    tree: Tree
    tree_tar: Path
    tree_zip: Path


# --- the files --------------------------------------------------------------------------------


@contextmanager
def memory_dir() -> Iterator[Path]:
    """A private folder on the tmpfs, or in the usual temp folder when there is none."""
    usable = TMPFS.is_dir() and os.access(TMPFS, os.W_OK)
    path = Path(tempfile.mkdtemp(prefix="adb-", dir=TMPFS if usable else None))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def text_pool(rng: random.Random) -> bytes:
    """A few MiB of made-up words: text that compresses as source code and docs do (2.1x)."""
    vocabulary = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz_", k=rng.randint(2, 10)))
        for _ in range(5_000)
    ]
    return " ".join(rng.choices(vocabulary, k=700_000)).encode()


def write_tree(folder: Path, rng: random.Random) -> Tree:
    """SMALL_FILES text files in 40 folders two deep, LARGE_FILES random ones, an
    assistant.json."""
    pool = text_pool(rng)
    definition = {"name": "Bench", "model": "*", "instructions": "Unpack me."}
    (folder / "models").mkdir(parents=True)
    (folder / "assistant.json").write_text(json.dumps(definition))
    total = (folder / "assistant.json").stat().st_size
    per_folder = SMALL_FILES // 40
    for number in range(SMALL_FILES):
        top = ("src", "lib", "docs", "data")[number % 4]
        sub = folder / top / f"part_{number // per_folder:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        size = rng.randint(*SMALL_BYTES)
        start = rng.randrange(len(pool) - size)
        (sub / f"file_{number:04d}.{top}.txt").write_bytes(pool[start : start + size])
        total += size
    for number in range(LARGE_FILES):
        (folder / "models" / f"weights-{number}.bin").write_bytes(rng.randbytes(LARGE_FILE_BYTES))
        total += LARGE_FILE_BYTES
    return Tree(folder, SMALL_FILES + LARGE_FILES + 1, total)


def write_download(path: Path) -> None:
    """The archive to download. Its files are random, so gzip stores them as they are, whatever
    the level: level 0 writes the same kind of stream (stored blocks) in a tenth of the time."""
    with tarfile.open(path, "w:gz", compresslevel=0) as tar:
        definition = json.dumps({"name": "Download", "model": "*"}).encode()
        add_bytes(tar, "bench-main/assistant.json", definition)
        for number in range(DOWNLOAD_FILES):
            blob = os.urandom(DOWNLOAD_FILE_BYTES)
            add_bytes(tar, f"bench-main/blobs/blob-{number:02d}.bin", blob)


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    entry = tarfile.TarInfo(name)
    entry.size = len(data)
    entry.mode = 0o644
    tar.addfile(entry, io.BytesIO(data))


def tar_tree(folder: Path, dest: Path) -> None:
    """``folder``'s contents (no folder around them) as a ``.tar.gz``: the export's floor."""
    with tarfile.open(dest, "w:gz", compresslevel=GZIP_LEVEL) as tar:
        for name in sorted(os.listdir(folder)):
            tar.add(folder / name, arcname=name)  # a folder is added whole, sorted


def zip_tree(folder: Path, dest: Path) -> None:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, compresslevel=GZIP_LEVEL) as zipped:
        for parent, folders, files in os.walk(folder):
            folders.sort()
            for name in sorted(files):
                path = Path(parent, name)
                zipped.write(path, path.relative_to(folder).as_posix())


def make_corpus(base: Path) -> Corpus:
    started = time.perf_counter()
    rng = random.Random(2024)
    served = base / "served"
    served.mkdir()
    download = served / "bench.tar.gz"
    tree = write_tree(base / "tree", rng)
    # zlib lets go of the GIL: the three archives are written side by side.
    with ThreadPoolExecutor(3) as pool:
        jobs = [
            pool.submit(write_download, download),
            pool.submit(tar_tree, tree.folder, base / "tree.tar.gz"),
            pool.submit(zip_tree, tree.folder, base / "tree.zip"),
        ]
        for job in jobs:
            job.result()
    detail(
        f"made in {time.perf_counter() - started:.1f} s in {base.parent}: the download "
        f"{mib(download)}; the tree {tree.files} files, {tree.bytes / MiB:.1f} MiB, as .tar.gz "
        f"{mib(base / 'tree.tar.gz')} and .zip {mib(base / 'tree.zip')}"
    )
    return Corpus(download, tree, base / "tree.tar.gz", base / "tree.zip")


def mib(path: Path) -> str:
    return f"{path.stat().st_size / MiB:.1f} MiB"


# --- the HTTP server ----------------------------------------------------------------------------


def serve(folder: str) -> None:
    """The benchmark's HTTP server, in a process of its own: the files of ``folder`` by name.

    Its ``ready`` line on stderr carries its port. SIGTERM ends it.
    """

    async def main() -> None:
        app = web.Application()
        app.router.add_static("/", folder)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        listener = socket.create_server(("127.0.0.1", 0))
        await web.SockSite(runner, listener).start()
        port = listener.getsockname()[1]
        print(json.dumps({"event": "ready", "port": port}), file=sys.stderr, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def server_argv(folder: Path) -> list[str | Path]:
    return [PYTHON, "-m", "tests.bench.acquire", "serve", folder]


def announced_port(child: Child) -> int:
    for line in child.tail:
        if line.startswith("{") and '"ready"' in line:
            port: int = json.loads(line)["port"]
            return port
    raise RuntimeError(f"the server announced no port:\n{child.last_words()}")


# --- measuring ----------------------------------------------------------------------------------


def seconds(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def removing(path: Path, measure: Callable[[], object]) -> Callable[[], float]:
    """``measure`` timed; then ``path``, the file or folder it made, removed (not timed)."""

    def timed() -> float:
        elapsed = seconds(measure)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        return elapsed

    return timed


def summary(samples: Sequence[float], size: int) -> str:
    return f"median {median(samples) * 1000:7.1f} ms ({size / MiB / median(samples):5.0f} MiB/s)"


def compare(name: str, floor_name: str, ours: list[float], floor: list[float], size: int) -> Figure:
    """The lines of one pair, and its figure: the ratio of the medians."""
    width = max(len(name), len(floor_name))
    detail(f"{name:>{width}}: {summary(ours, size)}")
    detail(f"{floor_name:>{width}}: {summary(floor, size)}")
    per_round = [ours_one / floor_one for ours_one, floor_one in zip(ours, floor, strict=True)]
    detail(f"ratio per round {min(per_round):.2f}x .. {max(per_round):.2f}x")
    return Reported(f"{name}, median", median(ours) / median(floor), math.inf, versus=floor_name)


def ignore(*_: object) -> None:
    """fetch()'s progress callback, when nothing is to be done with the progress."""


async def bare_get(url: str, dest: Path, *, digest: bool = False, sync: bool = False) -> None:
    """The floor: aiohttp's GET streamed to a new file chunk by chunk, as fetch() streams it;
    with ``digest`` and ``sync``, fetch()'s sha256 of each chunk and its fsync too."""
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(url) as response,
    ):
        response.raise_for_status()
        sha256 = hashlib.sha256()
        # A blocking open and blocking writes, as fetch() does them.
        with open(dest, "xb") as file:  # noqa: ASYNC230
            async for chunk in response.content.iter_any():
                file.write(chunk)
                if digest:
                    sha256.update(chunk)
            if sync:
                file.flush()
                os.fsync(file.fileno())


# --- 1. download --------------------------------------------------------------------------------


def measure_fetch(runner: asyncio.Runner, url: str, size: int) -> list[Figure]:
    heading(
        f"download: fetch() vs a bare aiohttp GET to a file on the disk, {size / MiB:.0f} MiB "
        f"from 127.0.0.1 ({FETCH_ROUNDS} of each, alternating)"
    )
    limits = FetchLimits()
    with temp_dir() as disk:
        dest = disk / "body"
        fetched = runner.run(fetch(url, dest, limits=limits, on_progress=ignore))
        dest.unlink()
        if fetched.bytes != size:
            raise RuntimeError(f"fetch() answered {fetched}, not {size} bytes")
        runner.run(bare_get(url, dest, digest=True, sync=True))  # warm: the code, the pool
        dest.unlink()
        ours, floor, hashed, synced = alternate(
            FETCH_ROUNDS,
            removing(dest, lambda: runner.run(fetch(url, dest, limits=limits, on_progress=ignore))),
            removing(dest, lambda: runner.run(bare_get(url, dest))),
            removing(dest, lambda: runner.run(bare_get(url, dest, digest=True))),
            removing(dest, lambda: runner.run(bare_get(url, dest, digest=True, sync=True))),
        )
    figures = [compare("fetch()", "bare aiohttp GET", ours, floor, size)]
    detail(f"GET + sha256: {summary(hashed, size)}; + fsync: {summary(synced, size)}")
    detail(
        f"fetch() / (GET + sha256 + fsync) {median(ours) / median(synced):.2f}x: of what fetch() "
        f"adds, the sha256 {(median(hashed) - median(floor)) * 1000:.0f} ms, the fsync "
        f"{(median(synced) - median(hashed)) * 1000:.0f} ms"
    )
    report(figures)
    return figures


@dataclass(frozen=True)
class Timeline:
    """One downloadAssistant, in seconds from the command: when this process had the first
    ``download.progress`` (the first bytes of the body), the last one (fetch() done: the body,
    its sha256, its fsync), and the ``assistant.state`` that it is ready."""

    first_bytes: float
    fetched: float
    ready: float


def wait_downloaded(events: Socket, assistant_id: str, start: float) -> Timeline:
    """Follow the download of ``assistant_id`` on ``events`` until it is ready; RuntimeError
    if it failed."""
    first_bytes = fetched = math.nan
    deadline = time.monotonic() + STEP_TIMEOUT
    while (left := deadline - time.monotonic()) > 0:
        if not events.poll(int(left * 1000) + 1, zmq.POLLIN):
            break
        _, body = events.recv_multipart()
        now = time.perf_counter() - start
        event = json.loads(body)
        if event.get("assistant_id") == assistant_id:  # download.progress
            first_bytes = now if math.isnan(first_bytes) else first_bytes
            fetched = now
            continue
        assistant = event.get("assistant") or {}
        if assistant.get("id") != assistant_id:
            continue
        if assistant.get("state") == "ready":
            return Timeline(first_bytes, fetched, now)
        if event.get("error"):
            raise RuntimeError(f"the download of {assistant_id} failed: {event['error']}")
    raise RuntimeError(f"{assistant_id} was not downloaded within {STEP_TIMEOUT:g} s")


def measure_download(
    runner: asyncio.Runner,
    url: str,
    served: Path,
    client: Socket,
    events: Socket,
    scratch: Path,
) -> list[Figure]:
    size = served.stat().st_size
    heading(
        f"downloadAssistant of a {size / MiB:.0f} MiB .tar.gz, command to the ready event, vs "
        f"a bare GET + tarfile extractall ({DOWNLOAD_ROUNDS} of each, alternating)"
    )
    numbers = count()
    archive, into = scratch / "download.tar.gz", scratch / "unpacked"
    timelines: list[Timeline] = []
    parts: list[tuple[float, float]] = []

    def download() -> float:
        assistant_id = f"bench-download-{next(numbers)}"
        start = time.perf_counter()
        call(client, request_body("downloadAssistant", {"url": url, "assistant_id": assistant_id}))
        timelines.append(wait_downloaded(events, assistant_id, start))
        call(client, request_body("deleteAssistant", {"assistant_id": assistant_id}))
        return timelines[-1].ready

    def get_and_extract() -> None:
        runner.run(bare_get(url, archive))
        with tarfile.open(archive, "r|gz") as tar:
            tar.extractall(into, filter="fully_trusted")

    def floor() -> float:
        elapsed = seconds(get_and_extract)
        archive.unlink()  # not timed: the daemon removes its staged archive after the event
        shutil.rmtree(into)
        return elapsed

    def in_process() -> float:
        """The daemon's two long steps, in this process: fetch(), then archive.extract()."""
        into.mkdir()
        fetching = seconds(lambda: runner.run(fetch(url, archive, limits=FetchLimits())))
        extracting = seconds(lambda: extract(archive, "tar.gz", into))
        parts.append((fetching, extracting))
        archive.unlink()
        shutil.rmtree(into)
        return fetching + extracting

    download()
    floor()
    in_process()
    parts.clear()
    ours, floors, _ = alternate(DOWNLOAD_ROUNDS, download, floor, in_process)
    figures = [compare("downloadAssistant", "GET + tarfile extractall", ours, floors, size)]
    timed = timelines[1:]
    to_first = median([timeline.first_bytes for timeline in timed]) * 1000
    body = median([timeline.fetched - timeline.first_bytes for timeline in timed]) * 1000
    after = median([timeline.ready - timeline.fetched for timeline in timed]) * 1000
    detail(
        f"the daemon's steps, by its events: command to the first bytes {to_first:.0f} ms, "
        f"the body {body:.0f} ms, then to ready {after:.0f} ms"
    )
    detail(
        f"the same steps in this process: fetch() {median([p[0] for p in parts]) * 1000:.0f} ms, "
        f"archive.extract() {median([p[1] for p in parts]) * 1000:.0f} ms"
    )
    report(figures)
    return figures


# --- 2. extraction ------------------------------------------------------------------------------


def measure_extraction(corpus: Corpus, scratch: Path) -> list[Figure]:
    tree = corpus.tree
    heading(
        f"extraction: archive.extract vs tarfile / zipfile extractall, {tree.files} files, "
        f"{tree.bytes / MiB:.0f} MiB ({EXTRACT_ROUNDS} of each, alternating)"
    )
    into = scratch / "extracted"

    def ours(archive: Path, kind: Kind) -> Callable[[], float]:
        def unpack() -> None:
            made = extract(archive, kind, into)
            if made.files != tree.files or made.bytes != tree.bytes:
                raise RuntimeError(f"extract() of the {kind} made {made}, not the tree")

        return removing(into, unpack)

    def tar_floor() -> None:
        with tarfile.open(corpus.tree_tar, "r|gz") as tar:
            tar.extractall(into, filter="data")

    def zip_floor() -> None:
        with zipfile.ZipFile(corpus.tree_zip) as zipped:
            zipped.extractall(into)

    def fresh(measure: Callable[[], float]) -> Callable[[], float]:
        def made_empty() -> float:
            into.mkdir()  # an empty folder, as extract() asks, for the floors too
            return measure()

        return made_empty

    # No warm-up: the archives are in the page cache since they were written, and each of
    # these runs takes about a third of a second.
    tar_ours, tar_floors, zip_ours, zip_floors = alternate(
        EXTRACT_ROUNDS,
        fresh(ours(corpus.tree_tar, "tar.gz")),
        fresh(removing(into, tar_floor)),
        fresh(ours(corpus.tree_zip, "zip")),
        fresh(removing(into, zip_floor)),
    )
    figures = [
        compare("extract .tar.gz", 'tarfile filter="data"', tar_ours, tar_floors, tree.bytes),
        compare("extract .zip", "zipfile extractall", zip_ours, zip_floors, tree.bytes),
    ]
    report(figures)
    return figures


# --- 3. import and export -----------------------------------------------------------------------


def measure_import_export(tree: Tree, client: Socket, scratch: Path) -> list[Figure]:
    heading(
        f"importAssistant of a folder of {tree.files} files, {tree.bytes / MiB:.0f} MiB, vs "
        f"shutil.copytree ({IMPORT_ROUNDS} of each, alternating)"
    )
    numbers = count()
    copy = scratch / "copy"

    def import_assistant() -> str:
        assistant_id = f"bench-import-{next(numbers)}"
        params = {"path": str(tree.folder), "assistant_id": assistant_id}
        answer = call(client, request_body("importAssistant", params))["result"]
        if answer.get("state") != "ready":
            raise RuntimeError(f"importAssistant answered {answer}")
        return assistant_id

    def import_then_delete() -> float:
        names: list[str] = []
        elapsed = seconds(lambda: names.append(import_assistant()))
        call(client, request_body("deleteAssistant", {"assistant_id": names[0]}))
        return elapsed

    copytree = removing(copy, lambda: shutil.copytree(tree.folder, copy))
    import_then_delete()
    copytree()
    imports, copies = alternate(IMPORT_ROUNDS, import_then_delete, copytree)
    figures = [compare("importAssistant", "shutil.copytree", imports, copies, tree.bytes)]

    heading(
        f"exportAssistant of it as a .tar.gz vs tarfile writing the same tree, gzip level "
        f"{GZIP_LEVEL} ({EXPORT_ROUNDS} of each, alternating)"
    )
    kept = import_assistant()
    exported, written = scratch / "export.tar.gz", scratch / "floor.tar.gz"
    answers: list[dict[str, Any]] = []

    def export() -> None:
        params = {"assistant_id": kept, "path": str(exported)}
        answers.append(call(client, request_body("exportAssistant", params))["result"])
        if answers[-1].get("files") != tree.files:
            raise RuntimeError(f"exportAssistant answered {answers[-1]}")

    # No warm-up: each of these is seconds of zlib, which a first run does not change.
    exports, tars = alternate(
        EXPORT_ROUNDS,
        removing(exported, export),
        removing(written, lambda: tar_tree(tree.folder, written)),
    )
    figures.append(compare("exportAssistant", "tarfile w:gz", exports, tars, tree.bytes))
    report(figures)
    return figures


# --- all of it ----------------------------------------------------------------------------------


@contextmanager
def daemon_client(base: Path) -> Iterator[tuple[Socket, Socket]]:
    """A daemon on an empty root: a REQ client to it and a SUB to its ``assistant.state`` and
    ``download.progress`` events."""
    with zmq_context() as context, serving(daemon_argv(base / "root", base / "run")):
        client = connect(context, zmq.REQ, command_endpoint(base / "run"))
        client.setsockopt(zmq.RCVTIMEO, int(STEP_TIMEOUT * 1000))
        events = subscriber(context, events_endpoint(base / "run"), b"assistant.state")
        events.subscribe(b"download.progress")
        wait_for_welcome(events)  # one for each subscription
        wait_for_welcome(events)
        yield client, events


def run() -> list[Figure]:
    heading("acquire: making the archives and the folder")
    with memory_dir() as base, asyncio.Runner() as runner:
        corpus = make_corpus(base)
        scratch = base / "scratch"
        scratch.mkdir()
        with serving(server_argv(corpus.download.parent)) as server:
            url = f"http://127.0.0.1:{announced_port(server)}/{corpus.download.name}"
            figures = measure_fetch(runner, url, corpus.download.stat().st_size)
            with daemon_client(base) as (client, events):
                figures += measure_download(runner, url, corpus.download, client, events, scratch)
                figures += measure_extraction(corpus, scratch)
                figures += measure_import_export(corpus.tree, client, scratch)
    return figures


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2])
    else:
        run_alone(run)
