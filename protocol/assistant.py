"""The assistant object: OpenAI's assistant plus Jan's fields, and the rules that make one.

Three shapes meet here:

* :class:`Assistant`, the object every reply and event carries (always complete);
* the JSON object in ``assistant.json`` on disk, in which no field is required and fields this
  module does not know are kept as they are;
* :class:`DefinitionFields`, the settable fields of createAssistant and modifyAssistant, where a
  field that is absent (``UNSET``) is left alone.

The ``model``/``models`` rule (PROTOCOL.md, "model and models"): OpenAI sends ``model`` as a
string, Jan's spec sends ``models`` as a list and once ``model`` as a list. All three are taken;
the object always carries both, ``model`` a string and ``models`` a list that contains it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from . import limits
from .errors import InvalidRequestError
from .validation import (
    check_array,
    check_object_size,
    check_string,
    from_validation_error,
)

State = Literal["to_download", "downloading", "ready", "running"]
ANY_MODEL = "*"

# A `created_at` above this is taken to be in milliseconds (Jan wrote `Date.now()` for a while);
# in seconds it would be the year 5138.
_MILLISECONDS_FROM = 100_000_000_000
# The largest integer JavaScript clients read exactly; anything above is not a time anyway.
_LATEST = 2**53 - 1


WorkerStatus = Literal["starting", "up", "restarting", "stopping", "stopped"]
WorkerStyle = Literal["process", "module", "default"]
StopStep = Literal["disconnect", "SIGTERM", "SIGKILL"]


class WorkerExit(msgspec.Struct, kw_only=True):
    """How a worker process ended."""

    pid: int
    code: int | None
    """The exit code, or None when a signal ended it."""
    signal: str | None
    """The signal's name (``"SIGKILL"``), or None when it exited."""
    time: float
    stopped_by: StopStep | None = None
    """For a stop the daemon asked for, the step that ended it: ``disconnect`` (closing the
    channel, and ``dispose()`` for module-style code), ``SIGTERM`` or ``SIGKILL``; None when the
    worker ended on its own."""


class Runtime(msgspec.Struct, kw_only=True):
    """What the daemon knows of an assistant's worker (None until it is first started)."""

    status: WorkerStatus
    """``starting`` (before it is up), ``up``, ``restarting`` (down, to be started again after
    ``retry_at``), ``stopping``, ``stopped``."""
    pid: int | None = None
    style: WorkerStyle | None = None
    """``process`` (fork or utilityProcess code), ``module`` (Jan module code) or ``default``
    (no ``src/process.js``); None until the worker is up."""
    methods: list[str] = msgspec.field(default_factory=list)
    """What ``invokeAssistant`` can call, as the worker reported it (empty for process style)."""
    up_since: float | None = None
    restarts: int = 0
    """Automatic restarts since the last start command."""
    retry_at: float | None = None
    last_exit: WorkerExit | None = None
    error: dict[str, Any] | None = None
    """Why the worker is not running when it should be: an error object (``message``, ``type``,
    ``param``, ``code``) such as ``restart_limit`` or ``install_failed``."""


class Download(msgspec.Struct, kw_only=True):
    """Where a ``to_download`` or ``downloading`` assistant comes from (None once on disk)."""

    url: str
    sha256: str | None = None
    start: bool = False
    """Whether it is started once downloaded."""
    error: dict[str, Any] | None = None
    """Why the last attempt failed or was cancelled (an error object), or None."""


class Assistant(msgspec.Struct, kw_only=True):
    """An assistant as the protocol returns it (OpenAI's object, Jan's fields, the state)."""

    id: str
    object: Literal["assistant"] = "assistant"
    created_at: int
    name: str | None = None
    description: str | None = None
    model: str = ANY_MODEL
    models: list[str] = msgspec.field(default_factory=lambda: [ANY_MODEL])
    instructions: str | None = None
    tools: list[dict[str, Any]] = msgspec.field(default_factory=list)
    file_ids: list[str] = msgspec.field(default_factory=list)
    metadata: dict[str, str] | None = None
    avatar: str = ""
    thread_location: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    response_format: str | dict[str, Any] | None = None
    tool_resources: dict[str, Any] | None = None
    state: State = "ready"
    runtime: Runtime | None = None
    download: Download | None = None


