"""``assistantctl service``: put the systemd units in place, filled in, and say what to run next.

The units are templates, package data of ``assistantd.systemd`` (the repository's ``systemd/``
folder). ``@ASSISTANTD@`` in them stands for the absolute path of the ``assistantd`` program the
service runs; it is filled in here, not fixed in the units (as ``%h/.local/bin/assistantd``
would be), because where pip put the program depends on how it was installed (a venv, pipx,
``--user``, a system prefix), and the ``assistantd`` installed with this ``assistantctl`` is
the one to run.

- ``--user`` (the default): ``assistantd.service`` and its two socket units in
  ``$XDG_CONFIG_HOME/systemd/user`` (``~/.config/systemd/user``).
- ``--system``: the hardened units in ``/etc/systemd/system``, for the system user
  ``assistantd``, which ``/etc/sysusers.d/assistantd.conf`` declares, and its runtime folder,
  which ``/etc/tmpfiles.d/assistantd.conf`` creates. Writing there needs root.

Imported only by the ``service`` command, so that other commands do not pay for it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

PLACEHOLDER = "@ASSISTANTD@"
SERVICE = "assistantd.service"
SOCKETS = ("assistantd-command.socket", "assistantd-events.socket")
UNITS = (*SOCKETS, SERVICE)

SYSTEM_UNIT_DIR = "/etc/systemd/system"
SYSUSERS_FILE = "/etc/sysusers.d/assistantd.conf"
TMPFILES_FILE = "/etc/tmpfiles.d/assistantd.conf"
SYSTEM_RUNTIME_DIR = "/run/assistantd"

# Not files of ours in /tmp: the folders a program of the service must not be in.
HIDDEN_FROM_SYSTEM_SERVICE = ("/home", "/root", "/run/user", "/tmp", "/var/tmp")  # noqa: S108
"""What the system unit cannot see: ProtectHome= hides the first three, PrivateTmp= gives it a
/tmp and /var/tmp of its own. A program there cannot be its ExecStart=."""

EXIT_OK = 0
EXIT_FAILED = 1


class ServiceError(Exception):
    """Why the units cannot be installed; the message says what to do instead."""


@dataclass(frozen=True)
class Placement:
    """One file: its template, relative to the templates folder, and where it goes."""

    template: str
    path: str
    """Absolute, on the system the units are for (before any --destdir)."""


@dataclass(frozen=True)
class Scope:
    """The files of the user service or of the system service, and how to enable them."""

    name: str
    unit_dir: str
    files: tuple[Placement, ...]
    systemctl: str
    prepare: tuple[str, ...] = ()
    """Commands that must run before the units are started (the system user, its folder)."""

    def start_commands(self) -> list[str]:
        """What to run once the files are in place: the service starts now and at every boot
        (system) or login (user); its sockets listen from then on."""
        return [
            *self.prepare,
            f"{self.systemctl} daemon-reload",
            f"{self.systemctl} enable --now {' '.join(UNITS)}",
        ]

    def stop_commands(self) -> list[str]:
        """What to run once the files are gone: stop what still runs of the units."""
        return [f"{self.systemctl} stop {' '.join(UNITS)}", f"{self.systemctl} daemon-reload"]


def user_scope(env: Mapping[str, str], home: str) -> Scope:
    """The user service, in ``$XDG_CONFIG_HOME/systemd/user`` (``~/.config/systemd/user``).

    >>> user_scope({}, "/home/ada").files[-1].path
    '/home/ada/.config/systemd/user/assistantd.service'
    """
    config_home = env.get("XDG_CONFIG_HOME", "")
    if not config_home.startswith("/"):  # the XDG spec says to ignore a relative one
        config_home = os.path.join(home, ".config")
    unit_dir = os.path.join(config_home, "systemd", "user")
    files = tuple(Placement(unit, os.path.join(unit_dir, unit)) for unit in UNITS)
    return Scope("user", unit_dir, files, "systemctl --user")


def system_scope() -> Scope:
    """The system service and what it needs: its user (sysusers.d), its folder (tmpfiles.d)."""
    units = tuple(Placement(f"system/{unit}", f"{SYSTEM_UNIT_DIR}/{unit}") for unit in UNITS)
    extras = (
        Placement("system/sysusers.conf", SYSUSERS_FILE),
        Placement("system/tmpfiles.conf", TMPFILES_FILE),
    )
    prepare = (f"systemd-sysusers {SYSUSERS_FILE}", f"systemd-tmpfiles --create {TMPFILES_FILE}")
    return Scope("system", SYSTEM_UNIT_DIR, units + extras, "systemctl", prepare)


def templates_dir() -> Path:
    """The folder of the unit templates: package data, found beside its package."""
    from assistantd import systemd

    return Path(systemd.__file__).parent


def find_assistantd(argv0: str, executable: str) -> str:
    """The ``assistantd`` installed with this ``assistantctl``, as an absolute path.

    Looked for beside the running ``assistantctl`` (pip's console script), then beside the
    Python that runs it (``python -m assistantd.ctl.main`` in a venv), then on PATH. Links are
    kept as they are: a venv's or pipx's path stays valid across upgrades.
    """
    for folder in (os.path.dirname(os.path.abspath(argv0)), os.path.dirname(executable)):
        candidate = os.path.join(folder, "assistantd")
        if _is_program(candidate):
            return candidate
    found = shutil.which("assistantd")
    if found is not None:
        return os.path.abspath(found)
    raise ServiceError(
        "cannot find the assistantd program beside assistantctl or on PATH: "
        "give its path with --assistantd PATH"
    )


def exec_path(path: str) -> str:
    """``path`` written as the program of an ``ExecStart=`` line: ``%`` (a unit specifier)
    doubled, and quoted when it holds white space.

    >>> exec_path("/opt/assistantd/bin/assistantd")
    '/opt/assistantd/bin/assistantd'
    >>> exec_path("/opt/my tools/100%/assistantd")
    '"/opt/my tools/100%%/assistantd"'
    """
    if not path.startswith("/"):
        raise ServiceError(f"the assistantd program must be an absolute path, not {path!r}")
    if any(char in path for char in "\"'\\$") or not path.isprintable():
        raise ServiceError(
            f"the path {path!r} holds a character that ExecStart= would read as syntax "
            "(quote, backslash, $ or a control character): install assistantd elsewhere"
        )
    escaped = path.replace("%", "%%")
    return f'"{escaped}"' if any(char.isspace() for char in escaped) else escaped


def render(template: str, assistantd: str) -> str:
    """A unit template with its placeholder filled in with the program's path."""
    return template.replace(PLACEHOLDER, exec_path(assistantd))


def hidden_from_system_service(program: str, *, on_this_machine: bool) -> str | None:
    """Which path of ``program`` the system service cannot see, or None.

    On this machine that is also where its links lead, and its script's interpreter with the
    Python a venv is made from (its ``pyvenv.cfg`` ``home``): a venv's python is often a link
    to, or a copy that needs the library of, a Python in someone's home folder (pyenv's).
    """
    paths = [program]
    if on_this_machine:
        paths.append(os.path.realpath(program))
        interpreter = _interpreter(program)
        if interpreter is not None:
            paths += [interpreter, os.path.realpath(interpreter)]
            venv_home = _venv_home(interpreter)
            if venv_home is not None:
                paths += [venv_home, os.path.realpath(venv_home)]
    for path in paths:
        for hidden in HIDDEN_FROM_SYSTEM_SERVICE:
            if path == hidden or path.startswith(hidden + "/"):
                return path
    return None


def run(args: argparse.Namespace) -> int:
    """``service install`` and ``service uninstall``; errors are reported here (exit 1)."""
    try:
        if args.service_action == "install":
            return install(args)
        return uninstall(args)
    except ServiceError as exc:
        sys.stderr.write(f"assistantctl: error: {exc}\n")
        return EXIT_FAILED


def install(args: argparse.Namespace) -> int:
    scope = _scope(args)
    destdir: str | None = args.destdir
    program = _program(args, scope, on_this_machine=destdir is None)
    templates = templates_dir()
    rendered = [
        (placement, render((templates / placement.template).read_text(), program))
        for placement in scope.files
    ]
    out = sys.stdout
    if args.dry_run:
        for placement, text in rendered:
            out.write(f"# {_target(placement.path, destdir)}\n{text}\n")
        out.write("# (dry run: nothing written)\n")
    else:
        _need_root(scope, destdir, "install")
        for placement, text in rendered:
            target = Path(_target(placement.path, destdir))
            out.write(f"{'wrote' if _write(target, text) else 'unchanged'} {target}\n")
    _print_next(scope, out)
    return EXIT_OK


def uninstall(args: argparse.Namespace) -> int:
    scope = _scope(args)
    destdir: str | None = args.destdir
    if not args.dry_run:
        _need_root(scope, destdir, "uninstall")
    out = sys.stdout
    unit_dir = Path(_target(scope.unit_dir, destdir))
    # What `systemctl disable` would remove, which it can no longer do once the files are gone.
    links = [
        link
        for pattern in ("*.wants", "*.requires")
        for folder in unit_dir.glob(pattern)
        for link in folder.iterdir()
        if link.name in UNITS and link.is_symlink()
    ]
    files = [Path(_target(placement.path, destdir)) for placement in scope.files]
    for path in [*links, *files]:
        if not path.is_symlink() and not path.exists():
            continue
        if args.dry_run:
            out.write(f"would remove {path}\n")
            continue
        try:
            path.unlink()
        except OSError as exc:
            raise ServiceError(f"cannot remove {path}: {exc.strerror}") from None
        out.write(f"removed {path}\n")
    if scope.name == "system":
        out.write(
            "The user assistantd and /var/lib/assistantd (its assistants) are kept: remove "
            "them by hand if you no longer want them.\n"
        )
    out.write("Next, to stop what still runs:\n")
    for command in scope.stop_commands():
        out.write(f"  {command}\n")
    return EXIT_OK


def _scope(args: argparse.Namespace) -> Scope:
    if args.scope == "system":
        return system_scope()
    return user_scope(os.environ, os.path.expanduser("~"))


def _program(args: argparse.Namespace, scope: Scope, *, on_this_machine: bool) -> str:
    """The assistantd the service runs: checked as far as it can be from here."""
    if args.assistantd is not None:
        program: str = os.path.abspath(args.assistantd)
        exec_path(program)  # refuses what a unit file cannot hold, before anything else
        if on_this_machine and not _is_program(program):
            raise ServiceError(f"--assistantd {program}: not an executable file")
    else:
        program = find_assistantd(sys.argv[0], sys.executable)
        exec_path(program)
    if scope.name == "system":
        hidden = hidden_from_system_service(program, on_this_machine=on_this_machine)
        if hidden is not None:
            raise ServiceError(
                f"the system service cannot run {program}: it cannot see {hidden} "
                f"(ProtectHome= hides /home, /root and /run/user; PrivateTmp= hides /tmp). "
                "Install assistantd for it elsewhere, with a Python that is not in a home "
                "folder either, e.g. `python3 -m venv /opt/assistantd && "
                "/opt/assistantd/bin/pip install assistantd`, and give "
                "--assistantd /opt/assistantd/bin/assistantd"
            )
    return program


def _need_root(scope: Scope, destdir: str | None, what: str) -> None:
    if scope.name == "system" and destdir is None and os.geteuid() != 0:
        raise ServiceError(
            f"to {what} the system service, assistantctl writes in /etc/systemd/system, "
            "/etc/sysusers.d and /etc/tmpfiles.d, which only root may do: run it as root "
            f"(sudo), or see what it would do with --dry-run"
        )


def _print_next(scope: Scope, out: TextIO) -> None:
    write = out.write
    if scope.name == "system":
        write("Next, to create its user and runtime folder and start it now and at every boot:\n")
    else:
        write("Next, to start it now and at every login:\n")
    for command in scope.start_commands():
        write(f"  {command}\n")
    if scope.name == "system":
        write(
            f"It runs as the user assistantd; only that user and root can reach it: "
            f"assistantctl --runtime-dir {SYSTEM_RUNTIME_DIR} ping\n"
        )
    else:
        write(
            "To keep it running while you are logged out (and start it at boot):\n"
            "  loginctl enable-linger\n"
        )


def _target(path: str, destdir: str | None) -> str:
    """``path`` under ``destdir`` (a staging tree, as DESTDIR of make install), or as is."""
    if destdir is None:
        return path
    return os.path.join(os.path.abspath(destdir), path.lstrip("/"))


def _write(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` atomically, mode 0644; False if it already held it."""
    try:
        if path.read_text() == text:
            return False
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        pass
    except OSError as exc:
        raise ServiceError(f"cannot read {path}: {exc.strerror}") from None
    staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staged.write_text(text)
        staged.chmod(0o644)  # systemd warns about unit files others may write or run
        os.replace(staged, path)
    except OSError as exc:
        staged.unlink(missing_ok=True)
        raise ServiceError(f"cannot write {path}: {exc.strerror}") from None
    return True


def _is_program(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _venv_home(python: str) -> str | None:
    """The folder of the Python a venv was made from, if ``python`` is a venv's."""
    config = os.path.join(os.path.dirname(os.path.dirname(python)), "pyvenv.cfg")
    try:
        with open(config, encoding="utf-8") as file:
            for line in file:
                key, sep, value = line.partition("=")
                if sep and key.strip() == "home" and value.strip().startswith("/"):
                    return value.strip()
    except (OSError, UnicodeDecodeError):
        return None
    return None


def _interpreter(program: str) -> str | None:
    """The interpreter of a ``#!`` script (pip's console scripts are), else None."""
    try:
        with open(program, "rb") as file:
            first = file.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    return words[0] if words and words[0].startswith("/") else None
