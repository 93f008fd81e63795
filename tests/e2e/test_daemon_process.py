"""The daemon as a process: first start, where it puts things, refusing to share, stopping."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from assistantd.client import Client, UnavailableError
from tests.e2e.helpers import (
    clean_env,
    exchange,
    log_mark,
    reply_of,
    run_to_exit,
    short_tmp,
    wait_for_new_log,
    write_json,
)
from tests.utils import STOP_TIMEOUT, DaemonProcess, running_daemon, short_dir, spawned_daemon

SOCKETS = ("command.sock", "events.sock")


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    with short_tmp("rt-") as path:
        yield path


def is_socket(path: Path) -> bool:
    return path.exists() and stat.S_ISSOCK(path.stat().st_mode)


def ready_line(daemon: DaemonProcess) -> dict[str, object]:
    return daemon.wait_for_log(lambda line: line.get("event") == "ready")


def test_first_start_writes_jan_into_an_empty_root(tmp_path: Path) -> None:
    root = tmp_path / "not" / "yet" / "there"
    before = int(time.time())
    with running_daemon(root) as daemon, Client(command=daemon.command, timeout=5) as client:
        path = root / "jan" / "assistant.json"
        written = daemon.wait_for_log(lambda line: line.get("event") == "default assistant written")
        assert written["path"] == str(path)
        document = json.loads(path.read_bytes())
        assert (document["id"], document["object"], document["name"], document["model"]) == (
            "jan",
            "assistant",
            "Jan",
            "*",
        )
        assert before <= document["created_at"] <= time.time()
        assert client.get_assistant("jan").name == "Jan"
        assert ready_line(daemon)["assistants"] == 1
    first = path.read_bytes()
    # The next start finds jan there and leaves it alone.
    with running_daemon(root) as daemon:
        assert not any(line.get("event") == "default assistant written" for line in daemon.logs)
    assert path.read_bytes() == first


def test_an_existing_jan_is_not_overwritten(tmp_path: Path) -> None:
    root = tmp_path / "assistants"
    write_json(root / "jan" / "assistant.json", {"name": "My Jan", "x-mine": [1, 2]})
    content = (root / "jan" / "assistant.json").read_bytes()
    with running_daemon(root) as daemon, Client(command=daemon.command, timeout=5) as client:
        assert client.get_assistant("jan").name == "My Jan"
        assert not any(line.get("event") == "default assistant written" for line in daemon.logs)
    assert (root / "jan" / "assistant.json").read_bytes() == content


def test_ready_names_the_root_and_both_endpoints(tmp_path: Path) -> None:
    root = tmp_path / "assistants"
    with short_tmp("rt-") as parent:
        runtime_dir = parent / "made-by-the-daemon"
        with running_daemon(root, runtime_dir=runtime_dir) as daemon:
            ready = ready_line(daemon)
            assert ready["level"] == "info"
            assert ready["root"] == str(root)
            assert ready["command"] == f"ipc://{runtime_dir}/command.sock" == daemon.command
            assert ready["events"] == f"ipc://{runtime_dir}/events.sock"
            assert all(is_socket(runtime_dir / name) for name in SOCKETS)
            assert stat.S_IMODE(runtime_dir.stat().st_mode) == 0o700


def test_a_second_daemon_on_the_same_runtime_dir_is_refused(
    tmp_path: Path, runtime_dir: Path
) -> None:
    with running_daemon(tmp_path / "first", runtime_dir=runtime_dir) as first:
        second = run_to_exit(
            ("--root", str(tmp_path / "second"), "--runtime-dir", str(runtime_dir)),
            env=clean_env(HOME=str(tmp_path)),
        )
        assert second.returncode != 0
        reasons = second.reasons()
        assert "already" in reasons, second.stderr
        assert str(runtime_dir) in reasons, second.stderr
        assert str(first.process.pid) in reasons, second.stderr
        # The first daemon lost nothing: its sockets are there and it answers.
        assert all(is_socket(runtime_dir / name) for name in SOCKETS)
        with Client(command=first.command, timeout=5) as client:
            assert client.ping().protocol_version == 1


def test_a_second_daemon_on_the_same_root_is_refused(tmp_path: Path, runtime_dir: Path) -> None:
    root = tmp_path / "assistants"
    with running_daemon(root) as first, short_tmp("rt2-") as other_runtime:
        second = run_to_exit(
            ("--root", str(root), "--runtime-dir", str(other_runtime)),
            env=clean_env(HOME=str(tmp_path)),
        )
        assert second.returncode != 0
        reasons = second.reasons()
        assert "already" in reasons, second.stderr
        assert str(root) in reasons, second.stderr
        assert not any((other_runtime / name).exists() for name in SOCKETS)
        with Client(command=first.command, timeout=5) as client:
            assert client.get_assistant("jan").id == "jan"


def test_a_refused_start_says_why_in_one_log_line_and_nothing_else(
    tmp_path: Path, runtime_dir: Path
) -> None:
    with running_daemon(tmp_path / "assistants", runtime_dir=runtime_dir):
        refused = run_to_exit(
            ("--root", str(tmp_path / "other"), "--runtime-dir", str(runtime_dir)),
            env=clean_env(HOME=str(tmp_path)),
        )
    assert refused.returncode != 0
    (line,) = [line for line in refused.logs if line.get("event") == "cannot start"]
    assert line["level"] == "error"
    # Anything that is not a log line (a warning of the interpreter, a traceback) is noise in
    # the journal at the moment a person reads it to find out what went wrong.
    others = [line for line in refused.logs if line.get("event") != "cannot start"]
    assert others == [], refused.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_signal_stops_the_daemon_cleanly(
    tmp_path: Path, runtime_dir: Path, signum: signal.Signals
) -> None:
    root = tmp_path / "assistants"
    with running_daemon(root, runtime_dir=runtime_dir) as daemon:
        with Client(command=daemon.command, timeout=5) as client:
            client.create_assistant(id="kept", name="Kept")
            daemon.process.send_signal(signum)
            assert daemon.process.wait(STOP_TIMEOUT) == 0
        daemon.wait_for_log(lambda line: line.get("event") == "stopped")
        assert not any((runtime_dir / name).exists() for name in SOCKETS)
    # Everything it held is free again: the next daemon takes the same root and runtime dir.
    with (
        running_daemon(root, runtime_dir=runtime_dir) as daemon,
        Client(command=daemon.command, timeout=5) as client,
    ):
        assert client.get_assistant("kept").name == "Kept"


def test_after_a_stop_a_client_is_told_at_once_that_no_daemon_runs(
    tmp_path: Path, runtime_dir: Path
) -> None:
    with running_daemon(tmp_path / "assistants", runtime_dir=runtime_dir) as daemon:
        assert daemon.stop() == 0
    with Client(runtime_dir=runtime_dir, timeout=3) as client:
        started = time.monotonic()
        with pytest.raises(UnavailableError) as caught:
            client.ping()
    # A socket file left behind makes the client wait out its whole timeout for nobody.
    assert caught.value.code == "daemon_not_running", caught.value
    assert time.monotonic() - started < 1


def test_a_killed_daemon_does_not_block_the_next_one(tmp_path: Path, runtime_dir: Path) -> None:
    root = tmp_path / "assistants"
    with running_daemon(root, runtime_dir=runtime_dir) as daemon:
        with Client(command=daemon.command, timeout=5) as client:
            client.create_assistant(id="survivor", name="Survivor")
        daemon.process.kill()
        daemon.process.wait(STOP_TIMEOUT)
    # What a create or delete cut short by the kill would have left.
    (root / ".staging" / "half-made").mkdir(parents=True)
    (root / ".trash" / "half-gone").mkdir(parents=True)
    with running_daemon(root, runtime_dir=runtime_dir) as daemon:
        with Client(command=daemon.command, timeout=5) as client:
            assert client.get_assistant("survivor").name == "Survivor"
        assert not (root / ".staging" / "half-made").exists()
        assert not (root / ".trash" / "half-gone").exists()


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o701])
def test_a_runtime_dir_others_can_open_is_refused(tmp_path: Path, mode: int) -> None:
    with short_tmp("rt-") as runtime_dir:
        runtime_dir.chmod(mode)
        refused = run_to_exit(
            ("--root", str(tmp_path / "assistants"), "--runtime-dir", str(runtime_dir)),
            env=clean_env(HOME=str(tmp_path)),
        )
        assert refused.returncode != 0
        reasons = refused.reasons()
        assert f"{mode:04o}" in reasons, refused.stderr
        assert "0700" in reasons, refused.stderr
        assert os.listdir(runtime_dir) == []
        assert stat.S_IMODE(runtime_dir.stat().st_mode) == mode


def test_a_runtime_dir_too_long_for_a_socket_is_refused_clearly(tmp_path: Path) -> None:
    runtime_dir = tmp_path / ("x" * 100)
    refused = run_to_exit(
        ("--root", str(tmp_path / "assistants"), "--runtime-dir", str(runtime_dir)),
        env=clean_env(HOME=str(tmp_path)),
    )
    assert refused.returncode != 0
    assert "--runtime-dir" in refused.reasons(), refused.stderr


def test_a_config_file_sets_root_and_runtime_dir(tmp_path: Path, runtime_dir: Path) -> None:
    root = tmp_path / "from config"
    config = tmp_path / "assistantd.toml"
    config.write_text(
        f'root = "{root}"\nruntime-dir = "{runtime_dir}"\nlog-format = "json"\n', encoding="utf-8"
    )
    home = tmp_path / "home"
    home.mkdir()
    with spawned_daemon(
        ("--config", str(config)),
        env=clean_env(HOME=str(home)),
        root=root,
        runtime_dir=runtime_dir,
    ) as daemon:
        ready = ready_line(daemon)
        assert (ready["root"], ready["command"]) == (str(root), daemon.command)
        with Client(runtime_dir=runtime_dir, timeout=5) as client:
            assert client.get_assistant("jan").id == "jan"
        assert (root / "jan" / "assistant.json").is_file()


def test_options_win_over_the_config_file(tmp_path: Path, runtime_dir: Path) -> None:
    config = tmp_path / "assistantd.toml"
    config.write_text(f'root = "{tmp_path / "from-config"}"\n', encoding="utf-8")
    root = tmp_path / "from-option"
    with running_daemon(root, runtime_dir=runtime_dir, args=("--config", str(config))) as daemon:
        assert ready_line(daemon)["root"] == str(root)
    assert not (tmp_path / "from-config").exists()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, ["cannot read"]),
        ('colour = "blue"\n', ["unknown key", "colour"]),
        ("root = \n", ["not valid TOML"]),
        ("root = 5\n", ["must be a string"]),
    ],
    ids=["missing", "unknown-key", "not-toml", "not-a-string"],
)
def test_a_bad_config_file_is_refused_clearly(
    tmp_path: Path, content: str | None, words: list[str]
) -> None:
    config = tmp_path / "assistantd.toml"
    if content is not None:
        config.write_text(content, encoding="utf-8")
    refused = run_to_exit(("--config", str(config)), env=clean_env(HOME=str(tmp_path)))
    assert refused.returncode != 0
    reasons = refused.reasons()
    assert str(config) in reasons, refused.stderr
    assert all(word in reasons for word in words), refused.stderr


def test_the_environment_sets_root_and_runtime_dir(
    tmp_path: Path, runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "from-env"
    env = clean_env(
        HOME=str(tmp_path),
        ASSISTANTD_ROOT=str(root),
        ASSISTANTD_RUNTIME_DIR=str(runtime_dir),
    )
    with spawned_daemon(
        ("--log-format", "json"), env=env, root=root, runtime_dir=runtime_dir
    ) as daemon:
        ready = ready_line(daemon)
        assert (ready["root"], ready["command"]) == (str(root), f"ipc://{runtime_dir}/command.sock")
        # A client finds the daemon through the same variable.
        monkeypatch.setenv("ASSISTANTD_RUNTIME_DIR", str(runtime_dir))
        with Client(timeout=5) as client:
            assert client.get_assistant("jan").id == "jan"


def test_without_xdg_variables_it_uses_home_and_a_private_temp_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with short_tmp("tmp-") as tmp:
        runtime_dir = tmp / f"assistantd-{os.getuid()}"
        root = home / ".local" / "share" / "assistantd" / "assistants"
        env = clean_env(HOME=str(home), TMPDIR=str(tmp))
        with spawned_daemon(
            ("--log-format", "json"), env=env, root=root, runtime_dir=runtime_dir
        ) as daemon:
            ready = ready_line(daemon)
            assert ready["root"] == str(root)
            assert ready["command"] == f"ipc://{runtime_dir}/command.sock"
            assert stat.S_IMODE(runtime_dir.stat().st_mode) == 0o700
            with Client(runtime_dir=runtime_dir, timeout=5) as client:
                assert client.get_assistant("jan").id == "jan"
            assert (root / "jan" / "assistant.json").is_file()


def test_xdg_variables_place_the_root_and_the_runtime_dir(tmp_path: Path) -> None:
    xdg_runtime = short_dir("xdg-")
    try:
        data_home = tmp_path / "data"
        env = clean_env(
            HOME=str(tmp_path / "home"),
            XDG_RUNTIME_DIR=str(xdg_runtime),
            XDG_DATA_HOME=str(data_home),
        )
        root = data_home / "assistantd" / "assistants"
        runtime_dir = xdg_runtime / "assistantd"
        with spawned_daemon(
            ("--log-format", "json"), env=env, root=root, runtime_dir=runtime_dir
        ) as daemon:
            ready = ready_line(daemon)
            assert (ready["root"], ready["command"]) == (
                str(root),
                f"ipc://{runtime_dir}/command.sock",
            )
            assert stat.S_IMODE(runtime_dir.stat().st_mode) == 0o700
    finally:
        shutil.rmtree(xdg_runtime, ignore_errors=True)


def test_a_bad_request_is_logged_at_warning_and_the_daemon_goes_on(daemon: DaemonProcess) -> None:
    """The log a person reads when a client misbehaves (one line, the reason, no traceback)."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        mark = log_mark(daemon)
        reply = reply_of(exchange(context, daemon.command, [b"", b"not json"]))
        assert reply["id"] is None
        line = wait_for_new_log(daemon, mark, lambda line: line.get("level") == "warning")
        assert "exception" not in line, line
        assert "not valid JSON" in str(line.get("error")), line
    finally:
        context.destroy(linger=0)
    with Client(command=daemon.command, timeout=5) as client:
        assert client.ping().protocol_version == 1
