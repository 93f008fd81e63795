"""The runtime dir must be private, and one lock keeps a second daemon away."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from assistantd.daemon.config import ConfigError, Settings
from assistantd.daemon.runtime import Lock, check_endpoints, prepare_runtime_dir

is_root = os.getuid() == 0


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_creates_a_private_dir(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "assistantd"
    prepare_runtime_dir(path)
    assert path.is_dir()
    assert mode_of(path) == 0o700


def test_creates_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        prepare_runtime_dir(tmp_path / "run")
    finally:
        os.umask(previous)
    assert mode_of(tmp_path / "run") == 0o700


def test_accepts_an_existing_private_dir(tmp_path: Path) -> None:
    path = tmp_path / "run"
    path.mkdir(mode=0o700)
    (path / "other-file").write_text("kept")
    prepare_runtime_dir(path)
    assert mode_of(path) == 0o700
    assert (path / "other-file").read_text() == "kept"


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o701, 0o710, 0o777, 0o1777])
def test_refuses_a_dir_others_can_enter(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "run"
    path.mkdir()
    path.chmod(mode)
    with pytest.raises(ConfigError) as caught:
        prepare_runtime_dir(path)
    message = str(caught.value)
    assert f"{stat.S_IMODE(mode):04o}" in message
    assert "0700" in message
    assert mode_of(path) == mode  # not changed behind the user's back


def test_refuses_a_file(tmp_path: Path) -> None:
    path = tmp_path / "run"
    path.write_text("")
    with pytest.raises(ConfigError):
        prepare_runtime_dir(path)


def test_refuses_a_symlink_to_a_private_dir(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "run"
    link.symlink_to(real, target_is_directory=True)
    with pytest.raises(ConfigError, match="not a directory"):
        prepare_runtime_dir(link)


@pytest.mark.skipif(not is_root, reason="only root can give a folder to another user")
def test_refuses_a_dir_owned_by_another_user(tmp_path: Path) -> None:
    path = tmp_path / "run"
    path.mkdir(mode=0o700)
    os.chown(path, 12345, 12345)
    with pytest.raises(ConfigError, match="12345"):
        prepare_runtime_dir(path)


def test_lock_refuses_a_second_holder_and_names_the_pid(tmp_path: Path) -> None:
    path = tmp_path / "assistantd.pid"
    first = Lock(path, "the runtime dir")
    try:
        assert path.read_text() == f"{os.getpid()}\n"
        with pytest.raises(ConfigError) as caught:
            Lock(path, "the runtime dir")
        message = str(caught.value)
        assert f"pid {os.getpid()}" in message
        assert "the runtime dir" in message
        # The failed attempt closed its own descriptor, which must not drop the first lock.
        with pytest.raises(ConfigError):
            Lock(path, "the runtime dir")
        assert path.read_text() == f"{os.getpid()}\n"
    finally:
        first.release()
    second = Lock(path, "the runtime dir")
    second.release()
    second.release()  # twice is harmless


def test_lock_replaces_a_stale_pid(tmp_path: Path) -> None:
    path = tmp_path / ".lock"
    path.write_text("999999999\nleftover text\n")
    lock = Lock(path, "the root")
    try:
        assert path.read_text() == f"{os.getpid()}\n"
    finally:
        lock.release()


def settings(command: str, events: str) -> Settings:
    return Settings(
        root=Path("/r"),
        runtime_dir=Path("/run/a"),
        command=command,
        events=events,
        log_format="json",
    )


def test_check_endpoints() -> None:
    check_endpoints(settings("ipc:///run/a/command.sock", "ipc:///run/a/events.sock"))
    # tcp:// passes here; whether it is served with CURVE is security.prepare_tcp's to say.
    check_endpoints(settings("tcp://127.0.0.1:5555", "ipc:///run/a/events.sock"))
    with pytest.raises(ConfigError, match="--command"):
        check_endpoints(settings("ws://127.0.0.1:5555", "ipc:///run/a/events.sock"))
    with pytest.raises(ConfigError, match="abstract"):
        check_endpoints(settings("ipc:///run/a/command.sock", "ipc://@assistantd-events"))
    with pytest.raises(ConfigError, match="--events"):
        check_endpoints(settings("ipc:///run/a/command.sock", "ipc:///" + "e" * 200))
