"""assistantctl as a user runs it: a real process against a real daemon."""

from __future__ import annotations

import contextlib
import json
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.utils import DaemonProcess, running_daemon, short_dir

CTL = [sys.executable, "-m", "assistantd.ctl.main"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    root = tmp_path_factory.mktemp("ctl") / "assistants"
    root.mkdir()
    with running_daemon(root) as daemon:
        yield daemon


def ctl(
    daemon: DaemonProcess | None, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    where = ["--runtime-dir", str(daemon.runtime_dir)] if daemon else []
    return subprocess.run(
        [*CTL, *args, *where],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_list_shows_a_table_with_the_default_assistant(served: DaemonProcess) -> None:
    done = ctl(served, "list")
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "MODEL", "STATE", "CREATED"]
    assert any(row.split()[:4] == ["jan", "Jan", "*", "ready"] for row in rows)


def test_create_get_modify_delete_round_trip_in_json(served: DaemonProcess) -> None:
    created = ctl(
        served,
        "create",
        "--json",
        "--name",
        "Math tutor",
        "--model",
        "llama3",
        "--model",
        "mistral",
        "--tool",
        "code_interpreter",
        "--metadata",
        "team=edu",
        "--temperature",
        "0.5",
    )
    assert created.returncode == 0, created.stderr
    assistant = json.loads(created.stdout)
    assert assistant["id"].startswith("asst_")
    assert (assistant["model"], assistant["models"]) == ("llama3", ["llama3", "mistral"])
    assert assistant["tools"] == [{"type": "code_interpreter"}]
    assert (assistant["metadata"], assistant["temperature"]) == ({"team": "edu"}, 0.5)

    modified = ctl(served, "modify", assistant["id"], "--json", "--description", "Algebra")
    assert modified.returncode == 0, modified.stderr
    assert json.loads(modified.stdout)["description"] == "Algebra"
    assert json.loads(modified.stdout)["name"] == "Math tutor"

    shown = ctl(served, "get", assistant["id"])
    assert shown.returncode == 0
    fields = dict(line.split(None, 1) for line in shown.stdout.splitlines())
    assert fields["description"] == "Algebra"
    assert fields["models"] == "llama3, mistral"

    deleted = ctl(served, "delete", assistant["id"])
    assert (deleted.returncode, deleted.stdout) == (0, f"deleted {assistant['id']}\n")
    assert ctl(served, "get", assistant["id"]).returncode == 1


def test_create_takes_fields_from_json_on_stdin_and_options_win(served: DaemonProcess) -> None:
    done = ctl(
        served,
        "create",
        "--json",
        "--id",
        "from-stdin",
        "--from-json",
        "-",
        "--name",
        "From the option",
        stdin=json.dumps({"name": "From stdin", "instructions": "Be brief.", "file_ids": ["f1"]}),
    )
    assert done.returncode == 0, done.stderr
    assistant = json.loads(done.stdout)
    assert assistant["id"] == "from-stdin"
    assert (assistant["name"], assistant["instructions"]) == ("From the option", "Be brief.")
    assert (served.root / "from-stdin" / "assistant.json").is_file()


def test_list_pages_and_all(served: DaemonProcess) -> None:
    for index in range(3):
        assert ctl(served, "create", "--id", f"page-{index}").returncode == 0
    first = ctl(served, "list", "--limit", "2", "--order", "asc")
    assert first.returncode == 0
    assert "(more: assistantctl list --after " in first.stdout
    everything = json.loads(ctl(served, "list", "--all", "--json").stdout)
    ids = [assistant["id"] for assistant in everything]
    assert len(ids) == len(set(ids))
    assert {"jan", "page-0", "page-1", "page-2"} <= set(ids)


def test_an_error_from_the_daemon_says_why_and_exits_1(served: DaemonProcess) -> None:
    done = ctl(served, "get", "nobody")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "No assistant found with id 'nobody'" in done.stderr
    assert "404" in done.stderr


def test_an_error_in_json_mode_is_an_error_object_on_stderr(served: DaemonProcess) -> None:
    done = ctl(served, "delete", "jan", "--json")
    assert done.returncode == 1
    error = json.loads(done.stderr)["error"]
    assert (error["status"], error["code"], error["param"]) == (
        403,
        "default_assistant",
        "assistant_id",
    )


def test_a_bad_value_is_refused_by_the_daemon_with_the_param(served: DaemonProcess) -> None:
    done = ctl(served, "create", "--temperature", "3")
    assert done.returncode == 1
    assert "temperature" in done.stderr
    assert "decimal_above_max_value" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("modify", "jan"), "nothing to change"),
        (("create", "--metadata", "no-equals-sign"), "KEY=VALUE"),
        (("request", "ping", "[1]"), "JSON object"),
        (("list", "--order", "sideways"), "invalid choice"),
    ],
)
def test_bad_usage_exits_2(served: DaemonProcess, args: tuple[str, ...], message: str) -> None:
    done = ctl(served, *args)
    assert done.returncode == 2
    assert message in done.stderr