# OpenAI's limits as msgspec constraints, so that they are checked in C while decoding (this
# halved the time to load a large folder); validation.py gives their errors OpenAI's codes.
Name = Annotated[str, msgspec.Meta(max_length=limits.NAME_MAX_CHARS)]
Description = Annotated[str, msgspec.Meta(max_length=limits.DESCRIPTION_MAX_CHARS)]
Instructions = Annotated[str, msgspec.Meta(max_length=limits.INSTRUCTIONS_MAX_CHARS)]
ModelList = Annotated[list[str], msgspec.Meta(min_length=1, max_length=limits.MODELS_MAX_ITEMS)]
Tools = Annotated[list[dict[str, Any]], msgspec.Meta(max_length=limits.TOOLS_MAX_ITEMS)]
Temperature = Annotated[
    float, msgspec.Meta(ge=limits.TEMPERATURE_RANGE[0], le=limits.TEMPERATURE_RANGE[1])
]
TopP = Annotated[float, msgspec.Meta(ge=limits.TOP_P_RANGE[0], le=limits.TOP_P_RANGE[1])]


class DefinitionFields(msgspec.Struct, kw_only=True):
    """The fields a client may set; ``UNSET`` means "not given"."""

    name: Name | UnsetType | None = UNSET
    description: Description | UnsetType | None = UNSET
    model: str | ModelList | UnsetType = UNSET
    models: ModelList | UnsetType = UNSET
    instructions: Instructions | UnsetType | None = UNSET
    tools: Tools | UnsetType = UNSET
    file_ids: list[str] | UnsetType = UNSET
    metadata: dict[str, str] | UnsetType | None = UNSET
    avatar: str | UnsetType = UNSET
    thread_location: str | UnsetType | None = UNSET
    temperature: Temperature | UnsetType | None = UNSET
    top_p: TopP | UnsetType | None = UNSET
    response_format: str | dict[str, Any] | UnsetType | None = UNSET
    tool_resources: dict[str, Any] | UnsetType | None = UNSET


class _DiskFields(DefinitionFields, kw_only=True):
    """What ``assistant.json`` may hold; unknown fields are allowed (and kept by the caller)."""

    created_at: int | float | UnsetType = UNSET


_disk_decoder = msgspec.json.Decoder(_DiskFields)

_PLAIN_FIELDS = tuple(
    name for name in DefinitionFields.__struct_fields__ if name not in ("model", "models")
)


def apply_fields(document: dict[str, Any], fields: DefinitionFields) -> dict[str, Any]:
    """Write the given ``fields`` into a JSON ``document`` (the file's content), in place.

    Fields the module does not know stay as they are; ``model`` and ``models`` are written in
    their normal form (see the module docstring).

    >>> doc = {"name": "old", "x-mine": [1, 2]}
    >>> apply_fields(doc, DefinitionFields(name="new", model="llama3"))
    {'name': 'new', 'x-mine': [1, 2], 'model': 'llama3', 'models': ['llama3']}
    """
    for name in _PLAIN_FIELDS:
        value = getattr(fields, name)
        if value is not UNSET:
            document[name] = msgspec.to_builtins(value)
    if fields.model is not UNSET or fields.models is not UNSET:
        model, models = _normal_models(fields.model, fields.models)
        document["model"] = model
        document["models"] = models
    return document


def _normal_models(
    model: str | list[str] | UnsetType | None,
    models: list[str] | UnsetType | None,
) -> tuple[str, list[str]]:
    param = "models"
    if isinstance(model, list):
        # Jan's create example sends the list as `model`.
        if models is UNSET or models is None:
            models, model, param = model, UNSET, "model"
        else:
            raise InvalidRequestError(
                "Give the list of models as 'models'; 'model' then names one of them.",
                param="model",
                code="invalid_value",
            )
    if isinstance(models, list):
        # Decoded params are checked by their types already; this also covers Structs built
        # in code, which msgspec does not validate.
        check_array(models, param, max_items=limits.MODELS_MAX_ITEMS, min_items=1)
        if isinstance(model, str):
            return model, models if model in models else [model, *models]
        return models[0], list(models)
    if isinstance(model, str):
        return model, [model]
    return ANY_MODEL, [ANY_MODEL]


