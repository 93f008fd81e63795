"""The assistant object: defaults for files on disk, the model/models rule, OpenAI's limits."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest

from assistantd.protocol import limits
from assistantd.protocol.assistant import (
    Assistant,
    DefinitionFields,
    apply_fields,
    assistant_from_document,
    document_for_new,
)
from assistantd.protocol.errors import InvalidRequestError

# What the Jan app writes for its default assistant (created_at from `Date.now()`, no models).
JAN_FILE: dict[str, Any] = {
    "avatar": "",
    "object": "assistant",
    "created_at": 1715132389207,
    "name": "Jan",
    "description": "A default assistant that can use all downloaded models",
    "model": "*",
    "instructions": "",
    "tools": [
        {
            "type": "retrieval",
            "enabled": False,
            "useTimeWeightedRetriever": False,
            "settings": {"top_k": 2, "chunk_size": 1024, "chunk_overlap": 64},
        }
    ],
    "file_ids": [],
}


def load(document: dict[str, Any], assistant_id: str = "ada", mtime: float = 0) -> Assistant:
    return assistant_from_document(document, assistant_id=assistant_id, mtime=mtime)


def error_of(document: dict[str, Any]) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        load(document)
    return caught.value


# --- defaults -------------------------------------------------------------------------------


def test_empty_document_takes_every_default() -> None:
    assistant = load({}, assistant_id="ada", mtime=1_700_000_123.9)
    assert assistant.id == "ada"
    assert assistant.name == "ada"
    assert assistant.object == "assistant"
    assert assistant.model == "*"
    assert assistant.models == ["*"]
    assert assistant.created_at == 1_700_000_123
    assert assistant.tools == []
    assert assistant.file_ids == []
    assert assistant.state == "ready"
    assert assistant.instructions is None
    assert assistant.metadata is None


def test_null_name_defaults_to_the_folder_name() -> None:
    assert load({"name": None}, assistant_id="bob").name == "bob"


def test_the_folder_name_is_the_id_whatever_the_file_says() -> None:
    assert load({"id": "someone-else", "name": "X"}, assistant_id="copy").id == "copy"


def test_state_is_passed_through() -> None:
    doc: dict[str, Any] = {}
    assert assistant_from_document(doc, assistant_id="a", mtime=0, state="running").state == (
        "running"
    )


def test_jan_app_file_loads() -> None:
    document = copy.deepcopy(JAN_FILE)
    assistant = load(document, assistant_id="jan", mtime=5)
    assert assistant.id == "jan"
    assert assistant.name == "Jan"
    assert assistant.created_at == 1715132389
    assert (assistant.model, assistant.models) == ("*", ["*"])
    # Tools keep the keys that OpenAI does not know, with their values.
    assert assistant.tools == JAN_FILE["tools"]
    assert assistant.instructions == ""
    assert document == JAN_FILE  # the document itself is not changed


@pytest.mark.parametrize(
    ("created_at", "expected"),
    [
        (0, 0),
        (1_700_000_000, 1_700_000_000),
        (1_700_000_000.123, 1_700_000_000),  # seconds as a float (older Jan)
        (1_700_000_000_123, 1_700_000_000),  # milliseconds (Date.now())
        (1_700_000_000_123.0, 1_700_000_000),  # milliseconds as a float
        (99_999_999_999, 99_999_999_999),  # the largest value still taken as seconds
        (100_000_000_000, 100_000_000),  # the smallest taken as milliseconds
    ],
)
def test_created_at_forms(created_at: float, expected: int) -> None:
    assistant = load({"created_at": created_at}, mtime=42)
    assert assistant.created_at == expected
    assert type(assistant.created_at) is int


def test_created_at_from_a_json_file_with_a_float() -> None:
    document = msgspec.json.decode(b'{"created_at": 1700000000.123}')
    assert load(document).created_at == 1_700_000_000


@pytest.mark.parametrize("created_at", [-1, -0.5, "yesterday", True, None])
def test_bad_created_at_names_the_field(created_at: Any) -> None:
    error = error_of({"created_at": created_at})
    assert error.status == 400
    assert error.param == "created_at"


def test_wrong_type_names_the_field_path() -> None:
    error = error_of({"tools": [{"type": "x"}, 3]})
    assert (error.param, error.code) == ("tools[1]", "invalid_type")
    error = error_of({"name": 5})
    assert (error.param, error.code) == ("name", "invalid_type")


def test_wrong_metadata_value_type_names_a_real_path() -> None:
    # msgspec reports a dict value as `$.metadata[...]`; that is not a path a client can use.
    error = error_of({"metadata": {"k": 1}})
    assert error.param is not None
    assert error.param.startswith("metadata")
    assert "[...]" not in error.param


# --- model and models -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "model", "models"),
    [
        ({}, "*", ["*"]),
        ({"model": "*"}, "*", ["*"]),
        ({"model": "gpt-4o"}, "gpt-4o", ["gpt-4o"]),
        ({"model": ["llama3", "mistral"]}, "llama3", ["llama3", "mistral"]),
        ({"models": ["llama3", "mistral"]}, "llama3", ["llama3", "mistral"]),
        ({"model": "mistral", "models": ["llama3", "mistral"]}, "mistral", ["llama3", "mistral"]),
        ({"model": "phi", "models": ["llama3", "mistral"]}, "phi", ["phi", "llama3", "mistral"]),
    ],
)
def test_model_rule_on_documents(document: dict[str, Any], model: str, models: list[str]) -> None:
    assistant = load(document)
    assert (assistant.model, assistant.models) == (model, models)
    assert assistant.model in assistant.models


@pytest.mark.parametrize(
    ("fields", "model", "models"),
    [
        (DefinitionFields(model="gpt-4o"), "gpt-4o", ["gpt-4o"]),
        (DefinitionFields(model=["a", "b"]), "a", ["a", "b"]),
        (DefinitionFields(models=["a", "b"]), "a", ["a", "b"]),
        (DefinitionFields(model="b", models=["a", "b"]), "b", ["a", "b"]),
        (DefinitionFields(model="c", models=["a", "b"]), "c", ["c", "a", "b"]),
    ],
)
def test_model_rule_on_apply_fields(
    fields: DefinitionFields, model: str, models: list[str]
) -> None:
    document = apply_fields({"model": "old", "models": ["old"]}, fields)
    assert (document["model"], document["models"]) == (model, models)


def test_apply_fields_without_model_leaves_model_fields_alone() -> None:
    document = {"model": "m", "models": ["m", "n"], "x": 1}
    assert apply_fields(document, DefinitionFields(name="n")) == {
        "model": "m",
        "models": ["m", "n"],
        "x": 1,
        "name": "n",
    }
    assert apply_fields({}, DefinitionFields()) == {}


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        (DefinitionFields(models=[]), "models", "array_below_min_length"),
        (DefinitionFields(model=[]), "model", "array_below_min_length"),
        (DefinitionFields(model="x", models=[]), "models", "array_below_min_length"),
        (DefinitionFields(model=["a"], models=["b"]), "model", "invalid_value"),
        (
            DefinitionFields(models=["m"] * (limits.MODELS_MAX_ITEMS + 1)),
            "models",
            "array_above_max_length",
        ),
    ],
)
def test_model_rule_errors(fields: DefinitionFields, param: str, code: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        apply_fields({}, fields)
    assert (caught.value.status, caught.value.param, caught.value.code) == (400, param, code)


def test_empty_models_in_a_file_is_refused() -> None:
    error = error_of({"models": []})
    assert (error.status, error.param, error.code) == (400, "models", "array_below_min_length")


# --- limits ---------------------------------------------------------------------------------

TOOL = {"type": "code_interpreter"}


def pairs(n: int) -> dict[str, str]:
    return {f"k{i}": "v" for i in range(n)}


@pytest.mark.parametrize(
    ("document", "param", "code"),
    [
        ({"name": "x" * 257}, "name", "string_above_max_length"),
        ({"description": "x" * 513}, "description", "string_above_max_length"),
        ({"instructions": "x" * 256_001}, "instructions", "string_above_max_length"),
        ({"tools": [TOOL] * 129}, "tools", "array_above_max_length"),
        ({"metadata": pairs(17)}, "metadata", "object_above_max_properties"),
        ({"metadata": {"k" * 65: "v"}}, "metadata", "string_above_max_length"),
        ({"metadata": {"key": "v" * 513}}, "metadata.key", "string_above_max_length"),
        ({"temperature": -0.01}, "temperature", "decimal_below_min_value"),
        ({"temperature": 2.01}, "temperature", "decimal_above_max_value"),
        ({"top_p": -0.01}, "top_p", "decimal_below_min_value"),
        ({"top_p": 1.01}, "top_p", "decimal_above_max_value"),
        ({"tools": [TOOL, {"enabled": True}]}, "tools[1].type", "missing_required_parameter"),
        ({"tools": [{"type": 3}]}, "tools[0].type", "invalid_type"),
        ({"tools": [{"type": None}]}, "tools[0].type", "invalid_type"),
    ],
)
def test_limit_violations(document: dict[str, Any], param: str, code: str) -> None:
    error = error_of(document)
    assert (error.status, error.type, error.param, error.code) == (
        400,
        "invalid_request_error",
        param,
        code,
    )
    assert param.split(".")[0].split("[")[0] in error.message


@pytest.mark.parametrize(
    "document",
    [
        {"name": "x" * 256},
        {"name": "é" * 256},  # characters, not bytes
        {"description": "x" * 512},
        {"instructions": "x" * 256_000},
        {"tools": [TOOL] * 128},
        {"metadata": pairs(16)},
        {"metadata": {"k" * 64: "v" * 512}},
        {"metadata": {}},
        {"temperature": 0},
        {"temperature": 2},
        {"top_p": 0.0},
        {"top_p": 1.0},
    ],
)
def test_values_at_the_limit_are_taken(document: dict[str, Any]) -> None:
    assistant = load(document)
    for key, value in document.items():
        assert getattr(assistant, key) == value


def test_limits_apply_to_fields_from_a_create() -> None:
    draft = apply_fields({}, DefinitionFields(name="x" * 257))
    with pytest.raises(InvalidRequestError) as caught:
        load(draft)
    assert caught.value.param == "name"


# --- unknown fields are kept exactly ----------------------------------------------------------

UNKNOWN = (
    b'{"x-nested": {"a": [1, {"b": null, "c": [true, false]}], "d": {}},'
    b' "x-bigint": 123456789012345678901234567890,'
    b' "x-negbig": -36893488147419103232,'
    b' "x-floats": [0.1, 1e-300, 1.7976931348623157e308, -0.0, 2.5],'
    b' "x-int-like-float": 1.0,'
    b' "x-unicode": "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\xa4\x96 \\u0000 \\"q\\"",'
    b' "x-empty": ""}'
)


def test_apply_fields_keeps_unknown_fields_and_their_values() -> None:
    unknown = msgspec.json.decode(UNKNOWN)
    document = {"name": "old", "created_at": 5, **copy.deepcopy(unknown)}
    fields = DefinitionFields(
        name="new", description=None, model="llama3", metadata={"k": "v"}, temperature=0.5
    )
    result = apply_fields(document, fields)
    assert result is document
    for key, value in unknown.items():
        # Compare the JSON too: 1.0 == 1 and -0.0 == 0.0 in Python, not on the wire.
        assert msgspec.json.encode(result[key]) == msgspec.json.encode(value), key
    assert result["x-bigint"] == 123456789012345678901234567890
    assert type(result["x-int-like-float"]) is float
    assert result["name"] == "new"
    assert result["description"] is None
    assert result["metadata"] == {"k": "v"}
    assert result["temperature"] == 0.5
    assert result["created_at"] == 5


def test_apply_fields_writes_builtins() -> None:
    document = apply_fields({}, DefinitionFields(tools=[{"type": "x", "settings": {"a": 1}}]))
    assert document == {"tools": [{"type": "x", "settings": {"a": 1}}]}
    # What apply_fields writes must encode as JSON as it is.
    assert msgspec.json.decode(msgspec.json.encode(document)) == document


def test_document_for_new_has_no_state_and_no_nulls() -> None:
    assistant = load({"model": "m", "description": None, "metadata": {"a": "b"}}, "ada", 7)
    document = document_for_new(assistant)
    assert "state" not in document
    assert None not in document.values()
    assert document["id"] == "ada"
    assert document["created_at"] == 7
    assert (document["model"], document["models"]) == ("m", ["m"])
    # It loads back into the same assistant.
    assert load(document, "ada", 999) == assistant
