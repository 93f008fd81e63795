"""Routing envelopes: how a command's frames split into the route back and the body.

A ROUTER socket prefixes each message with the sender's identity; a REQ client adds an empty
delimiter frame before its body, a DEALER client may or may not. The reply goes back with the
same envelope the request came with, so both kinds of client get what they expect.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class Split(NamedTuple):
    envelope: list[bytes]
    """The frames to send back in front of the reply (identity, and the delimiter if any)."""
    body: list[bytes]
    """The frames after the envelope: exactly one in a well-formed command."""


def split_envelope(frames: Sequence[bytes]) -> Split:
    """Split the frames a ROUTER received.

    >>> split_envelope([b"peer", b"", b"{}"])
    Split(envelope=[b'peer', b''], body=[b'{}'])
    >>> split_envelope([b"peer", b"{}"])
    Split(envelope=[b'peer'], body=[b'{}'])
    >>> split_envelope([b"peer", b"", b"{}", b"extra"])
    Split(envelope=[b'peer', b''], body=[b'{}', b'extra'])
    """
    for position in range(1, len(frames)):
        if not frames[position]:
            return Split(list(frames[: position + 1]), list(frames[position + 1 :]))
    return Split(list(frames[:1]), list(frames[1:]))
