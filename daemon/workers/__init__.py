"""Workers: a running assistant is a ``node`` child talked to over Node's own IPC channel.

:mod:`.channel` starts such a child and speaks the parent's end of its channel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .channel import ChannelClosed, JSONValue, NodeChannel, spawn_node

__all__ = ["ChannelClosed", "JSONValue", "NodeChannel", "spawn_node"]


def __getattr__(name: str) -> Any:
    # The channel is imported when first asked for, not with the package: the daemon's start
    # imports the package for its settings, and needs no channel to answer commands.
    if name in __all__:
        from . import channel

        return getattr(channel, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