def test_request_sends_any_method(served: DaemonProcess) -> None:
    done = ctl(served, "request", "ping")
    assert done.returncode == 0
    assert json.loads(done.stdout)["protocol_version"] == 1


def test_ping_shows_the_daemon(served: DaemonProcess) -> None:
    done = ctl(served, "ping")
    assert done.returncode == 0
    fields = dict(line.split(None, 1) for line in done.stdout.splitlines())
    assert fields["protocol"] == "1"
    assert fields["endpoint"] == served.command


def test_no_daemon_is_told_at_once_with_exit_3() -> None:
    empty = short_dir()
    done = subprocess.run(
        [*CTL, "--runtime-dir", str(empty), "list"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 3
    assert "No daemon is listening" in done.stderr


def test_a_daemon_found_through_the_environment(tmp_path: Path) -> None:
    root = tmp_path / "assistants"
    root.mkdir()
    with running_daemon(root) as daemon:
        done = subprocess.run(
            [*CTL, "get", "jan", "--json"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={"ASSISTANTD_RUNTIME_DIR": str(daemon.runtime_dir), "PATH": "/usr/bin:/bin"},
        )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"] == "jan"


@pytest.mark.parametrize(
    "command", [[], ["list"], ["get"], ["create"], ["modify"], ["delete"], ["watch"]]
)
def test_help_everywhere(command: list[str]) -> None:
    done = subprocess.run(
        [*CTL, *command, "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0
    assert done.stdout.startswith("usage: assistantctl")


# --- watch: a long-running command --------------------------------------------------------------


class Watching:
    """``assistantctl watch`` as a running process, its output lines read as they come."""

    def __init__(self, daemon: DaemonProcess, *args: str) -> None:
        self.process = subprocess.Popen(
            [*CTL, "watch", *args, "--runtime-dir", str(daemon.runtime_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def line(self, timeout: float = 10.0) -> str:
        line = self._lines.get(timeout=timeout)
        assert line is not None, f"the watch ended: {self.stderr()}"
        return line

    def interrupt(self, timeout: float = 10.0) -> int:
        """Ctrl-C, as a terminal sends it; the exit code."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout)

    def stderr(self) -> str:
        if self.process.poll() is None:
            return ""
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@contextlib.contextmanager
def watching(daemon: DaemonProcess, *args: str) -> Iterator[Watching]:
    watch = Watching(daemon, *args)
    try:
        yield watch
    finally:
        watch.close()


def test_watch_json_prints_each_event_and_stops_cleanly_on_ctrl_c(served: DaemonProcess) -> None:
    with watching(served, "--json") as watch:
        synced = json.loads(watch.line())
        assert (synced["topic"], synced["reason"]) == ("client.synced", "start")
        assert ctl(served, "create", "--id", "watched", "--name", "Watched").returncode == 0
        assert ctl(served, "delete", "watched").returncode == 0
        created, deleted = json.loads(watch.line()), json.loads(watch.line())
        assert created["topic"] == "assistant.created"
        assert (created["assistant"]["id"], created["assistant"]["name"]) == ("watched", "Watched")
        assert (created["seq"], created["epoch"]) == (synced["seq"] + 1, synced["epoch"])
        assert created["cause"] == "request"
        assert deleted["topic"] == "assistant.deleted"
        assert (deleted["assistant_id"], deleted["seq"]) == ("watched", synced["seq"] + 2)
        assert watch.interrupt() == 0
        assert watch.stderr() == ""  # no traceback


def test_watch_prints_a_line_per_event_for_people_and_takes_a_prefix(
    served: DaemonProcess,
) -> None:
    with watching(served, "assistant.deleted") as watch:
        assert "client.synced" in watch.line()
        assert ctl(served, "create", "--id", "brief", "--name", "Brief").returncode == 0
        assert ctl(served, "delete", "brief").returncode == 0
        # Only the delete: the create does not match the prefix.
        stamp, topic, seq, assistant_id, cause = watch.line().split()
        assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", stamp)
        assert (topic, assistant_id, cause) == ("assistant.deleted", "brief", "(request)")
        assert re.fullmatch(r"seq=\d+", seq)
        assert watch.interrupt() == 0
        assert watch.stderr() == ""


def test_watch_with_no_daemon_exits_3_at_once() -> None:
    done = subprocess.run(
        [*CTL, "watch", "--runtime-dir", str(short_dir())],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 3
    assert "No daemon is listening" in done.stderr
