from __future__ import annotations

import itertools

import pytest

from assistantd.protocol.assistant import State
from assistantd.protocol.errors import ConflictError
from assistantd.protocol.lifecycle import STATES, TRANSITIONS, IllegalTransition, transition

LEGAL = {
    (None, "ready"): "assistant.created",
    (None, "to_download"): "assistant.created",
    ("to_download", "downloading"): "assistant.state",
    ("downloading", "ready"): "assistant.state",
    ("downloading", "to_download"): "assistant.state",
    ("ready", "running"): "assistant.state",
    ("running", "ready"): "assistant.state",
    ("to_download", None): "assistant.deleted",
    ("downloading", None): "assistant.deleted",
    ("ready", None): "assistant.deleted",
    ("running", None): "assistant.deleted",
}

EVERY_MOVE = list(itertools.product((None, *STATES), repeat=2))


def test_the_table_is_exactly_the_documented_one() -> None:
    assert dict(TRANSITIONS) == LEGAL


@pytest.mark.parametrize(("current", "target"), EVERY_MOVE)
def test_every_move_is_either_in_the_table_or_refused(
    current: State | None, target: State | None
) -> None:
    if (current, target) in LEGAL:
        assert transition(current, target) == LEGAL[(current, target)]
        return
    with pytest.raises(IllegalTransition) as caught:
        transition(current, target)
    # A 409 carrying the OpenAI fields, as every refusal does.
    assert isinstance(caught.value, ConflictError)
    assert (caught.value.status, caught.value.code) == (409, "illegal_transition")
    assert str(current or "nothing") in caught.value.message


def test_no_state_is_a_dead_end_and_every_state_can_be_reached() -> None:
    reachable = {target for (_, target) in LEGAL if target is not None}
    leavable = {current for (current, _) in LEGAL if current is not None}
    assert reachable == leavable == set(STATES)


def test_staying_put_is_not_a_transition() -> None:
    for state in STATES:
        with pytest.raises(IllegalTransition):
            transition(state, state)
