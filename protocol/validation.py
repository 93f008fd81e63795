"""Turning bad values into OpenAI-style 400 errors.

msgspec checks types and reports a path such as ``$.tools[3].type``; this module turns that into
the ``param`` of the error (``tools[3].type``) and an OpenAI ``code``. The limit checks that
msgspec cannot express with the codes OpenAI uses live here too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from .errors import InvalidRequestError

_AT_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_FIELD = re.compile(r"field `(?P<field>[^`]+)`")
# msgspec's words for a broken constraint, and the OpenAI code and wording for each.
_CONSTRAINT = re.compile(
    r"Expected `(?P<kind>int|float|str|array|object)`(?: of length)? (?P<op>>=|<=|>|<) "
    r"(?P<bound>[-\d.]+)$"
)
_CONSTRAINTS = {
    ("int", ">"): ("integer_below_min_value", "integer below minimum value", "a value >="),
    ("int", "<"): ("integer_above_max_value", "integer above maximum value", "a value <="),
    ("float", ">"): ("decimal_below_min_value", "decimal below minimum value", "a value >="),
    ("float", "<"): ("decimal_above_max_value", "decimal above maximum value", "a value <="),
    ("str", ">"): (
        "string_below_min_length",
        "string too short",
        "a string with minimum length",
    ),
    ("str", "<"): (
        "string_above_max_length",
        "string too long",
        "a string with maximum length",
    ),
    ("array", "<"): (
        "array_above_max_length",
        "array too long",
        "an array with maximum length",
    ),
    ("array", ">"): (
        "array_below_min_length",
        "array too short",
        "an array with minimum length",
    ),
    ("object", "<"): (
        "object_above_max_properties",
        "too many properties",
        "an object with at most this many properties:",
    ),
}


def _join(prefix: str | None, path: str) -> str | None:
    # msgspec writes a dict value's place as `[...]` (it does not say which key): name the dict.
    path = path.replace("[...]", "").removeprefix(".")
    if prefix and path:
        return f"{prefix}.{path}" if not path.startswith("[") else f"{prefix}{path}"
    return prefix or path or None


def from_validation_error(
    exc: msgspec.ValidationError, *, prefix: str | None = None, whole: str | None = None
) -> InvalidRequestError:
    """The 400 error for a msgspec validation failure, with ``param`` naming the field.

    ``prefix`` is put in front of every path; ``whole`` names the value itself when the
    failure is about all of it rather than one field.

    >>> class P(msgspec.Struct, forbid_unknown_fields=True):
    ...     limit: int = 20
    >>> try:
    ...     msgspec.convert({"limit": "x"}, P)
    ... except msgspec.ValidationError as exc:
    ...     err = from_validation_error(exc)
    >>> (err.param, err.code)
    ('limit', 'invalid_type')
    """
    text = str(exc)
    path = ""
    if match := _AT_PATH.search(text):
        path = match["path"]
        text = text[: match.start()]
    field = _FIELD.search(text)
    if text.startswith("Object contains unknown field") and field:
        param = _join(prefix, f"{path}.{field['field']}")
        return InvalidRequestError(
            f"Unrecognized request argument supplied: {param}.",
            param=param,
            code="unknown_parameter",
        )
    if text.startswith("Object missing required field") and field:
        param = _join(prefix, f"{path}.{field['field']}")
        return InvalidRequestError(
            f"Missing required parameter: '{param}'.",
            param=param,
            code="missing_required_parameter",
        )
    param = _join(prefix, path) or whole
    if (bound := _CONSTRAINT.match(text)) and (
        known := _CONSTRAINTS.get((bound["kind"], bound["op"][0]))
    ):
        code, problem, expected = known
        return InvalidRequestError(
            f"Invalid '{param}': {problem}. Expected {expected} {bound['bound']}.",
            param=param,
            code=code,
        )
    # "Expected `str` matching regex ..." is a value of the right type that breaks a rule.
    wrong_type = text.startswith("Expected") and "matching regex" not in text
    code = "invalid_type" if wrong_type else "invalid_value"
    where = f"'{param}'" if param else "the request"
    return InvalidRequestError(f"Invalid value for {where}: {text}.", param=param, code=code)


def check_string(value: str | None, param: str, max_chars: int) -> None:
    if value is not None and len(value) > max_chars:
        raise InvalidRequestError(
            f"Invalid '{param}': string too long. Expected a string with maximum length "
            f"{max_chars}, but got a string with length {len(value)} instead.",
            param=param,
            code="string_above_max_length",
        )


def check_array(value: Sequence[Any], param: str, max_items: int, min_items: int = 0) -> None:
    if len(value) > max_items:
        raise InvalidRequestError(
            f"Invalid '{param}': array too long. Expected an array with maximum length "
            f"{max_items}, but got an array with length {len(value)} instead.",
            param=param,
            code="array_above_max_length",
        )
    if len(value) < min_items:
        raise InvalidRequestError(
            f"Invalid '{param}': empty array. Expected an array with minimum length "
            f"{min_items}, but got an empty array instead.",
            param=param,
            code="array_below_min_length",
        )


def check_object_size(value: Mapping[str, Any], param: str, max_pairs: int) -> None:
    if len(value) > max_pairs:
        raise InvalidRequestError(
            f"Invalid '{param}': too many properties. Expected an object with at most "
            f"{max_pairs} properties, but got an object with {len(value)} properties instead.",
            param=param,
            code="object_above_max_properties",
        )