def assistant_from_document(
    document: Mapping[str, Any], *, assistant_id: str, mtime: float, state: State = "ready"
) -> Assistant:
    """The :class:`Assistant` that an ``assistant.json`` document defines.

    ``assistant_id`` is the folder's name: it is the id, whatever the file says (so a copied
    folder is a new assistant). No field is required: ``name`` defaults to the id, ``models`` to
    ``["*"]`` and ``created_at`` to ``mtime``. A bad value raises :class:`InvalidRequestError`
    naming the field.

    >>> a = assistant_from_document({"model": "*", "created_at": 1700000000123.0},
    ...                             assistant_id="jan", mtime=0)
    >>> (a.id, a.name, a.model, a.models, a.created_at)
    ('jan', 'jan', '*', ['*'], 1700000000)
    """
    try:
        fields = msgspec.convert(document, _DiskFields)
    except msgspec.ValidationError as exc:
        raise from_validation_error(exc) from None
    return _from_fields(fields, assistant_id=assistant_id, mtime=mtime, state=state)


def assistant_from_json(
    data: bytes, *, assistant_id: str, mtime: float, state: State = "ready"
) -> Assistant:
    """:func:`assistant_from_document` for the bytes of a file, decoded in one pass.

    Unknown fields are skipped rather than kept, which is what loading wants: only a modify
    needs the whole document.
    """
    try:
        fields = _disk_decoder.decode(data)
    except msgspec.ValidationError as exc:
        if str(exc).startswith("Expected `object`"):  # the document itself, not a field
            raise InvalidRequestError("must hold a JSON object", code="invalid_type") from None
        raise from_validation_error(exc) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(f"is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:
        raise InvalidRequestError("is nested too deeply to be read", code="invalid_json") from None
    return _from_fields(fields, assistant_id=assistant_id, mtime=mtime, state=state)


def _from_fields(
    fields: _DiskFields, *, assistant_id: str, mtime: float, state: State
) -> Assistant:
    # One constructor call with every field: this runs for each file at start, and setting
    # the fields one by one after construction took twice as long.
    model, models = _normal_models(fields.model, fields.models)
    unset = UNSET
    assistant = Assistant(
        id=assistant_id,
        created_at=_created_at(fields.created_at, mtime),
        name=assistant_id if fields.name is unset or fields.name is None else fields.name,
        description=None if fields.description is unset else fields.description,
        model=model,
        models=models,
        instructions=None if fields.instructions is unset else fields.instructions,
        tools=[] if fields.tools is unset else fields.tools,
        file_ids=[] if fields.file_ids is unset else fields.file_ids,
        metadata=None if fields.metadata is unset else fields.metadata,
        avatar="" if fields.avatar is unset else fields.avatar,
        thread_location=None if fields.thread_location is unset else fields.thread_location,
        temperature=None if fields.temperature is unset else fields.temperature,
        top_p=None if fields.top_p is unset else fields.top_p,
        response_format=None if fields.response_format is unset else fields.response_format,
        tool_resources=None if fields.tool_resources is unset else fields.tool_resources,
        state=state,
    )
    check_limits(assistant)
    return assistant


def _created_at(value: int | float | UnsetType, mtime: float) -> int:
    if isinstance(value, UnsetType):
        return int(mtime)
    if value < 0:
        raise InvalidRequestError(
            "Invalid 'created_at': a Unix time must not be negative.",
            param="created_at",
            code="invalid_value",
        )
    if value >= _MILLISECONDS_FROM:
        value = value / 1000
    if value > _LATEST:
        raise InvalidRequestError(
            f"Invalid 'created_at': {value!r} is not a plausible Unix time.",
            param="created_at",
            code="invalid_value",
        )
    return int(value)


def check_limits(assistant: Assistant) -> None:
    """Raise a 400 for a limit that the field types cannot state: every tool has a string
    ``type``, and metadata keys and values (checked here to name the key in ``param``)."""
    for index, tool in enumerate(assistant.tools):
        if not isinstance(tool.get("type"), str):
            raise InvalidRequestError(
                f"Invalid 'tools[{index}].type': every tool needs a 'type' string.",
                param=f"tools[{index}].type",
                code="missing_required_parameter" if "type" not in tool else "invalid_type",
            )
    if assistant.metadata is not None:
        check_object_size(assistant.metadata, "metadata", limits.METADATA_MAX_PAIRS)
        for key, value in assistant.metadata.items():
            check_string(key, "metadata", limits.METADATA_KEY_MAX_CHARS)
            check_string(value, f"metadata.{key}", limits.METADATA_VALUE_MAX_CHARS)


def document_for_new(assistant: Assistant) -> dict[str, Any]:
    """The ``assistant.json`` content for a newly created assistant: every set field, no state."""
    document: dict[str, Any] = msgspec.to_builtins(assistant)
    del document["state"]
    return {key: value for key, value in document.items() if value is not None}
