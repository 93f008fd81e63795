"""Where a daemon lives, and how a ROUTER's frames split into envelope and body."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistantd.protocol.endpoints import (
    IPC_PATH_MAX_BYTES,
    default_root,
    default_runtime_dir,
    ipc_endpoint,
    ipc_path_problem,
)
from assistantd.protocol.framing import Split, split_envelope

HOME = "/home/ada"
TMP = "/scratch"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "/home/ada/.local/share/assistantd/assistants"),
        ({"XDG_DATA_HOME": ""}, "/home/ada/.local/share/assistantd/assistants"),
        ({"XDG_DATA_HOME": "/data"}, "/data/assistantd/assistants"),
        ({"ASSISTANTD_ROOT": "/srv/a", "XDG_DATA_HOME": "/data"}, "/srv/a"),
        ({"ASSISTANTD_ROOT": "", "XDG_DATA_HOME": "/data"}, "/data/assistantd/assistants"),
    ],
)
def test_default_root(env: dict[str, str], expected: str) -> None:
    assert default_root(env, HOME) == expected


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "/scratch/assistantd-1000"),
        ({"XDG_RUNTIME_DIR": ""}, "/scratch/assistantd-1000"),
        ({"XDG_RUNTIME_DIR": "/run/user/1000"}, "/run/user/1000/assistantd"),
        ({"ASSISTANTD_RUNTIME_DIR": "/r", "XDG_RUNTIME_DIR": "/run/user/1000"}, "/r"),
        ({"ASSISTANTD_RUNTIME_DIR": "", "XDG_RUNTIME_DIR": "/x"}, "/x/assistantd"),
    ],
)
def test_default_runtime_dir(env: dict[str, str], expected: str) -> None:
    assert default_runtime_dir(env, 1000, TMP) == expected


def test_runtime_dir_fallback_is_per_user() -> None:
    assert default_runtime_dir({}, 1000, TMP) != default_runtime_dir({}, 1001, TMP)


def test_ipc_endpoint() -> None:
    assert ipc_endpoint(Path("/r/command.sock")) == "ipc:///r/command.sock"


def test_ipc_path_limit() -> None:
    longest = "/" + "a" * (IPC_PATH_MAX_BYTES - 1)
    assert ipc_path_problem(f"ipc://{longest}") is None
    problem = ipc_path_problem(f"ipc://{longest}a")
    assert problem is not None
    assert "--runtime-dir" in problem
    # Bytes, not characters: a non-ASCII path is longer than it looks.
    assert ipc_path_problem("ipc:///" + "é" * 60) is not None
    assert ipc_path_problem("tcp://127.0.0.1:5555") is None
    assert ipc_path_problem("inproc://" + "a" * 500) is None


@pytest.mark.parametrize(
    ("frames", "envelope", "body"),
    [
        # REQ client: identity, empty delimiter, body.
        ([b"peer", b"", b"{}"], [b"peer", b""], [b"{}"]),
        # DEALER client without a delimiter.
        ([b"peer", b"{}"], [b"peer"], [b"{}"]),
        # Extra frames after the body stay in the body, to be refused.
        ([b"peer", b"", b"{}", b"extra"], [b"peer", b""], [b"{}", b"extra"]),
        ([b"peer", b"{}", b"more"], [b"peer"], [b"{}", b"more"]),
        # Through a proxy: two identities, then the delimiter.
        ([b"hop1", b"hop2", b"", b"{}"], [b"hop1", b"hop2", b""], [b"{}"]),
        # No body at all.
        ([b"peer", b""], [b"peer", b""], []),
        ([b"peer"], [b"peer"], []),
        ([], [], []),
    ],
)
def test_split_envelope(frames: list[bytes], envelope: list[bytes], body: list[bytes]) -> None:
    split = split_envelope(frames)
    assert split == Split(envelope, body)
    assert split.envelope + split.body == frames


def test_split_envelope_takes_any_sequence_and_copies() -> None:
    frames = (b"peer", b"", b"{}")
    split = split_envelope(frames)
    assert isinstance(split.envelope, list)
    assert isinstance(split.body, list)
    assert split.body == [b"{}"]
