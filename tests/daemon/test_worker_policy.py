"""The pure parts of supervision: the restart policy, the ``[workers]`` settings, what a worker
is started with, and the file of running assistants (including broken ones on disk)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from assistantd.daemon.config import ConfigError, resolve
from assistantd.daemon.workers.backoff import Backoff
from assistantd.daemon.workers.desired import RUNNING_FILE, DesiredState
from assistantd.daemon.workers.host import DEFAULT_WORKER, PRELOAD
from assistantd.daemon.workers.launch import launch_for, needs_install, worker_env
from assistantd.daemon.workers.settings import WorkerSettings


def policy(**overrides: float) -> Backoff:
    values = {"initial": 0.1, "maximum": 30.0, "stable_after": 10.0, "limit": 10, "window": 300.0}
    values.update(overrides)
    return Backoff(
        initial=values["initial"],
        maximum=values["maximum"],
        stable_after=values["stable_after"],
        limit=int(values["limit"]),
        window=values["window"],
        jitter=lambda: 1.0,
    )


# -- the restart policy -------------------------------------------------------------------------


def test_the_wait_doubles_up_to_the_cap() -> None:
    backoff = policy(limit=20, window=1e9)
    delays = [backoff.next_delay(now=float(n), up_for=0.0) for n in range(12)]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert delays[-1] == 30.0
    assert max(d for d in delays if d is not None) == 30.0


def test_a_stable_start_resets_the_wait() -> None:
    backoff = policy()
    for n in range(4):
        backoff.next_delay(now=float(n), up_for=0.0)
    assert backoff.next_delay(now=100.0, up_for=10.0) == 0.1
    assert backoff.next_delay(now=101.0, up_for=0.5) == 0.2


def test_the_limit_counts_restarts_within_the_window_only() -> None:
    backoff = policy(limit=3, window=60.0)
    assert [backoff.next_delay(now=t, up_for=20.0) for t in (0.0, 10.0, 20.0)] == [0.1] * 3
    assert backoff.next_delay(now=30.0, up_for=20.0) is None  # a fourth within 60 s
    assert backoff.restarts == 3
    # Sixty seconds after the first, it has left the window: one more is allowed.
    assert backoff.next_delay(now=60.0, up_for=20.0) == 0.1


def test_jitter_stays_between_half_and_the_whole_wait() -> None:
    backoff = Backoff(initial=1.0, maximum=1.0, stable_after=10.0, limit=1000, window=1.0)
    delays = [backoff.next_delay(now=float(n), up_for=0.0) for n in range(500)]
    assert all(d is not None and 0.5 <= d <= 1.0 for d in delays)
    assert len(set(delays)) > 100  # random, not one fixed factor


def test_a_reset_forgets_every_restart() -> None:
    backoff = policy(limit=1)
    assert backoff.next_delay(now=0.0, up_for=0.0) == 0.1
    assert backoff.next_delay(now=1.0, up_for=0.0) is None
    backoff.reset()
    assert backoff.restarts == 0
    assert backoff.next_delay(now=2.0, up_for=0.0) == 0.1


# -- the [workers] settings ---------------------------------------------------------------------


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_workers_table_is_read(tmp_path: Path) -> None:
    path = config(
        tmp_path,
        '[workers]\nnode = "/opt/node/bin/node"\npass-env = ["OPENAI_API_KEY"]\n'
        "stop-timeout = 2\nrestart-limit = 3\nnpm-scripts = true\nbackoff-initial = 0.5\n",
    )
    workers = resolve({"config": str(path)}, env={}, home=tmp_path).workers
    assert workers.node == "/opt/node/bin/node"
    assert workers.pass_env == ("OPENAI_API_KEY",)
    assert workers.stop_timeout == 2.0
    assert workers.restart_limit == 3
    assert workers.npm_scripts is True
    assert workers.backoff_initial == 0.5
    assert workers.invoke_timeout == WorkerSettings().invoke_timeout  # the rest are defaults


def test_no_workers_table_means_the_defaults(tmp_path: Path) -> None:
    path = config(tmp_path, 'log-level = "debug"\n')
    assert resolve({"config": str(path)}, env={}, home=tmp_path).workers == WorkerSettings()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[workers]\nstop-timeout = -1\n", "stop-timeout must be a positive number"),
        ("[workers]\nstop-timeout = 0\n", "stop-timeout must be a positive number"),
        ('[workers]\nstop-timeout = "5"\n', "stop-timeout must be a positive number"),
        ("[workers]\nstart-timeout = true\n", "start-timeout must be a positive number"),
        ("[workers]\nrestart-limit = 1.5\n", "restart-limit must be a whole number"),
        ("[workers]\nrestart-limit = -2\n", "restart-limit must be a whole number"),
        ('[workers]\nnpm-scripts = "yes"\n', "npm-scripts must be true or false"),
        ('[workers]\nnode = ""\n', "node must be a non-empty string"),
        ('[workers]\npass-env = "HOME"\n', "pass-env must be a list of names"),
        ('[workers]\npass-env = ["A=B"]\n', "pass-env must be a list of names"),
        ("[workers]\nbackoff-initial = 5\nbackoff-max = 1\n", "backoff-max is less than"),
        ("[workers]\nretries = 3\n", "unknown key 'retries' in [workers]"),
        ('workers = "fast"\n', "'workers' must be a table"),
    ],
)
def test_bad_workers_tables_are_refused_by_name(tmp_path: Path, text: str, words: str) -> None:
    path = config(tmp_path, text)
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        resolve({"config": str(path)}, env={}, home=tmp_path)


# -- what a worker is started with --------------------------------------------------------------


def test_a_folder_without_code_gets_the_default_worker(tmp_path: Path) -> None:
    launch = launch_for(tmp_path, "jan", WorkerSettings(), {"PATH": "/bin"})
    assert launch.args == (str(DEFAULT_WORKER),)
    assert launch.entry is None
    assert launch.cwd == tmp_path


@pytest.mark.parametrize("name", ["process.js", "process.mjs", "process.cjs"])
def test_code_runs_as_the_main_module_after_the_preload(tmp_path: Path, name: str) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / name).write_text("")
    launch = launch_for(tmp_path, "a", WorkerSettings(), {})
    assert launch.args == ("--require", str(PRELOAD), f"src/{name}")


def test_process_js_wins_over_the_other_names(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    for name in ("process.cjs", "process.mjs", "process.js"):
        (tmp_path / "src" / name).write_text("")
    assert launch_for(tmp_path, "a", WorkerSettings(), {}).args[-1] == "src/process.js"


def test_a_folder_named_process_js_is_not_code(tmp_path: Path) -> None:
    (tmp_path / "src" / "process.js").mkdir(parents=True)
    assert launch_for(tmp_path, "a", WorkerSettings(), {}).entry is None


def test_the_environment_is_clean() -> None:
    daemon_env = {
        "PATH": "/usr/bin",
        "HOME": "/home/ada",
        "LC_CTYPE": "C.UTF-8",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "NODE_OPTIONS": "--require /tmp/evil.js",
        "ASSISTANTD_RUNTIME_DIR": "/run/user/1000/assistantd",
        "OPENAI_API_KEY": "sk-1",
    }
    env = worker_env("asst_1", WorkerSettings(pass_env=("OPENAI_API_KEY", "UNSET")), daemon_env)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/ada",
        "LC_CTYPE": "C.UTF-8",
        "OPENAI_API_KEY": "sk-1",
        "ASSISTANTD_ASSISTANT_ID": "asst_1",
    }


@pytest.mark.parametrize(
    ("package", "node_modules", "expected"),
    [
        (None, False, False),
        ({"name": "a"}, False, False),
        ({"dependencies": {}}, False, False),
        ({"devDependencies": {"x": "1"}}, False, False),
        ({"dependencies": {"x": "1"}}, False, True),
        ({"dependencies": {"x": "1"}}, True, False),
        ("{not json", False, True),  # npm says what is wrong, in the worker's log
        ([1, 2], False, False),
    ],
)
def test_needs_install(tmp_path: Path, package: object, node_modules: bool, expected: bool) -> None:
    if package is not None:
        text = package if isinstance(package, str) else json.dumps(package)
        (tmp_path / "package.json").write_text(text)
    if node_modules:
        (tmp_path / "node_modules").mkdir()
    assert needs_install(tmp_path) is expected


# -- the file of running assistants -------------------------------------------------------------


def test_running_assistants_survive_a_reload(tmp_path: Path) -> None:
    desired = DesiredState(tmp_path)
    assert desired.load() == frozenset()
    assert desired.set("jan", True) is True
    assert desired.set("jan", True) is False  # no change, no write needed
    desired.set("asst_1", True)
    desired.set("asst_1", False)
    desired.save()
    assert json.loads((tmp_path / RUNNING_FILE).read_text()) == {"running": ["jan"]}
    assert DesiredState(tmp_path).load() == {"jan"}
    assert [p.name for p in tmp_path.iterdir()] == [RUNNING_FILE]  # no temporary file left


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        '{"running": "jan"}',
        '{"running": null}',
        "",
        "\x00\xff",
    ],
)
def test_a_broken_running_file_means_none_running(tmp_path: Path, content: str) -> None:
    (tmp_path / RUNNING_FILE).write_bytes(content.encode("utf-8", "surrogateescape"))
    assert DesiredState(tmp_path).load() == frozenset()


def test_a_save_cut_short_leaves_nothing_after_the_next_load(tmp_path: Path) -> None:
    (tmp_path / ".running.x8f2k.tmp").write_text('{"running": ["ha')
    (tmp_path / RUNNING_FILE).write_text('{"running": ["jan"]}')
    assert DesiredState(tmp_path).load() == {"jan"}
    assert [p.name for p in tmp_path.iterdir()] == [RUNNING_FILE]


def test_ids_that_could_not_be_assistants_are_dropped(tmp_path: Path) -> None:
    names = ["jan", "../etc", "", ".hidden", 3, None, "a/b", "ok"]
    (tmp_path / RUNNING_FILE).write_text(json.dumps({"running": names}))
    assert DesiredState(tmp_path).load() == {"jan", "ok"}


def test_an_unreadable_running_file_means_none_running(tmp_path: Path) -> None:
    (tmp_path / RUNNING_FILE).mkdir()  # a folder where the file should be
    assert DesiredState(tmp_path).load() == frozenset()
    assert os.path.isdir(tmp_path / RUNNING_FILE)  # and nothing was destroyed
