"""The error hierarchy: OpenAI's fields plus a status, the same on both sides of the wire."""

from __future__ import annotations

import pytest

from assistantd.protocol.errors import (
    AssistantdError,
    ConflictError,
    InternalError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    UnavailableError,
)

CLASSES = [
    (InvalidRequestError, 400, "invalid_request_error", None),
    (PermissionDeniedError, 403, "invalid_request_error", "permission_denied"),
    (NotFoundError, 404, "invalid_request_error", "not_found"),
    (ConflictError, 409, "invalid_request_error", "conflict"),
    (PayloadTooLargeError, 413, "invalid_request_error", "request_too_large"),
    (InternalError, 500, "server_error", "internal_error"),
    (UnavailableError, 503, "server_error", "daemon_unavailable"),
]


@pytest.mark.parametrize(("cls", "status", "error_type", "code"), CLASSES)
def test_class_defaults(
    cls: type[AssistantdError], status: int, error_type: str, code: str | None
) -> None:
    error = cls("Something.")
    assert (error.status, error.type, error.code, error.param) == (status, error_type, code, None)
    assert error.message == "Something."
    assert str(error) == "Something."
    assert isinstance(error, AssistantdError)


@pytest.mark.parametrize(("cls", "status", "error_type", "code"), CLASSES)
def test_round_trip_through_the_error_object(
    cls: type[AssistantdError], status: int, error_type: str, code: str | None
) -> None:
    error = cls("Message.", param="tools[0].type", code="some_code")
    received = AssistantdError.from_object(error.to_object())
    assert type(received) is cls
    assert (received.message, received.type, received.param, received.code, received.status) == (
        "Message.",
        error_type,
        "tools[0].type",
        "some_code",
        status,
    )


def test_from_object_keeps_an_unknown_status_and_type() -> None:
    received = AssistantdError.from_object(
        {"message": "Teapot.", "type": "odd_error", "param": "p", "code": "c", "status": 418}
    )
    assert type(received) is AssistantdError
    assert (received.status, received.type, received.param, received.code) == (
        418,
        "odd_error",
        "p",
        "c",
    )


def test_from_object_keeps_a_type_that_differs_from_the_class_default() -> None:
    received = AssistantdError.from_object(
        {"message": "x", "type": "rate_limit_error", "param": None, "code": None, "status": 400}
    )
    assert isinstance(received, InvalidRequestError)
    assert received.type == "rate_limit_error"
    assert received.code is None  # no default code made up on the way in


def test_to_object_is_the_wire_error_object() -> None:
    error = NotFoundError("No assistant found with id 'x'.", param="assistant_id")
    assert dict(error.to_object()) == {
        "message": "No assistant found with id 'x'.",
        "type": "invalid_request_error",
        "param": "assistant_id",
        "code": "not_found",
        "status": 404,
    }


@pytest.mark.parametrize(
    "received",
    [
        {},
        {"message": "m"},
        {"message": "m", "status": "404"},
        {"message": "m", "status": None, "code": 7, "param": ["x"]},
    ],
)
def test_from_object_of_a_malformed_error_object_still_gives_an_error(
    received: dict[str, object],
) -> None:
    error = AssistantdError.from_object(received)
    assert isinstance(error, AssistantdError)
    assert isinstance(error.status, int)
    assert isinstance(error.message, str)
    assert error.code is None or isinstance(error.code, str)
    assert error.param is None or isinstance(error.param, str)


def test_overrides_do_not_leak_into_the_class() -> None:
    NotFoundError("x", status=410, error_type="gone")
    assert NotFoundError("y").status == 404
    assert NotFoundError("y").type == "invalid_request_error"


def test_repr_shows_the_fields() -> None:
    text = repr(ConflictError("Taken.", param="id"))
    assert text == "ConflictError('Taken.', status=409, code='conflict', param='id')"
