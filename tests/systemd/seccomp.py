"""Run a program under the seccomp filters systemd would build from a unit's settings.

    python -m tests.systemd.seccomp FILTER.json -- PROGRAM [ARGS...]

systemd turns ``SystemCallFilter=`` and ``RestrictAddressFamilies=`` into seccomp filters with
libseccomp and loads them before it execs the service. This does the same with libseccomp
through ctypes, so that a test can run the real daemon, and the Node workers it starts, under
the system unit's filter where no systemd can start the unit (issue 6: "SystemCallFilter=
@system-service, ~@privileged @resources where Node still works" was measured this way). It is
a model of systemd's filter, not systemd's: the groups come from ``systemd-analyze
syscall-filter`` (the installed systemd's own lists) and the lines of the unit are applied in
its order (the first line an allow list, then ``~`` removes and a bare line adds); the
address families are filtered on ``socket()``'s first argument, as systemd does. The other
settings systemd enforces with seccomp (RestrictRealtime=, RestrictNamespaces=, ...) are not
modelled.

FILTER.json is ``{"allow": [syscall names], "families": [AF_* numbers], "errno": N}``: calls
not allowed fail with errno N (``SystemCallErrorNumber=``), ``socket()`` of another family
with EAFNOSUPPORT. Names unknown on this architecture are skipped, as systemd skips them.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ = 4
SCMP_CMP_GT = 6


def _errno_action(number: int) -> int:
    return 0x00050000 | (number & 0xFFFF)  # SCMP_ACT_ERRNO(number)


class _Compare(ctypes.Structure):
    """libseccomp's ``struct scmp_arg_cmp``."""

    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


def libseccomp() -> ctypes.CDLL | None:
    """libseccomp (which systemd itself links), or None where it is not installed."""
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        return None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = (ctypes.c_uint32,)
    lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    lib.seccomp_rule_add.argtypes = (ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint)
    lib.seccomp_rule_add_array.argtypes = (
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_Compare),
    )
    lib.seccomp_load.argtypes = (ctypes.c_void_p,)
    lib.seccomp_release.argtypes = (ctypes.c_void_p,)
    return lib


# --- the filter a unit asks for ----------------------------------------------------------------


def syscall_groups() -> dict[str, list[str]]:
    """Every ``@group`` of the installed systemd: its members, syscalls or other groups."""
    listing = subprocess.run(
        ["systemd-analyze", "syscall-filter", "--no-pager"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in listing.splitlines():
        word = line.strip()
        if not word or word.startswith("#"):
            continue
        if not line[0].isspace():
            current = groups.setdefault(word, [])
        elif current is not None:
            current.append(word)
    return groups


def expand(names: Iterable[str], groups: dict[str, list[str]]) -> set[str]:
    """The syscalls of ``names``, groups expanded.

    >>> sorted(expand(["@a", "read"], {"@a": ["@b", "write"], "@b": ["close"]}))
    ['close', 'read', 'write']
    """
    syscalls: set[str] = set()
    for name in names:
        syscalls |= expand(groups[name], groups) if name.startswith("@") else {name}
    return syscalls


def unit_values(unit_text: str, key: str) -> list[str]:
    """The values of every ``KEY=`` line of a unit, in order.

    >>> unit_values("A=1\\nB=2\\nA=~3 4\\n", "A")
    ['1', '~3 4']
    """
    return re.findall(rf"^{re.escape(key)}=(.*)$", unit_text, flags=re.MULTILINE)


def allowed_syscalls(lines: Sequence[str], groups: dict[str, list[str]]) -> set[str]:
    """What ``SystemCallFilter=`` lines allow: the first line is the allow list; after it a
    ``~`` line removes its calls and a bare one adds them back, as systemd.exec(5) says.

    >>> groups = {"@s": ["read", "write", "capset"], "@p": ["capset", "setuid"]}
    >>> sorted(allowed_syscalls(["@s", "~@p", "capset"], groups))
    ['capset', 'read', 'write']
    """
    if not lines or lines[0].startswith("~"):
        raise ValueError("only an allow list (a first line without ~) is modelled")
    allowed: set[str] = set()
    for line in lines:
        names = line.removeprefix("~").split()
        if line.startswith("~"):
            allowed -= expand(names, groups)
        else:
            allowed |= expand(names, groups)
    return allowed


def filter_of_unit(unit_text: str) -> dict[str, object]:
    """The FILTER.json document for a unit's SystemCallFilter=, RestrictAddressFamilies= and
    SystemCallErrorNumber= (EPERM by default here, where systemd would kill with SIGSYS)."""
    import socket

    families = [
        int(getattr(socket, name))
        for line in unit_values(unit_text, "RestrictAddressFamilies")
        for name in line.split()
    ]
    error_names = unit_values(unit_text, "SystemCallErrorNumber") or ["EPERM"]
    return {
        "allow": sorted(
            allowed_syscalls(unit_values(unit_text, "SystemCallFilter"), syscall_groups())
        ),
        "families": families,
        "errno": int(getattr(errno, error_names[-1])),
    }


# --- loading it --------------------------------------------------------------------------------


def load(lib: ctypes.CDLL, allow: Sequence[str], families: Sequence[int], error: int) -> None:
    """Load both filters into this process (and what it execs), for good."""
    # The family filter first: once the call filter is in, seccomp() itself is not allowed.
    if families:
        context = lib.seccomp_init(SCMP_ACT_ALLOW)
        socket_nr = lib.seccomp_syscall_resolve_name(b"socket")
        refuse = _errno_action(errno.EAFNOSUPPORT)
        # libseccomp takes one comparison per argument in a rule: as systemd does, refuse every
        # family above the highest allowed one, and each one below it that is not allowed.
        highest = max(families)
        rules = [(SCMP_CMP_GT, highest)]
        rules += [(SCMP_CMP_EQ, family) for family in range(highest) if family not in families]
        for operator, value in rules:
            compare = (_Compare * 1)(_Compare(0, operator, value, 0))
            _check(lib.seccomp_rule_add_array(context, refuse, socket_nr, 1, compare), "rule")
        _check(lib.seccomp_load(context), "load the family filter")
        lib.seccomp_release(context)
    context = lib.seccomp_init(_errno_action(error))
    for name in allow:
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number < 0:
            continue  # a name of another architecture (or of a newer kernel)
        lib.seccomp_rule_add(context, SCMP_ACT_ALLOW, number, 0)
    _check(lib.seccomp_load(context), "load the call filter")
    lib.seccomp_release(context)


def _check(result: int, what: str) -> None:
    if result < 0:
        raise OSError(-result, f"libseccomp: cannot {what}: {os.strerror(-result)}")


def main(argv: Sequence[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        sys.exit(__doc__)
    lib = libseccomp()
    if lib is None:
        sys.exit("libseccomp.so.2 is not installed")
    with open(argv[0], encoding="utf-8") as file:
        spec = json.load(file)
    load(lib, spec["allow"], spec["families"], spec["errno"])
    os.execvp(argv[2], list(argv[2:]))


if __name__ == "__main__":
    main(sys.argv[1:])
