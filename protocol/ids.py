"""Assistant ids.

An assistant's id is the name of its folder under the root, so every id that comes from outside
is checked before it gets near a path: no ``..``, no separators, no NUL, nothing absolute, nothing
hidden (the daemon keeps its own bookkeeping in dot-folders of the root).
"""

from __future__ import annotations

import secrets
import unicodedata

from .errors import InvalidRequestError
from .limits import ID_MAX_BYTES, ID_MAX_CHARS

DEFAULT_ASSISTANT_ID = "jan"


def id_problem(value: str) -> str | None:
    """Why ``value`` cannot be an assistant id, or None when it can.

    >>> id_problem("jan") is None
    True
    >>> id_problem("../etc")
    'must not start with a dot'
    >>> id_problem("a/b")
    'must not contain a path separator or NUL'
    """
    if not value:
        return "must not be empty"
    if len(value) > ID_MAX_CHARS:
        return f"must be at most {ID_MAX_CHARS} characters"
    if value.startswith("."):
        return "must not start with a dot"
    if "/" in value or "\\" in value or "\0" in value:
        return "must not contain a path separator or NUL"
    # isprintable() is False for every control (and some other) character; only then is the
    # per-character look-up needed, which keeps the check cheap for every ordinary id.
    if not value.isprintable() and any(unicodedata.category(ch)[0] == "C" for ch in value):
        return "must not contain control characters"
    if value != value.strip():
        return "must not start or end with white space"
    if len(value.encode("utf-8", "surrogatepass")) > ID_MAX_BYTES:
        return f"must be at most {ID_MAX_BYTES} bytes in UTF-8"
    return None


def check_assistant_id(value: str, param: str = "assistant_id") -> str:
    """``value`` if it is a safe assistant id; a 400 naming ``param`` otherwise."""
    if problem := id_problem(value):
        raise InvalidRequestError(
            f"Invalid '{param}': {value!r} is not a valid assistant id: it {problem}.",
            param=param,
            code="invalid_id",
        )
    return value


def new_assistant_id() -> str:
    """A fresh id in OpenAI's form: ``asst_`` and 24 random letters and digits."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "asst_" + "".join(secrets.choice(alphabet) for _ in range(24))
