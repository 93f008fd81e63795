"""The store against real files: atomic writes, safe reads, and a scan that reports bad folders."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from assistantd.daemon import store as store_module
from assistantd.daemon.store import InvalidDefinition, Loaded, Signature, Store
from assistantd.protocol.ids import id_problem
from assistantd.protocol.limits import FILE_MAX_BYTES


@pytest.fixture
def store(root: Path) -> Store:
    return Store(root)


def write(root: Path, folder: str, content: bytes | str) -> Path:
    path = root / folder / "assistant.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def temporaries(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.endswith(".tmp")]


def scan(store: Store) -> dict[str, Loaded | InvalidDefinition]:
    return dict(store.scan())


@contextmanager
def small_file_size_limit() -> Iterator[None]:
    """A tiny RLIMIT_FSIZE, so a write fails part way with EFBIG (root is not exempt)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


# --- create ---------------------------------------------------------------------------------


def test_create_writes_the_folder_whole(store: Store, root: Path) -> None:
    document = {"id": "ada", "name": "Ada", "tools": [{"type": "x", "enabled": False}]}
    signature = store.create("ada", document)
    path = root / "ada" / "assistant.json"
    assert os.listdir(root / "ada") == ["assistant.json"]
    assert json.loads(path.read_bytes()) == document
    # The signature is that of the file in place: the watcher uses it to know its own writes.
    assert signature == Signature.of(os.stat(path))
    assert os.listdir(root / ".staging") == []
    definition = store.read_document("ada")
    assert definition.document == document
    assert definition.assistant.name == "Ada"
    assert definition.signature == signature


@pytest.mark.parametrize("kind", ["folder", "empty folder", "file", "dangling symlink"])
def test_create_refuses_a_taken_name(store: Store, root: Path, kind: str) -> None:
    target = root / "ada"
    if kind == "folder":
        write(root, "ada", b'{"name": "first"}')
    elif kind == "empty folder":
        target.mkdir()
    elif kind == "file":
        target.write_bytes(b"loose")
    else:
        target.symlink_to(root / "nowhere")
    before = set(os.listdir(root))
    with pytest.raises(FileExistsError):
        store.create("ada", {"name": "second"})
    assert set(os.listdir(root)) - {".staging"} == before
    assert os.listdir(root / ".staging") == []
    if kind == "folder":
        assert json.loads((target / "assistant.json").read_bytes()) == {"name": "first"}
    if kind == "empty folder":
        assert os.listdir(target) == []


def test_create_of_an_unencodable_document_leaves_nothing(store: Store, root: Path) -> None:
    with pytest.raises((TypeError, msgspec.EncodeError)):
        store.create("ada", {"name": object()})
    assert not (root / "ada").exists()
    assert os.listdir(root / ".staging") == []


@pytest.mark.parametrize(
    "char", ["a", "é", "助", "🤖"], ids=["1-byte", "2-byte", "3-byte", "4-byte"]
)
def test_create_takes_the_longest_id_that_id_problem_accepts(store: Store, char: str) -> None:
    """An id is a folder name: whatever id_problem accepts must fit in one (255 bytes)."""
    length = max(n for n in range(1, 300) if id_problem(char * n) is None)
    assistant_id = char * length
    store.create(assistant_id, {"name": "long"})
    assert store.read(assistant_id).assistant.id == assistant_id
    store.remove(assistant_id)
    assert not store.exists(assistant_id)


# --- replace --------------------------------------------------------------------------------


def test_replace_round_trips_and_leaves_no_temporary(store: Store, root: Path) -> None:
    store.create("ada", {"name": "old"})
    inode_before = os.stat(root / "ada" / "assistant.json").st_ino
    document = {"name": "new", "x-mine": {"deep": [1, 2.5, None, "é"]}}
    signature = store.replace("ada", document)
    path = root / "ada" / "assistant.json"
    assert json.loads(path.read_bytes()) == document
    assert signature == Signature.of(os.stat(path))
    assert signature.inode != inode_before  # a new file renamed over, not rewritten in place
    assert temporaries(root / "ada") == []
    assert os.listdir(root / "ada") == ["assistant.json"]


