"""The units of systemd/ (issue 6), read by systemd's own tools and installed as a user would.

- ``systemd-analyze verify`` reads every unit as ``assistantctl service install`` writes it
  (real paths filled in). It exits 0 on an unknown key or a ``Type=`` it cannot parse, so any
  line it prints about our files fails the test.
- ``systemd-analyze security --offline=yes`` rates the system unit: at most 2.0 exposed.
  (``--threshold`` counts on the 0-100 scale behind the 0.0-10.0 it prints: 2.0 is 20.)
- The real daemon, its Node workers, an ``npm install`` and a download run under the seccomp
  filter the system unit asks for (``tests/systemd/seccomp.py``), which this is the only way to
  check where systemd cannot start the unit.
- The sysusers.d and tmpfiles.d lines make the user and the runtime folder in a scratch root.
- ``assistantctl service install`` and ``uninstall`` run as a user runs them.
- Where a systemd user manager runs, the user units are started for real.

These need systemd's tools (``systemd-analyze`` and the like); each test that needs one is
skipped, saying which, where it is not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistantd.client import Client
from assistantd.ctl import service
from assistantd.ctl.main import build_parser
from assistantd.protocol.endpoints import COMMAND_SOCKET, EVENTS_SOCKET
from tests.e2e.httpserver import http_server
from tests.e2e.workers import write_config
from tests.systemd.seccomp import filter_of_unit, libseccomp
from tests.utils import running_daemon, short_dir

CTL = [sys.executable, "-m", "assistantd.ctl.main"]
TEMPLATES = Path(__file__).resolve().parents[2] / "systemd"
SAMPLES = Path(__file__).resolve().parents[1] / "assistants"
UNITS = ("assistantd-command.socket", "assistantd-events.socket", "assistantd.service")
THE_ASSISTANTD = str(Path(sys.executable).parent / "assistantd")
"""The program a user install runs: the one beside the Python running assistantctl here."""

STAGED_PROGRAM = "/opt/assistantd/bin/assistantd"
"""The program of system units staged with --destdir: a path on the target, not looked at."""

EXPOSURE_MAX = 2.0
COMMAND_TIMEOUT = 60.0

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze (systemd's tools) is not installed: the units cannot be checked",
)


# --- helpers -----------------------------------------------------------------------------------


def ctl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``assistantctl ARGS`` as a process, with ``env`` over this environment."""
    return subprocess.run(
        [*CTL, *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
        env={**os.environ, **(env or {})},
    )


def install_user(config_home: Path) -> Path:
    """The user units as ``service install --user`` writes them for ``XDG_CONFIG_HOME``; their
    folder."""
    done = ctl("service", "install", "--user", env={"XDG_CONFIG_HOME": str(config_home)})
    assert done.returncode == 0, done.stderr
    return config_home / "systemd" / "user"


def install_system(destdir: Path, program: str = STAGED_PROGRAM) -> Path:
    """The system units and files, staged under ``destdir``; the folder of the units."""
    done = ctl("service", "install", "--system", "--destdir", str(destdir), "--assistantd", program)
    assert done.returncode == 0, done.stderr
    return destdir / "etc" / "systemd" / "system"


def an_existing_program() -> str:
    """A real program outside the folders the system unit cannot see, for ``verify``, which
    checks that ExecStart= can be run (the path of the program is all that matters there)."""
    program = shutil.which("true", path="/usr/bin:/bin")
    assert program is not None
    return program


def analyze(*args: str, runtime_dir: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze ARGS`` in an environment of its own (it needs XDG_RUNTIME_DIR for
    ``--user`` and ``%t``; no HOME or XDG config of the user running the tests)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(runtime_dir),
        "XDG_RUNTIME_DIR": str(runtime_dir),
        "XDG_CONFIG_HOME": str(runtime_dir / "config"),
        "LANG": "C.UTF-8",
    }
    return subprocess.run(
        ["systemd-analyze", *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
        env=env,
    )


def verify_problems(files: list[Path], *, user: bool, runtime_dir: Path) -> list[str]:
    """Every line ``systemd-analyze verify`` prints about ``files`` (or about nothing in
    particular), with its exit code if that is not 0.

    A line that names a unit file elsewhere (``/usr/lib/systemd/system/x.service:12: ...``) is
    the host's, pulled in by a dependency, and not ours to fix: it is left out.
    """
    scope = ["--user"] if user else []
    done = analyze(*scope, "verify", *map(str, files), runtime_dir=runtime_dir)
    ours = {str(file.parent) for file in files}
    problems = []
    for line in (done.stdout + done.stderr).splitlines():
        elsewhere = re.match(r"(/\S+?):\d+: ", line)
        if elsewhere and str(Path(elsewhere.group(1)).parent) not in ours:
            continue
        if line.strip():
            problems.append(line)
    if done.returncode != 0:
        problems.append(f"(exit code {done.returncode})")
    return problems


def exposure_of(unit: Path, runtime_dir: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    """The overall exposure ``systemd-analyze security`` gives ``unit`` (0.0 to 10.0)."""
    threshold = round(EXPOSURE_MAX * 10)  # its threshold counts tenths
    done = analyze(
        "security",
        "--offline=yes",
        f"--threshold={threshold}",
        "--no-pager",
        str(unit),
        runtime_dir=runtime_dir,
    )
    figure = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert figure is not None, f"no exposure in the output: {done.stdout}{done.stderr}"
    return float(figure.group(1)), done


def settings_of(text: str) -> list[str]:
    """A unit's lines that are settings (``Key=value``), comments and sections left out."""
    return [line for line in text.splitlines() if re.match(r"[A-Za-z]+=", line)]


def parse_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


# --- systemd-analyze ---------------------------------------------------------------------------


@needs_analyze
def test_the_user_units_verify_without_a_word(tmp_path: Path) -> None:
    units = install_user(tmp_path / "config")
    files = [units / name for name in UNITS]
    assert verify_problems(files, user=True, runtime_dir=tmp_path) == []


@needs_analyze
def test_the_system_units_verify_without_a_word(tmp_path: Path) -> None:
    units = install_system(tmp_path / "root", an_existing_program())
    files = [units / name for name in UNITS]
    assert verify_problems(files, user=False, runtime_dir=tmp_path) == []


@needs_analyze
@pytest.mark.parametrize(
    ("change", "said"),
    [
        (("\nType=notify\n", "\nTpye=notify\n"), "Unknown key"),
        # systemd 252 (Debian 12) has no notify-reload: the reason the units avoid it.
        (("\nType=notify\n", "\nType=notify-reload\n"), "Failed to parse service type"),
        (("\nExecStart=", "\nExecStart=/nonexistent"), "not executable"),
    ],
)
def test_verify_is_heard_on_what_systemd_only_warns_about(
    tmp_path: Path, change: tuple[str, str], said: str
) -> None:
    """systemd-analyze exits 0 for these: only its output tells, and the check above hears it."""
    units = install_user(tmp_path / "config")
    unit = units / "assistantd.service"
    text = unit.read_text()
    assert change[0] in text
    unit.write_text(text.replace(*change))
    problems = verify_problems([unit], user=True, runtime_dir=tmp_path)
    assert any(said in line for line in problems), problems


@needs_analyze
def test_the_system_service_is_exposed_2_0_at_most(tmp_path: Path) -> None:
    units = install_system(tmp_path / "root", an_existing_program())
    exposure, done = exposure_of(units / "assistantd.service", tmp_path)
    report = f"systemd-analyze security rates the system unit {exposure} exposed "
    report += f"(at most {EXPOSURE_MAX} wanted):\n{done.stdout}{done.stderr}"
    assert exposure <= EXPOSURE_MAX, report
    assert done.returncode == 0, report


def test_the_system_service_leaves_nodes_jit_alone() -> None:
    """MemoryDenyWriteExecute= would lower the exposure and break every worker: V8 writes the
    machine code it then runs."""
    settings = settings_of((TEMPLATES / "system" / "assistantd.service").read_text())
    assert not [line for line in settings if line.startswith("MemoryDenyWriteExecute=")]
    assert "NoNewPrivileges=yes" in settings


def test_the_sockets_are_where_the_daemon_and_its_clients_look() -> None:
    """The socket units listen at the daemon's default runtime dir (``$XDG_RUNTIME_DIR/
    assistantd``, ``%t`` for both managers), with the names the daemon takes them by."""
    for folder in (TEMPLATES, TEMPLATES / "system"):
        for role, file_name in (("command", COMMAND_SOCKET), ("events", EVENTS_SOCKET)):
            settings = settings_of((folder / f"assistantd-{role}.socket").read_text())
            assert f"ListenStream=%t/assistantd/{file_name}" in settings
            assert f"FileDescriptorName={role}" in settings
            assert {"SocketMode=0600", "DirectoryMode=0700"} <= set(settings)
        service_settings = settings_of((folder / "assistantd.service").read_text())
        assert "Environment=ASSISTANTD_RUNTIME_DIR=%t/assistantd" in service_settings


# --- the system unit's syscall filter, applied to the real daemon --------------------------------


@needs_analyze
@pytest.mark.skipif(libseccomp() is None, reason="libseccomp.so.2 is not installed")
@pytest.mark.timeout(180)
def test_the_daemon_and_its_node_workers_run_under_the_system_units_syscall_filter() -> None:
    """Workers of every style, an npm install and a download, under SystemCallFilter=,
    RestrictAddressFamilies= and SystemCallErrorNumber= of the system unit. (libzmq's I/O
    threads call sched_setscheduler and abort if it fails; setpriv, which arms the workers'
    death signal, calls capset: the unit allows both, and this would catch a filter that
    does not.)"""
    unit = (TEMPLATES / "system" / "assistantd.service").read_text()
    base = short_dir("seccomp-")
    try:
        spec = base / "filter.json"
        spec.write_text(json.dumps(filter_of_unit(unit)))
        wrapper = (sys.executable, "-m", "tests.systemd.seccomp", str(spec), "--")
        root = base / "assistants"
        root.mkdir()
        for name in ("with-deps", "jan-module", "fork-echo"):
            shutil.copytree(
                SAMPLES / name, root / name, ignore=shutil.ignore_patterns("node_modules")
            )
        config = write_config(base / "assistantd.toml")
        npm = {"npm_config_offline": "true", "npm_config_cache": str(base / "npm-cache")}
        with (
            http_server() as server,
            running_daemon(
                root, args=("--config", str(config)), env=npm, wrapper=wrapper
            ) as daemon,
            Client(runtime_dir=daemon.runtime_dir, timeout=60) as client,
        ):
            worker = client.start_assistant("with-deps").runtime  # npm install first
            assert worker is not None
            assert worker.pid is not None
            for pid in (daemon.process.pid, worker.pid):  # the filters are in force (mode 2)
                assert "\nSeccomp:\t2\n" in Path(f"/proc/{pid}/status").read_text()
            assert client.invoke_assistant("with-deps", "shout", "hi") == "HI!"
            client.start_assistant("jan-module")
            assert client.invoke_assistant("jan-module", "add", 2, 3) == 5
            client.start_assistant("fork-echo")  # a child_process.fork() style worker
            assert client.invoke_assistant("fork-echo", "upper", "quiet") == "QUIET"

            definition = {"name": "Fetched", "model": "*"}
            url = server.serve("/fetched/assistant.json", json.dumps(definition).encode())
            fetched = ctl(
                "--runtime-dir", str(daemon.runtime_dir), "download", url, "--start", "--json"
            )
            assert fetched.returncode == 0, fetched.stderr
            assert client.invoke_assistant("fetched", "ping") == "pong"

            for name in ("with-deps", "jan-module", "fork-echo", "fetched"):
                stopped = client.stop_assistant(name)
                assert stopped.runtime is not None
                assert stopped.runtime.last_exit is not None
                assert stopped.runtime.last_exit.code == 0, stopped.runtime.last_exit
    finally:
        shutil.rmtree(base, ignore_errors=True)


@needs_analyze
@pytest.mark.skipif(libseccomp() is None, reason="libseccomp.so.2 is not installed")
@pytest.mark.parametrize(
    ("code", "refused"),
    [
        ("import os; os.setuid(os.getuid())", "PermissionError"),  # @privileged
        ("import socket; socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)", "Errno 97"),
    ],
)
def test_the_filter_model_does_refuse_what_the_unit_refuses(
    tmp_path: Path, code: str, refused: str
) -> None:
    """The test above means something only if the filter is in force: here it refuses."""
    spec = tmp_path / "filter.json"
    spec.write_text(
        json.dumps(filter_of_unit(TEMPLATES.joinpath("system/assistantd.service").read_text()))
    )
    wrapper = [sys.executable, "-m", "tests.systemd.seccomp", str(spec), "--"]
    done = subprocess.run(
        [*wrapper, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert done.returncode != 0, done.stderr
    assert refused in done.stderr


# --- sysusers.d and tmpfiles.d -------------------------------------------------------------------


@pytest.mark.skipif(
    shutil.which("systemd-sysusers") is None or shutil.which("systemd-tmpfiles") is None,
    reason="systemd-sysusers or systemd-tmpfiles is not installed",
)
@pytest.mark.skipif(
    os.geteuid() != 0, reason="tmpfiles makes a folder owned by another user: that needs root"
)
def test_sysusers_and_tmpfiles_make_the_user_and_its_private_runtime_folder(tmp_path: Path) -> None:
    scratch = tmp_path / "root"
    install_system(scratch)
    (scratch / "etc").mkdir(exist_ok=True)
    for command in (
        ["systemd-sysusers", f"--root={scratch}", str(scratch / "etc/sysusers.d/assistantd.conf")],
        [
            "systemd-tmpfiles",
            f"--root={scratch}",
            "--create",
            str(scratch / "etc/tmpfiles.d/assistantd.conf"),
        ],
    ):
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
    users = {
        line.split(":")[0]: line.split(":")
        for line in (scratch / "etc/passwd").read_text().splitlines()
    }
    user = users["assistantd"]
    assert (user[5], user[6].endswith("nologin")) == ("/var/lib/assistantd", True)
    runtime = (scratch / "run" / "assistantd").stat()
    assert (runtime.st_uid, stat.S_IMODE(runtime.st_mode)) == (int(user[2]), 0o700)


# --- assistantctl service ----------------------------------------------------------------------


def test_install_dry_run_prints_the_units_and_what_to_run_next(tmp_path: Path) -> None:
    config_home = tmp_path / "config"
    done = ctl(
        "service", "install", "--user", "--dry-run", env={"XDG_CONFIG_HOME": str(config_home)}
    )
    assert done.returncode == 0, done.stderr
    for name in UNITS:
        assert f"# {config_home}/systemd/user/{name}\n" in done.stdout
    assert f"\nExecStart={THE_ASSISTANTD}\n" in done.stdout
    assert "@ASSISTANTD@" not in done.stdout
    assert "  systemctl --user daemon-reload\n" in done.stdout
    assert f"  systemctl --user enable --now {' '.join(UNITS)}\n" in done.stdout
    assert not config_home.exists()  # nothing written


def test_install_writes_the_units_with_the_absolute_path_of_assistantd(tmp_path: Path) -> None:
    config_home = tmp_path / "config"
    env = {"XDG_CONFIG_HOME": str(config_home)}
    done = ctl("service", "install", env=env)  # --user is the default
    assert done.returncode == 0, done.stderr
    units = config_home / "systemd" / "user"
    assert sorted(path.name for path in units.iterdir()) == sorted(UNITS)
    for name in UNITS:
        assert f"wrote {units / name}\n" in done.stdout
        assert stat.S_IMODE((units / name).stat().st_mode) == 0o644
        assert "@ASSISTANTD@" not in (units / name).read_text()
    settings = settings_of((units / "assistantd.service").read_text())
    assert f"ExecStart={THE_ASSISTANTD}" in settings
    assert Path(THE_ASSISTANTD).is_absolute()
    for template in (TEMPLATES / "assistantd.service", TEMPLATES / "system/assistantd.service"):
        assert template.read_text().count("@ASSISTANTD@") == 1  # in ExecStart= alone

    again = ctl("service", "install", env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("unchanged ") == len(UNITS)


def test_uninstall_removes_the_units_and_their_enable_links_only(tmp_path: Path) -> None:
    config_home = tmp_path / "config"
    env = {"XDG_CONFIG_HOME": str(config_home)}
    units = install_user(config_home)
    # What `systemctl --user enable` makes, and a unit of someone else's.
    links = [
        units / "default.target.wants" / "assistantd.service",
        units / "sockets.target.wants" / "assistantd-command.socket",
    ]
    for link in links:
        link.parent.mkdir(exist_ok=True)
        link.symlink_to(units / link.name)
    other = units / "sockets.target.wants" / "other.socket"
    other.symlink_to(units / "other.socket")

    done = ctl("service", "uninstall", env=env)
    assert done.returncode == 0, done.stderr
    assert [
        path
        for path in [*links, *(units / name for name in UNITS)]
        if path.is_symlink() or path.exists()
    ] == []
    assert other.is_symlink()
    assert f"  systemctl --user stop {' '.join(UNITS)}\n" in done.stdout


def test_install_system_stages_the_units_the_user_and_the_runtime_folder(tmp_path: Path) -> None:
    destdir = tmp_path / "stage"
    done = ctl(
        "service", "install", "--system", "--destdir", str(destdir), "--assistantd", STAGED_PROGRAM
    )
    assert done.returncode == 0, done.stderr
    written = sorted(
        str(path.relative_to(destdir)) for path in destdir.rglob("*") if path.is_file()
    )
    assert written == [
        "etc/systemd/system/assistantd-command.socket",
        "etc/systemd/system/assistantd-events.socket",
        "etc/systemd/system/assistantd.service",
        "etc/sysusers.d/assistantd.conf",
        "etc/tmpfiles.d/assistantd.conf",
    ]
    service_settings = settings_of((destdir / "etc/systemd/system/assistantd.service").read_text())
    assert f"ExecStart={STAGED_PROGRAM}" in service_settings
    assert "User=assistantd" in service_settings
    steps = done.stdout.split("\n")
    assert steps.index("  systemd-sysusers /etc/sysusers.d/assistantd.conf") < steps.index(
        f"  systemctl enable --now {' '.join(UNITS)}"
    )


@pytest.mark.parametrize(
    "program",
    ["/home/ada/.local/bin/assistantd", "/root/venv/bin/assistantd", "/tmp/x/assistantd"],  # noqa: S108 - a path refused
)
def test_the_system_service_refuses_a_program_it_cannot_see(tmp_path: Path, program: str) -> None:
    destdir = tmp_path / "stage"
    done = ctl("service", "install", "--system", "--destdir", str(destdir), "--assistantd", program)
    assert done.returncode == 1
    assert f"the system service cannot run {program}" in done.stderr
    assert "ProtectHome=" in done.stderr
    assert not destdir.exists()


def test_installing_the_system_service_needs_root(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --destdir nothing is written by a user who cannot write /etc, and the error
    says so. (In-process, with another euid: the tests may well run as root.)"""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    args = parse_args("service", "install", "--system", "--assistantd", an_existing_program())
    assert service.run(args) == 1
    assert "only root may do: run it as root" in capsys.readouterr().err


def test_a_path_that_needs_quoting_is_written_so_that_systemd_reads_it_back(tmp_path: Path) -> None:
    folder = tmp_path / "my tools 100%"
    folder.mkdir()
    program = folder / "assistantd"
    shutil.copy(an_existing_program(), program)
    config_home = tmp_path / "config"
    done = ctl(
        "service",
        "install",
        "--assistantd",
        str(program),
        env={"XDG_CONFIG_HOME": str(config_home)},
    )
    assert done.returncode == 0, done.stderr
    unit = config_home / "systemd" / "user" / "assistantd.service"
    assert f'ExecStart="{str(program).replace("%", "%%")}"' in settings_of(unit.read_text())
    if shutil.which("systemd-analyze") is not None:  # which checks that it runs that program
        files = [unit.parent / name for name in UNITS]
        assert verify_problems(files, user=True, runtime_dir=tmp_path) == []


def test_a_path_a_unit_cannot_hold_is_refused(tmp_path: Path) -> None:
    done = ctl("service", "install", "--dry-run", "--assistantd", "/opt/$HOME/assistantd")
    assert done.returncode == 1
    assert "ExecStart= would read as syntax" in done.stderr


# --- for real, under a systemd user manager ------------------------------------------------------


def user_manager_problem() -> str | None:
    """Why no systemd user manager can start units here, or None when one can."""
    if shutil.which("systemctl") is None:
        return "systemctl is not installed"
    done = subprocess.run(
        ["systemctl", "--user", "is-system-running"],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    state = done.stdout.strip()
    if state in ("running", "degraded") and os.environ.get("XDG_RUNTIME_DIR"):
        return None
    pid1 = Path("/proc/1/comm").read_text().strip()
    booted = Path("/run/systemd/system").is_dir()
    said = f"{state or 'nothing'!r} (exit {done.returncode}"
    said += f", {done.stderr.strip()})" if done.stderr.strip() else ")"
    return (
        f"no systemd user manager to start the units: `systemctl --user is-system-running` "
        f"answered {said}; "
        f"PID 1 is {pid1!r}, /run/systemd/system {'exists' if booted else 'does not exist'}, "
        f"XDG_RUNTIME_DIR is {os.environ.get('XDG_RUNTIME_DIR') or 'unset'}"
    )


def systemctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemctl", "--user", *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def properties(unit: str, *names: str) -> dict[str, str]:
    done = systemctl("show", unit, *(f"--property={name}" for name in names))
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


@pytest.fixture
def user_units(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The user units, installed under names of their own in the manager's runtime unit folder
    (``$XDG_RUNTIME_DIR/systemd/user``: never the user's own units, gone at logout), serving a
    root of the test's: the base name of the units, and their runtime dir."""
    problem = user_manager_problem()
    if problem is not None:
        pytest.skip(problem)
    name = f"assistantd-test-{uuid.uuid4().hex[:8]}"
    renamed = {unit: unit.replace("assistantd", name, 1) for unit in UNITS}
    unit_dir = Path(os.environ["XDG_RUNTIME_DIR"]) / "systemd" / "user"
    unit_dir.mkdir(parents=True, exist_ok=True)
    rendered = install_user(tmp_path / "config")
    made = []
    for unit, new in renamed.items():
        text = (rendered / unit).read_text()
        for old_name, new_name in renamed.items():
            text = text.replace(old_name, new_name)
        (unit_dir / new).write_text(text.replace("%t/assistantd", f"%t/{name}"))
        made.append(unit_dir / new)
    drop_in = unit_dir / f"{name}.service.d"
    drop_in.mkdir()
    (tmp_path / "assistants").mkdir()
    (drop_in / "test.conf").write_text(
        "[Service]\n"
        f"Environment=ASSISTANTD_ROOT={tmp_path / 'assistants'}\n"
        f"Environment=XDG_CONFIG_HOME={tmp_path / 'config'}\n"
    )
    runtime_dir = Path(os.environ["XDG_RUNTIME_DIR"]) / name  # %t/NAME
    try:
        assert systemctl("daemon-reload").returncode == 0
        yield name, runtime_dir
    finally:
        systemctl("stop", *renamed.values())
        shutil.rmtree(runtime_dir, ignore_errors=True)  # the sockets' folder outlives them
        for path in made:
            path.unlink(missing_ok=True)
        shutil.rmtree(drop_in, ignore_errors=True)
        systemctl("daemon-reload")
        systemctl("reset-failed", *renamed.values())


@pytest.mark.timeout(120)
def test_the_user_units_run_for_real(user_units: tuple[str, Path]) -> None:
    """Socket activation starts the service on the first command, which it answers; Type=notify
    makes it active once READY=1 came; a reload keeps the process; a stop is clean and the
    sockets start it again on the next command."""
    name, runtime_dir = user_units
    sockets = (f"{name}-command.socket", f"{name}-events.socket")
    started = systemctl("start", *sockets)
    assert started.returncode == 0, started.stderr
    folder = runtime_dir.stat()
    assert stat.S_IMODE(folder.st_mode) == 0o700
    for file_name in (COMMAND_SOCKET, EVENTS_SOCKET):
        assert stat.S_IMODE((runtime_dir / file_name).stat().st_mode) == 0o600

    with Client(runtime_dir=runtime_dir, timeout=60) as client:
        first = client.ping()  # starts the service through its socket
        up = properties(f"{name}.service", "ActiveState", "SubState", "MainPID", "StatusText")
        assert (up["ActiveState"], up["SubState"]) == ("active", "running"), up
        assert up["StatusText"], up  # the daemon's STATUS=

        reloaded = systemctl("reload", f"{name}.service")
        assert reloaded.returncode == 0, reloaded.stderr
        assert properties(f"{name}.service", "MainPID")["MainPID"] == up["MainPID"]
        assert client.ping().epoch == first.epoch  # the same daemon

        stopped = systemctl("stop", f"{name}.service")
        assert stopped.returncode == 0, stopped.stderr
        down = properties(f"{name}.service", "ActiveState", "Result", "ExecMainStatus")
        assert (down["ActiveState"], down["Result"], down["ExecMainStatus"]) == (
            "inactive",
            "success",
            "0",
        ), down

        again = client.ping()  # the sockets still listen: a new daemon answers
        assert again.epoch != first.epoch
