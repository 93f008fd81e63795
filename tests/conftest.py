from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.utils import DaemonProcess, running_daemon


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "assistants"
    path.mkdir()
    return path


@pytest.fixture
def daemon(root: Path) -> Iterator[DaemonProcess]:
    """A real daemon process serving an empty root (so it holds just the default `jan`)."""
    with running_daemon(root) as running:
        yield running


collect_ignore = ["bench"]
