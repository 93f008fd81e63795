"""The protocol as one JSON Schema: every method's params and result, the error object, every
event, for clients in other languages to generate their types from (the Node client's
``types/protocol.d.ts``), so that they cannot drift from these Structs.

The schema's root has three properties, each naming a definition in ``$defs``:

- ``methods``: ``Methods``, an object with one property per method, ``{params, result}``;
- ``error``: ``ErrorObject``, the ``error`` member of an error reply;
- ``event``: ``Event``, any event (a union tagged by ``topic``).

What the daemon sends (results, events, the error object) is described as it is sent: every
field is required, since msgspec writes each one, defaults included (PROTOCOL.md: "All fields
are always present"), except in Structs that leave defaults out (``omit_defaults``), such as
the error object's ``details``. Params are described as they are taken: a field with a default
may be left out.

>>> schema = protocol_schema()
>>> schema["properties"]["methods"]
{'$ref': '#/$defs/Methods'}
>>> from assistantd.protocol.messages import METHOD_PARAMS
>>> schema["$defs"]["Methods"]["required"] == sorted(METHOD_PARAMS)
True
>>> len(schema["$defs"]["Event"]["anyOf"]), schema["$defs"]["Event"]["anyOf"][0]
(12, {'$ref': '#/$defs/AssistantCreated'})
>>> schema["$defs"]["Methods"]["properties"]["getAssistant"]["properties"]
{'params': {'$ref': '#/$defs/AssistantRef'}, 'result': {'$ref': '#/$defs/Assistant'}}
>>> "name" in schema["$defs"]["Assistant"]["required"], schema["$defs"]["ErrorObject"]["required"]
(True, ['message', 'type', 'param', 'code', 'status'])
>>> schema["$defs"]["ListAssistantsParams"]["required"]
[]
>>> schema["$defs"]["DaemonHeartbeat"]["required"]
['topic', 'epoch', 'time', 'seq']
"""

from __future__ import annotations

from typing import Any, get_args

import msgspec
import msgspec.inspect

from .codec import ErrorObject
from .events import AnyEvent
from .messages import METHOD_PARAMS, METHOD_RESULTS

REF_TEMPLATE = "#/$defs/{name}"


def protocol_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the whole protocol; see the module docstring."""
    methods = sorted(METHOD_PARAMS)
    params = [METHOD_PARAMS[name] for name in methods]
    outputs: list[Any] = [METHOD_RESULTS[name] for name in methods]
    outputs += [ErrorObject, *get_args(AnyEvent)]
    refs, defs = msgspec.json.schema_components(
        [*params, *outputs], schema_hook=_any_object, ref_template=REF_TEMPLATE
    )
    param_refs, output_refs = refs[: len(params)], refs[len(params) :]
    result_refs, error_ref = output_refs[: len(methods)], output_refs[len(methods)]
    event_refs = output_refs[len(methods) + 1 :]
    taken = {struct.cls for struct in _structs(params)}
    for struct in _structs(outputs):
        if struct.cls in taken:
            # One definition cannot say both "may be left out" and "is always there".
            raise ValueError(f"{struct.cls.__name__} is both taken and sent: give each its own")
        if not struct.cls.__struct_config__.omit_defaults:
            tag = [struct.tag_field] if struct.tag_field is not None else []
            defs[struct.cls.__name__]["required"] = tag + [f.encode_name for f in struct.fields]
    defs["Methods"] = {
        "title": "Methods",
        "description": "Every method of the protocol: its params and its result.",
        "type": "object",
        "properties": {
            name: {
                "type": "object",
                "properties": {"params": param_ref, "result": result_ref},
                "required": ["params", "result"],
                "additionalProperties": False,
            }
            for name, param_ref, result_ref in zip(methods, param_refs, result_refs, strict=True)
        },
        "required": methods,
        "additionalProperties": False,
    }
    defs["Event"] = {
        "title": "Event",
        "description": "Any event of the event stream (its `topic` tells which).",
        "anyOf": event_refs,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Protocol",
        "description": "The assistantd wire protocol (protocol/PROTOCOL.md).",
        "type": "object",
        "properties": {
            "methods": {"$ref": REF_TEMPLATE.format(name="Methods")},
            "error": error_ref,
            "event": {"$ref": REF_TEMPLATE.format(name="Event")},
        },
        "required": ["methods", "error", "event"],
        "additionalProperties": False,
        "$defs": dict(sorted(defs.items())),
    }


def _any_object(kind: type[Any]) -> dict[str, Any]:
    """``object`` (as in ``dict[str, object]``) is any JSON value, as ``Any`` is (msgspec
    takes an empty schema for "no schema", hence the description)."""
    if kind is object:
        return {"description": "Any JSON value."}
    raise NotImplementedError(f"no JSON Schema for {kind!r}")


def _structs(types: list[Any]) -> list[msgspec.inspect.StructType]:
    """Every Struct type in ``types`` and in their fields, each once."""
    found: dict[type[Any], msgspec.inspect.StructType] = {}
    pending: list[msgspec.inspect.Type] = list(msgspec.inspect.multi_type_info(types))
    while pending:
        info = pending.pop()
        if isinstance(info, msgspec.inspect.StructType):
            if info.cls in found:
                continue
            found[info.cls] = info
            pending.extend(field.type for field in info.fields)
        elif isinstance(info, msgspec.inspect.UnionType):
            pending.extend(info.types)
        elif isinstance(info, msgspec.inspect.Metadata):
            pending.append(info.type)
        elif isinstance(info, msgspec.inspect.CollectionType):
            pending.append(info.item_type)
        elif isinstance(info, msgspec.inspect.DictType):
            pending.extend((info.key_type, info.value_type))
    return list(found.values())
