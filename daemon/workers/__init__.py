"""Workers: a running assistant is a ``node`` child talked to over Node's own IPC channel.

:mod:`.channel` starts such a child and speaks the parent's end of its channel.
"""

from __future__ import annotations

from .channel import ChannelClosed, JSONValue, NodeChannel, spawn_node

__all__ = ["ChannelClosed", "JSONValue", "NodeChannel", "spawn_node"]
