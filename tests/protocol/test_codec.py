"""The codec: request bodies in, reply bodies out, and a clear error for every bad body."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from msgspec import UNSET

from assistantd.protocol.assistant import Assistant
from assistantd.protocol.codec import (
    decode_reply,
    decode_request,
    encode_error,
    encode_request,
    encode_result,
    recover_id,
)
from assistantd.protocol.errors import (
    AssistantdError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
)
from assistantd.protocol.limits import REQUEST_MAX_BYTES
from assistantd.protocol.messages import (
    METHOD_PARAMS,
    AssistantRef,
    CreateAssistantParams,
    ListAssistantsParams,
    ModifyAssistantParams,
    NoParams,
)


def body(request: Any) -> bytes:
    return json.dumps(request).encode()


def decode_error(raw: bytes) -> AssistantdError:
    with pytest.raises(AssistantdError) as caught:
        decode_request(raw)
    return caught.value


# --- good requests --------------------------------------------------------------------------


def test_list_defaults() -> None:
    request, params = decode_request(body({"id": "r1", "method": "listAssistants"}))
    assert (request.id, request.method) == ("r1", "listAssistants")
    assert params == ListAssistantsParams(limit=20, order="desc", after=None, before=None)


def test_list_with_every_param() -> None:
    raw = body(
        {
            "id": 3,
            "method": "listAssistants",
            "params": {"limit": 100, "order": "asc", "after": "a", "before": None},
        }
    )
    _, params = decode_request(raw)
    assert params == ListAssistantsParams(limit=100, order="asc", after="a")


@pytest.mark.parametrize("method", sorted(METHOD_PARAMS))
def test_every_method_decodes_into_its_struct(method: str) -> None:
    params: dict[str, Any] = {}
    if method not in ("ping", "listAssistants", "createAssistant", "getSnapshot"):
        params["assistant_id"] = "jan"
    if method in ("importAssistant", "exportAssistant"):
        params["path"] = "/home/ada/jan.zip"
    if method == "invokeAssistant":
        params["method"] = "ping"
    if method == "sendToAssistant":
        params["message"] = {"hello": [1, None]}
    _, decoded = decode_request(body({"id": 1, "method": method, "params": params}))
    assert type(decoded) is METHOD_PARAMS[method]


def test_ping_without_params() -> None:
    _, params = decode_request(b'{"id": 0, "method": "ping"}')
    assert isinstance(params, NoParams)


def test_create_keeps_absent_fields_unset() -> None:
    raw = body(
        {
            "id": 1,
            "method": "createAssistant",
            "params": {"model": "gpt-4o", "name": None, "tools": [{"type": "x", "extra": {}}]},
        }
    )
    _, params = decode_request(raw)
    assert isinstance(params, CreateAssistantParams)
    assert params.model == "gpt-4o"
    assert params.name is None
    assert params.description is UNSET
    assert params.tools == [{"type": "x", "extra": {}}]
    assert params.id is None


def test_modify_and_refs() -> None:
    _, params = decode_request(
        body({"id": 1, "method": "modifyAssistant", "params": {"assistant_id": "a", "top_p": 1}})
    )
    assert isinstance(params, ModifyAssistantParams)
    assert (params.assistant_id, params.top_p, params.name) == ("a", 1.0, UNSET)
    _, ref = decode_request(
        body({"id": 1, "method": "deleteAssistant", "params": {"assistant_id": "a"}})
    )
    assert ref == AssistantRef(assistant_id="a")


def test_encode_request_round_trips() -> None:
    raw = encode_request("x", "getAssistant", {"assistant_id": "jan"})
    request, params = decode_request(raw)
    assert (request.id, request.method, params.assistant_id) == ("x", "getAssistant", "jan")


# --- bad requests ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "code", "param"),
    [
        (b"not json", 400, "invalid_json", None),
        (b"", 400, "invalid_json", None),
        (b'{"id": 1, "method": "ping"', 400, "invalid_json", None),
        (b"\xff\xfe", 400, "invalid_json", None),
        (b"[1, 2]", 400, "invalid_type", None),
        (b'"ping"', 400, "invalid_type", None),
        (b"null", 400, "invalid_type", None),
        (b'{"id": 1}', 400, "missing_required_parameter", "method"),
        (b'{"method": "ping"}', 400, "missing_required_parameter", "id"),
        (b'{"id": 1, "method": 5}', 400, "invalid_type", "method"),
        (b'{"id": 1.5, "method": "ping"}', 400, "invalid_type", "id"),
        (b'{"id": true, "method": "ping"}', 400, "invalid_type", "id"),
        (b'{"id": 1, "method": "ping", "extra": 1}', 400, "unknown_parameter", "extra"),
        (b'{"id": 1, "method": "listassistants"}', 404, "unknown_method", "method"),
        (b'{"id": 1, "method": "createThread"}', 404, "unknown_method", "method"),
        (b'{"id": 1, "method": ""}', 404, "unknown_method", "method"),
    ],
)
def test_bad_envelopes(raw: bytes, status: int, code: str, param: str | None) -> None:
    error = decode_error(raw)
    assert (error.status, error.code, error.param) == (status, code, param)
    assert error.message


@pytest.mark.parametrize(
    ("method", "params", "code", "param"),
    [
        ("listAssistants", {"limit": "20"}, "invalid_type", "limit"),
        ("listAssistants", {"limit": 2.5}, "invalid_type", "limit"),
        ("listAssistants", {"limit": 0}, "integer_below_min_value", "limit"),
        ("listAssistants", {"limit": -5}, "integer_below_min_value", "limit"),
        ("listAssistants", {"limit": 101}, "integer_above_max_value", "limit"),
        ("listAssistants", {"order": "up"}, "invalid_value", "order"),
        ("listAssistants", {"after": 3}, "invalid_type", "after"),
        ("listAssistants", {"limti": 3}, "unknown_parameter", "limti"),
        ("listAssistants", 3, "invalid_type", "params"),
        ("listAssistants", [], "invalid_type", "params"),
        ("getAssistant", {}, "missing_required_parameter", "assistant_id"),
        ("getAssistant", {"assistant_id": 5}, "invalid_type", "assistant_id"),
        ("getAssistant", {"assistant_id": "a", "name": "x"}, "unknown_parameter", "name"),
        ("deleteAssistant", {"assistant_id": None}, "invalid_type", "assistant_id"),
        ("ping", {"verbose": True}, "unknown_parameter", "verbose"),
        ("createAssistant", {"tools": "retrieval"}, "invalid_type", "tools"),
        ("createAssistant", {"tools": [{"type": "x"}, 1]}, "invalid_type", "tools[1]"),
        ("createAssistant", {"models": ["a", 3]}, "invalid_type", "models[1]"),
        ("createAssistant", {"model": 3}, "invalid_type", "model"),
        ("createAssistant", {"temperature": "hot"}, "invalid_type", "temperature"),
        ("createAssistant", {"file_ids": [None]}, "invalid_type", "file_ids[0]"),
        ("createAssistant", {"metadata": []}, "invalid_type", "metadata"),
        ("createAssistant", {"assistant_id": "x"}, "unknown_parameter", "assistant_id"),
        ("modifyAssistant", {"name": "x"}, "missing_required_parameter", "assistant_id"),
        ("modifyAssistant", {"assistant_id": "a", "id": "b"}, "unknown_parameter", "id"),
        (
            "modifyAssistant",
            {"assistant_id": "a", "created_at": 1},
            "unknown_parameter",
            "created_at",
        ),
    ],
)
def test_bad_params(method: str, params: Any, code: str, param: str) -> None:
    error = decode_error(body({"id": 9, "method": method, "params": params}))
    assert isinstance(error, InvalidRequestError)
    assert (error.status, error.type, error.code, error.param) == (
        400,
        "invalid_request_error",
        code,
        param,
    )


def test_params_of_the_wrong_type_get_a_message_about_params() -> None:
    error = decode_error(b'{"id": 1, "method": "listAssistants", "params": 3}')
    assert error.param == "params"
    assert "params" in error.message


def test_limits_of_limit_are_inclusive() -> None:
    for limit in (1, 100):
        _, params = decode_request(
            body({"id": 1, "method": "listAssistants", "params": {"limit": limit}})
        )
        assert params.limit == limit


def test_over_the_size_limit_is_413() -> None:
    raw = body({"id": 77, "method": "getAssistant", "params": {"assistant_id": "jan"}})
    too_big = raw[:-1] + b" " * (REQUEST_MAX_BYTES - len(raw) + 1) + b"}"
    assert len(too_big) == REQUEST_MAX_BYTES + 1
    error = decode_error(too_big)
    assert isinstance(error, PayloadTooLargeError)
    assert (error.status, error.code) == (413, "request_too_large")
    assert str(REQUEST_MAX_BYTES) in error.message
    # The id is still there to answer with.
    assert recover_id(too_big) == 77


def test_exactly_the_size_limit_is_taken() -> None:
    raw = body({"id": 77, "method": "getAssistant", "params": {"assistant_id": "jan"}})
    padded = raw[:-1] + b" " * (REQUEST_MAX_BYTES - len(raw)) + b"}"
    assert len(padded) == REQUEST_MAX_BYTES
    request, params = decode_request(padded)
    assert (request.id, params.assistant_id) == (77, "jan")


# --- recover_id -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"id": 5, "method": 3}', 5),
        (b'{"id": "abc", "method": "nope"}', "abc"),
        (b'{"id": "abc", "params": {"limit": "x"}, "junk": [1]}', "abc"),
        (b'{"method": "ping"}', None),
        (b'{"id": null}', None),
        (b'{"id": 1.5}', None),
        (b'{"id": [1]}', None),
        (b"[1]", None),
        (b"not json", None),
        (b'{"id": 5, "method": ', None),
        (b"", None),
    ],
)
def test_recover_id(raw: bytes, expected: object) -> None:
    assert recover_id(raw) == expected


# --- replies --------------------------------------------------------------------------------


def test_encode_error_shape() -> None:
    error = InvalidRequestError("Bad limit.", param="limit", code="integer_below_min_value")
    reply = json.loads(encode_error(7, error))
    assert reply == {
        "id": 7,
        "error": {
            "message": "Bad limit.",
            "type": "invalid_request_error",
            "param": "limit",
            "code": "integer_below_min_value",
            "status": 400,
        },
    }


def test_encode_error_keeps_null_fields_and_null_id() -> None:
    reply = json.loads(encode_error(None, AssistantdError("Boom.")))
    assert reply == {
        "id": None,
        "error": {
            "message": "Boom.",
            "type": "server_error",
            "param": None,
            "code": None,
            "status": 500,
        },
    }


def test_encode_result_shapes() -> None:
    assert json.loads(encode_result("a", {"x": 1})) == {"id": "a", "result": {"x": 1}}
    assert json.loads(encode_result(1, None)) == {"id": 1, "result": None}
    assert json.loads(encode_result(1, msgspec.Raw(b'{"pre":"encoded"}'))) == {
        "id": 1,
        "result": {"pre": "encoded"},
    }
    result = json.loads(encode_result(2, Assistant(id="a", created_at=1)))["result"]
    assert (result["id"], result["object"], result["state"]) == ("a", "assistant", "ready")


def test_decode_reply_of_a_result() -> None:
    reply_id, result = decode_reply(encode_result("q", {"x": [1, 2]}))
    assert reply_id == "q"
    assert isinstance(result, msgspec.Raw)
    assert json.loads(bytes(result)) == {"x": [1, 2]}


@pytest.mark.parametrize(
    "error",
    [
        NotFoundError("No assistant found with id 'x'.", param="assistant_id"),
        ConflictError("Taken.", param="id", code="id_taken"),
        InvalidRequestError("Bad.", param="tools[3].type", code="invalid_type"),
    ],
)
def test_decode_reply_of_an_error(error: AssistantdError) -> None:
    reply_id, received = decode_reply(encode_error(3, error))
    assert reply_id == 3
    assert type(received) is type(error)
    assert isinstance(received, AssistantdError)
    assert received.to_object() == error.to_object()


def test_decode_reply_without_result_or_error_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_reply(b'{"id": 1}')
