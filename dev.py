#!/usr/bin/env python3
"""Set up a development environment and run the daemon or every check.

    python3 dev.py run [ASSISTANTD OPTIONS]   # set up, then run the daemon on its defaults
    python3 dev.py test [PYTEST OPTIONS]      # set up, then run every check and test

Setting up needs only Python >= 3.11 (and Node >= 18 for the Node parts): it makes `.venv/`
here and installs the project into it, editable, with its test tools. It is skipped when
pyproject.toml has not changed since the last time.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".assistantd-setup"
# mypy cannot follow setuptools' editable import hook, so it gets a tree of links instead,
# laid out as the installed package is (`assistantd.daemon` from `daemon/`, and so on).
TYPECHECK_TREE = VENV / "typecheck"
PACKAGES = {
    "protocol": "protocol",
    "daemon": "daemon",
    "client": "clients/python",
    "ctl": "clients/ctl",
    "http": "clients/http",
    "systemd": "systemd",
}
TYPED_STRICT = [
    "assistantd.protocol",
    "assistantd.client",
    "assistantd.ctl",
    "assistantd.daemon",
    "assistantd.http",
]


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def run(*command: str | Path, **kwargs: object) -> None:
    result = subprocess.run([str(part) for part in command], cwd=HERE, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        sys.exit(result.returncode)


def setup() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script is what says so
        sys.exit(f"assistantd needs Python >= 3.11; this is {sys.version.split()[0]}")
    wanted = hashlib.sha256((HERE / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and (BIN / "assistantd").exists():
        return
    step(f"setting up {VENV.relative_to(HERE)}/ (once, and again when pyproject.toml changes)")
    if not (BIN / "python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(BIN / "python", "-m", "pip", "install", "--quiet", "--editable", ".[test]")
    tree = TYPECHECK_TREE / "assistantd"
    tree.mkdir(parents=True, exist_ok=True)
    for name, folder in PACKAGES.items():
        link = tree / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(HERE / folder, target_is_directory=True)
    STAMP.write_text(wanted)


def test(pytest_args: list[str]) -> None:
    step("ruff (lint and format)")
    run(BIN / "ruff", "check", ".")
    run(BIN / "ruff", "format", "--check", ".")
    step("mypy --strict")
    modules = [arg for package in TYPED_STRICT for arg in ("-p", package)]
    run(BIN / "mypy", *modules, env={**os.environ, "MYPYPATH": str(TYPECHECK_TREE)})
    step("pytest")
    run(BIN / "python", "-m", "pytest", *pytest_args)


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ("run", "test", "setup"):
        sys.exit(__doc__)
    action, rest = argv[0], argv[1:]
    setup()
    if action == "run":
        os.execv(BIN / "assistantd", [str(BIN / "assistantd"), *rest])
    elif action == "test":
        test(rest)


if __name__ == "__main__":
    main(sys.argv[1:])