def test_replace_keeps_unknown_values_exactly(store: Store) -> None:
    raw = (
        b'{"name": "a", "x-big": 123456789012345678901234567890, "x-neg": -36893488147419103232,'
        b' "x-floats": [0.1, 1e-300, 1.7976931348623157e308, -0.0, 1.0],'
        b' "x-text": "\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\xa4\x96 \\u0000 \\"",'
        b' "x-nested": {"a": [{"b": {}}, [], true, null]}}'
    )
    document = msgspec.json.decode(raw)
    store.create("ada", {"name": "first"})
    store.replace("ada", document)
    again = store.read_document("ada").document
    for key, value in document.items():
        assert msgspec.json.encode(again[key]) == msgspec.json.encode(value), key


def test_replace_of_a_missing_folder(store: Store, root: Path) -> None:
    with pytest.raises(FileNotFoundError):
        store.replace("ghost", {"name": "x"})
    assert not (root / "ghost").exists()


def test_failed_encode_leaves_the_old_file(store: Store, root: Path) -> None:
    store.create("ada", {"name": "old"})
    path = root / "ada" / "assistant.json"
    before = path.read_bytes()
    with pytest.raises((TypeError, msgspec.EncodeError)):
        store.replace("ada", {"name": object()})
    assert path.read_bytes() == before
    assert temporaries(root / "ada") == []


def test_failed_write_part_way_leaves_the_old_file(store: Store, root: Path) -> None:
    store.create("ada", {"name": "old"})
    path = root / "ada" / "assistant.json"
    before = path.read_bytes()
    with small_file_size_limit(), pytest.raises(OSError, match="too large"):
        store.replace("ada", {"name": "new", "instructions": "x" * 100_000})
    assert path.read_bytes() == before
    assert temporaries(root / "ada") == []
    assert store.read("ada").assistant.name == "old"


def test_readers_never_see_a_torn_file(store: Store, root: Path) -> None:
    """A reader that opens the file over and over while it is replaced sees whole versions."""
    small = {"name": "small"}
    large = {"name": "large", "instructions": "y" * 200_000}
    store.create("ada", small)
    path = root / "ada" / "assistant.json"
    done = threading.Event()
    seen: list[str] = []
    failures: list[str] = []

    def reader() -> None:
        while not done.is_set():
            data = path.read_bytes()
            try:
                seen.append(json.loads(data)["name"])
            except ValueError:
                failures.append(f"torn read of {len(data)} bytes")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(60):
            store.replace("ada", large if i % 2 == 0 else small)
    finally:
        done.set()
        thread.join()
    assert failures == []
    assert set(seen) <= {"small", "large"}
    assert seen
    assert temporaries(root / "ada") == []


# --- remove ---------------------------------------------------------------------------------


