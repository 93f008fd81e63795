"""The lifecycle of an assistant: its four states, every legal move, the event each move makes.

One table holds every rule (as h11's state machine does); :func:`transition` looks a move up and
raises :class:`IllegalTransition` for one that is not there, so no module can overwrite a state
silently. ``None`` stands for "not known to the daemon" (before it appears, after it is gone).

    to_download --> downloading --> ready <--> running
         ^              |
         +--------------+   (a download that fails or is cancelled)
"""

from __future__ import annotations

from typing import Final, Literal

from .assistant import State
from .errors import ConflictError

Topic = Literal["assistant.created", "assistant.state", "assistant.deleted"]

STATES: Final[tuple[State, ...]] = ("to_download", "downloading", "ready", "running")

TRANSITIONS: Final[dict[tuple[State | None, State | None], Topic]] = {
    # Appearing: on disk (a file written, a folder copied in, a create) or registered for
    # download.
    (None, "ready"): "assistant.created",
    (None, "to_download"): "assistant.created",
    # Acquiring.
    ("to_download", "downloading"): "assistant.state",
    ("downloading", "ready"): "assistant.state",
    ("downloading", "to_download"): "assistant.state",
    # Running its code.
    ("ready", "running"): "assistant.state",
    ("running", "ready"): "assistant.state",
    # Disappearing: deleted through the API or by hand (a running worker is stopped first, a
    # download cancelled).
    ("to_download", None): "assistant.deleted",
    ("downloading", None): "assistant.deleted",
    ("ready", None): "assistant.deleted",
    ("running", None): "assistant.deleted",
}


class IllegalTransition(ConflictError):
    """A move the table does not have (a 409: it clashes with the current state)."""

    default_code = "illegal_transition"


def transition(current: State | None, target: State | None) -> Topic:
    """The topic of the event that moving from ``current`` to ``target`` publishes.

    >>> transition(None, "ready")
    'assistant.created'
    >>> transition("ready", "running")
    'assistant.state'
    >>> transition("to_download", "running")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    IllegalTransition: An assistant cannot go from to_download to running.
    """
    topic = TRANSITIONS.get((current, target))
    if topic is None:
        raise IllegalTransition(
            f"An assistant cannot go from {current or 'nothing'} to {target or 'nothing'}."
        )
    return topic
