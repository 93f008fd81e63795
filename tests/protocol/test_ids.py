"""Assistant ids are folder names: nothing that could escape the root or hide gets through."""

from __future__ import annotations

import pytest

from assistantd.protocol.errors import InvalidRequestError
from assistantd.protocol.ids import check_assistant_id, id_problem, new_assistant_id
from assistantd.protocol.limits import ID_MAX_CHARS


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        (".", "dot"),
        ("..", "dot"),
        ("../etc", "dot"),
        (".hidden", "dot"),
        (".staging", "dot"),
        (".trash", "dot"),
        ("a/b", "separator"),
        ("a\\b", "separator"),
        ("a\x00b", "NUL"),
        ("/abs", "separator"),
        ("/", "separator"),
        ("x/../..", "separator"),
        ("a" * (ID_MAX_CHARS + 1), "at most"),
        ("a\nb", "control"),
        ("a\tb", "control"),
        ("\x1b[31m", "control"),
        ("a\x7fb", "control"),
        ("a\u200bb", "control"),  # zero-width space (Cf)
        ("a\u202eb", "control"),  # right-to-left override (Cf)
        ("a\ud800b", "control"),  # a lone surrogate cannot be a file name
        ("name ", "white space"),
        (" name", "white space"),
        ("name\u00a0", "white space"),
    ],
)
def test_refused(value: str, reason: str) -> None:
    problem = id_problem(value)
    assert problem is not None
    assert reason in problem


@pytest.mark.parametrize(
    "value",
    [
        "jan",
        "asst_abc123XYZ",
        "my-assistant_2.0",
        "a..b",
        "a.",
        "with space",
        "~",
        "a" * ID_MAX_CHARS,
        "助手",
        "café",
        "🤖",
        "Ωmega-Ассистент",
    ],
)
def test_accepted(value: str) -> None:
    assert id_problem(value) is None
    assert check_assistant_id(value) == value


def test_check_names_the_param() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        check_assistant_id("../x", "id")
    error = caught.value
    assert (error.status, error.param, error.code) == (400, "id", "invalid_id")
    assert "'../x'" in error.message
    with pytest.raises(InvalidRequestError) as caught:
        check_assistant_id("a/b")
    assert caught.value.param == "assistant_id"


def test_new_ids_are_openai_shaped_valid_and_distinct() -> None:
    ids = {new_assistant_id() for _ in range(200)}
    assert len(ids) == 200
    for value in ids:
        assert value.startswith("asst_")
        assert len(value) == 29
        assert value[5:].isalnum()
        assert value.isascii()
        assert id_problem(value) is None
