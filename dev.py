#!/usr/bin/env python3
"""Set up a development environment and run the daemon or every check.

    python3 dev.py run [ASSISTANTD OPTIONS]   # set up, then run the daemon on its defaults
    python3 dev.py test [PYTEST OPTIONS]      # set up, then run every check and test

Setting up needs only Python >= 3.11 (and Node >= 18 for the Node parts): it makes `.venv/`
here and installs the project into it, editable, with its test tools. It is skipped when
pyproject.toml has not changed since the last time. For `test` it also installs the Node
client's packages (`npm ci`, again when its package-lock.json changes) and generates its types
from the protocol.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
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
NODE_CLIENT = HERE / "clients" / "node"
NODE_STAMP = NODE_CLIENT / "node_modules" / ".assistantd-setup"
# Listed here rather than left to `node --test DIR`: Node 18 takes no glob, and given a folder
# it would also run the helpers in test/support/ as test files.
NODE_TESTS = ["test/**/*.test.js", "test/**/*.test.mjs"]
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
    kwargs.setdefault("cwd", HERE)
    result = subprocess.run([str(part) for part in command], check=False, **kwargs)  # type: ignore[call-overload]
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


def node_env() -> dict[str, str]:
    """The Node client's scripts and tests run the daemon and the schema with the venv's Python."""
    return {**os.environ, "ASSISTANTD_PYTHON": str(BIN / "python")}


def setup_node() -> None:
    """The Node client's packages (once, and again when package-lock.json changes; npm runs no
    install scripts: zeromq's tarball carries its prebuilt binaries), and its protocol types."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            sys.exit(f"the Node client needs {tool} (Node >= 18) on the PATH")
    wanted = hashlib.sha256((NODE_CLIENT / "package-lock.json").read_bytes()).hexdigest()
    if not (NODE_STAMP.exists() and NODE_STAMP.read_text() == wanted):
        step("npm ci in clients/node/ (once, and again when package-lock.json changes)")
        run("npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", cwd=NODE_CLIENT)
        NODE_STAMP.write_text(wanted)
    run("npm", "run", "--silent", "generate-types", cwd=NODE_CLIENT, env=node_env())


def test(pytest_args: list[str]) -> None:
    step("ruff (lint and format)")
    run(BIN / "ruff", "check", ".")
    run(BIN / "ruff", "format", "--check", ".")
    step("mypy --strict")
    modules = [arg for package in TYPED_STRICT for arg in ("-p", package)]
    run(BIN / "mypy", *modules, env={**os.environ, "MYPYPATH": str(TYPECHECK_TREE)})
    step("pytest")
    run(BIN / "python", "-m", "pytest", *pytest_args)
    step("node client: tsc (types and checkJs)")
    run("npm", "run", "--silent", "typecheck", cwd=NODE_CLIENT)
    step("node client: node --test")
    files = sorted(
        {
            os.path.relpath(found, NODE_CLIENT)
            for pattern in NODE_TESTS
            for found in glob.glob(str(NODE_CLIENT / pattern), recursive=True)
        }
    )
    run("node", "--test", *files, cwd=NODE_CLIENT, env=node_env())


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ("run", "test", "setup"):
        sys.exit(__doc__)
    action, rest = argv[0], argv[1:]
    setup()
    if action in ("test", "setup"):
        setup_node()
    if action == "run":
        os.execv(BIN / "assistantd", [str(BIN / "assistantd"), *rest])
    elif action == "test":
        test(rest)


if __name__ == "__main__":
    main(sys.argv[1:])
