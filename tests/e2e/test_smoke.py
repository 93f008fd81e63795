from __future__ import annotations

import pytest

from assistantd.client import Client, NotFoundError
from tests.utils import DaemonProcess


def test_default_assistant_is_served(daemon: DaemonProcess) -> None:
    with Client(command=daemon.command, timeout=5) as client:
        jan = client.get_assistant("jan")
        assert (jan.id, jan.name, jan.state) == ("jan", "Jan", "ready")
        assert (daemon.root / "jan" / "assistant.json").is_file()
        with pytest.raises(NotFoundError) as caught:
            client.get_assistant("nobody")
        assert caught.value.status == 404