def test_remove_renames_out_of_the_root_before_deleting(
    store: Store, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create("ada", {"name": "x"})
    (root / "ada" / "threads" / "t1").mkdir(parents=True)
    (root / "ada" / "threads" / "t1" / "messages.jsonl").write_text("{}\n")
    listed_while_deleting: list[bool] = []
    real_rmtree = shutil.rmtree

    def spy(path: Any, *args: Any, **kwargs: Any) -> None:
        listed_while_deleting.append("ada" in os.listdir(root))
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(store_module.shutil, "rmtree", spy)
    store.remove("ada")
    assert listed_while_deleting == [False]
    assert not os.path.lexists(root / "ada")
    assert os.listdir(root / ".trash") == []
    assert not store.exists("ada")
    assert store.signature("ada") is None


def test_remove_of_a_missing_folder(store: Store) -> None:
    with pytest.raises(FileNotFoundError):
        store.remove("ghost")


def test_remove_of_a_symlinked_folder_leaves_its_target(
    store: Store, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    write(outside.parent, outside.name, b'{"name": "outside"}')
    (root / "link").symlink_to(outside, target_is_directory=True)
    store.remove("link")
    store.clear_leftovers()
    assert not os.path.lexists(root / "link")
    assert (outside / "assistant.json").read_bytes() == b'{"name": "outside"}'


# --- the root is the boundary ---------------------------------------------------------------


@pytest.fixture
def symlinked_folder(root: Path, tmp_path: Path) -> Path:
    """``root/link`` pointing at a folder outside the root that holds a valid definition."""
    outside = tmp_path / "outside"
    write(outside.parent, outside.name, b'{"name": "outside"}')
    (root / "link").symlink_to(outside, target_is_directory=True)
    return outside / "assistant.json"


def test_scan_does_not_follow_a_symlinked_folder(store: Store, symlinked_folder: Path) -> None:
    assert "link" not in scan(store)


def test_read_does_not_follow_a_symlinked_folder(store: Store, symlinked_folder: Path) -> None:
    with pytest.raises((FileNotFoundError, InvalidDefinition)):
        store.read("link")


def test_replace_does_not_write_through_a_symlinked_folder(
    store: Store, symlinked_folder: Path
) -> None:
    with pytest.raises((FileNotFoundError, InvalidDefinition)):
        store.replace("link", {"name": "written from a request"})
    assert symlinked_folder.read_bytes() == b'{"name": "outside"}'


# --- read and scan --------------------------------------------------------------------------


def test_scan_reads_valid_folders_and_skips_the_rest(store: Store, root: Path) -> None:
    write(root, "ada", b'{"name": "Ada", "created_at": 1700000000123, "id": "other"}')
    write(root, "jan", b"{}")
    write(root, ".hidden", b'{"name": "hidden"}')
    write(root, ".staging/half", b'{"name": "half"}')
    (root / "loose.json").write_bytes(b"{}")
    (root / "assistant.json").write_bytes(b"{}")
    (root / "empty").mkdir()
    (root / "no-definition" / "src").mkdir(parents=True)
    (root / "no-definition" / "package.json").write_bytes(b"{}")
    found = scan(store)
    assert sorted(found) == ["ada", "jan"]
    ada, jan = found["ada"], found["jan"]
    assert isinstance(ada, Loaded)
    assert isinstance(jan, Loaded)
    assert (ada.assistant.id, ada.assistant.name, ada.assistant.created_at) == (
        "ada",
        "Ada",
        1700000000,
    )
    # The id is the folder's, whatever the file says; a modify starts from the file as it is.
    assert store.read_document("ada").document["id"] == "other"
    jan_path = root / "jan" / "assistant.json"
    assert jan.assistant.created_at == int(os.stat(jan_path).st_mtime)
    assert jan.signature == Signature.of(os.stat(jan_path))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not valid JSON"),
        (b'{"name": "broken"', "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"text"', "JSON object"),
        (b"null", "JSON object"),
        (b'{"name": 5}', "name"),
        (b'{"tools": {"type": "x"}}', "tools"),
        (b'{"tools": [{"enabled": true}]}', "tools[0].type"),
        (b'{"created_at": "yesterday"}', "created_at"),
        (b'{"name": "' + b"x" * 257 + b'"}', "name"),
        (b'{"metadata": {' + b",".join(b'"k%d": "v"' % i for i in range(17)) + b"}}", "metadata"),
        (b'{"temperature": 3}', "temperature"),
        (b'{"models": []}', "models"),
        (b'{"created_at": 1e400}', "out of range"),
    ],
)
def test_scan_reports_an_invalid_definition_with_its_reason(
    store: Store, root: Path, content: bytes, reason: str
) -> None:
    write(root, "good", b"{}")
    path = write(root, "bad", content)
    found = scan(store)
    assert isinstance(found["good"], Loaded)
    invalid = found["bad"]
    assert isinstance(invalid, InvalidDefinition)
    assert invalid.path == path
    assert reason in invalid.reason
    with pytest.raises(InvalidDefinition):
        store.read("bad")


@pytest.mark.parametrize("folder", ["bad ", " bad", "a\x01b", "a\nb"])
def test_scan_reports_a_folder_name_that_is_no_id(store: Store, root: Path, folder: str) -> None:
    write(root, folder, b"{}")
    invalid = scan(store)[folder]
    assert isinstance(invalid, InvalidDefinition)
    assert "folder name" in invalid.reason


def test_a_symlinked_definition_is_refused(store: Store, root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_bytes(b'{"name": "secret"}')
    (root / "ada").mkdir()
    (root / "ada" / "assistant.json").symlink_to(secret)
    invalid = scan(store)["ada"]
    assert isinstance(invalid, InvalidDefinition)
    assert "opened" in invalid.reason
    with pytest.raises(InvalidDefinition):
        store.read("ada")


def test_a_definition_that_is_a_folder_is_refused(store: Store, root: Path) -> None:
    (root / "ada" / "assistant.json").mkdir(parents=True)
    invalid = scan(store)["ada"]
    assert isinstance(invalid, InvalidDefinition)


def test_a_definition_that_is_a_fifo_does_not_hang(store: Store, root: Path) -> None:
    """Opening a FIFO for reading blocks until a writer comes: the scan must not wait."""
    (root / "ada").mkdir()
    fifo = root / "ada" / "assistant.json"
    os.mkfifo(fifo)
    results: list[object] = []

    def read() -> None:
        try:
            results.append(store.read("ada"))
        except (InvalidDefinition, FileNotFoundError) as exc:
            results.append(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(timeout=1)
    hung = thread.is_alive()
    if hung:  # let the reader go, so no thread is left blocked
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(timeout=5)
    assert not hung, "reading a FIFO assistant.json blocks until someone writes to it"
    assert len(results) == 1
    assert isinstance(results[0], InvalidDefinition)


def test_read_of_a_file_over_the_limit_is_refused(store: Store, root: Path) -> None:
    path = write(root, "ada", b"{}")
    os.truncate(path, FILE_MAX_BYTES + 1)  # sparse: no need to write 4 MiB
    with pytest.raises(InvalidDefinition) as caught:
        store.read("ada")
    assert str(FILE_MAX_BYTES) in caught.value.reason


def test_read_of_a_file_at_the_limit_is_parsed(store: Store, root: Path) -> None:
    body = b'{"name": "big", "x": "'
    tail = b'"}'
    filler = b"a" * (FILE_MAX_BYTES - len(body) - len(tail))
    write(root, "ada", body + filler + tail)
    assert store.read("ada").assistant.name == "big"


def test_read_of_a_missing_file(store: Store, root: Path) -> None:
    with pytest.raises(FileNotFoundError):
        store.read("ghost")
    (root / "empty").mkdir()
    with pytest.raises(FileNotFoundError):
        store.read("empty")
    (root / "loose").write_bytes(b"{}")
    with pytest.raises(FileNotFoundError):
        store.read("loose")


def test_signature_follows_the_file(store: Store, root: Path) -> None:
    assert store.signature("ada") is None
    first = store.create("ada", {"name": "a"})
    assert store.signature("ada") == first
    second = store.replace("ada", {"name": "b"})
    assert second != first
    assert store.signature("ada") == second


# --- leftovers ------------------------------------------------------------------------------


def test_clear_leftovers_empties_staging_and_trash(store: Store, root: Path) -> None:
    write(root, ".staging/ada.1234abcd", b'{"name": "half"}')
    write(root, ".trash/bob.deadbeef", b'{"name": "gone"}')
    (root / ".trash" / "bob.deadbeef" / "threads").mkdir()
    write(root, "keep", b"{}")
    store.clear_leftovers()
    assert not (root / ".staging").exists() or os.listdir(root / ".staging") == []
    assert not (root / ".trash").exists() or os.listdir(root / ".trash") == []
    assert isinstance(scan(store)["keep"], Loaded)
    store.clear_leftovers()  # nothing to clear is fine too


def test_create_root(tmp_path: Path) -> None:
    store = Store(tmp_path / "a" / "b")
    store.create_root()
    store.create_root()
    assert (tmp_path / "a" / "b").is_dir()
    assert scan(store) == {}
