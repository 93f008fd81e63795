"""Settings from a table of the config file (``[workers]``, ``[acquire]``, the gateway's
``[http]``), checked by type; and the file's reading, for the daemon and the gateway.

A settings class is a frozen dataclass whose fields have defaults; a key of the table is a field
name with ``-`` for ``_``. What each annotation takes:

- ``str``: a non-empty string; ``bool``: true or false;
- ``int``: a whole number, 0 or more; ``float``: a positive number (seconds, or a size);
- ``tuple[str, ...]``: a list of names (no ``=``, not empty).
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def read_toml(path: Path) -> dict[str, Any]:
    """The config file at ``path``; ValueError saying why it cannot be read."""
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise ValueError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {path} is not valid TOML: {exc}") from None


def from_table(cls: type[T], table: Mapping[str, Any], *, section: str, where: str) -> T:
    """``cls`` with the values ``table`` gives; ValueError naming the key for a bad one.

    >>> @dataclasses.dataclass(frozen=True)
    ... class S:
    ...     timeout: float = 1.0
    ...     names: tuple[str, ...] = ()
    >>> from_table(S, {"timeout": 2, "names": ["A"]}, section="s", where="config")
    S(timeout=2.0, names=('A',))
    >>> from_table(S, {"timeout": 0}, section="s", where="config")
    Traceback (most recent call last):
    ...
    ValueError: config: [s] timeout must be a positive number
    """
    assert dataclasses.is_dataclass(cls)
    values: dict[str, Any] = {}
    types = {f.name: f.type for f in dataclasses.fields(cls)}
    for key, value in table.items():
        name = key.replace("-", "_")
        problem = f"{where}: [{section}] {key}"
        if name not in types:
            raise ValueError(f"{where}: unknown key {key!r} in [{section}]")
        kind = types[name]
        if kind == "str":
            if not isinstance(value, str) or not value:
                raise ValueError(f"{problem} must be a non-empty string")
        elif kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{problem} must be true or false")
        elif kind == "int":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{problem} must be a whole number, 0 or more")
        elif kind == "float":
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{problem} must be a positive number")
            value = float(value)
        else:  # tuple[str, ...]: names
            if not isinstance(value, list) or not all(
                isinstance(item, str) and item and "=" not in item for item in value
            ):
                raise ValueError(f"{problem} must be a list of names")
            value = tuple(value)
        values[name] = value
    return cls(**values)
