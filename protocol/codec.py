"""The codec: command bodies in, reply bodies out, as pure functions over bytes.

Every encoder and decoder is built once, here, at import (msgspec's decoders are fast because
they are compiled for one type; building one per message would cost more than the decode).
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from .errors import (
    AssistantdError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
)
from .limits import REQUEST_MAX_BYTES
from .messages import METHOD_PARAMS, Request, RequestId
from .validation import from_validation_error


class ErrorObject(msgspec.Struct, omit_defaults=True):
    """The ``error`` member of an error reply: OpenAI's error object plus ``status`` (and
    ``details``, left out when there are none)."""

    message: str
    type: str
    param: str | None
    code: str | None
    status: int
    details: dict[str, Any] | None = None


class Reply(msgspec.Struct, omit_defaults=True):
    """A reply body: ``{"id", "result"}`` or ``{"id", "error"}``."""

    id: RequestId | None
    result: Any = UNSET
    error: ErrorObject | UnsetType = UNSET


class _IdOnly(msgspec.Struct):
    id: RequestId | None = None


class _RawReply(msgspec.Struct):
    id: RequestId | None = None
    result: msgspec.Raw | UnsetType = UNSET
    error: ErrorObject | UnsetType = UNSET


_NO_PARAMS = msgspec.Raw(b"{}")
_encoder = msgspec.json.Encoder()
_request_decoder = msgspec.json.Decoder(Request)
_id_decoder = msgspec.json.Decoder(_IdOnly)
_reply_decoder = msgspec.json.Decoder(_RawReply)
_params_decoders = {
    method: msgspec.json.Decoder(params_type) for method, params_type in METHOD_PARAMS.items()
}


def decode_request(body: bytes) -> tuple[Request, Any]:
    """The request in ``body`` and its params decoded into the method's Struct.

    Raises :class:`AssistantdError` (413 for a body over the limit, 404 for an unknown method,
    400 otherwise); :func:`recover_id` then finds the id to answer with, if there is one.

    >>> request, params = decode_request(b'{"id": 1, "method": "getAssistant",'
    ...                                  b' "params": {"assistant_id": "jan"}}')
    >>> (request.id, request.method, params.assistant_id)
    (1, 'getAssistant', 'jan')
    """
    if len(body) > REQUEST_MAX_BYTES:
        raise PayloadTooLargeError(
            f"The request is {len(body)} bytes; the limit is {REQUEST_MAX_BYTES} bytes."
        )
    try:
        request = _request_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise from_validation_error(exc) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(
            f"The request is not valid JSON: {exc}.", code="invalid_json"
        ) from None
    except RecursionError:
        raise _too_deep() from None
    decoder = _params_decoders.get(request.method)
    if decoder is None:
        raise NotFoundError(
            f"Unknown method {request.method!r}.", param="method", code="unknown_method"
        )
    # JSON-RPC clients often send `"params": null` for "no params".
    params = _NO_PARAMS if bytes(request.params) == b"null" else request.params
    try:
        return request, decoder.decode(params)
    except msgspec.ValidationError as exc:
        # `whole`: a failure of the params as a whole, such as `"params": 3`.
        raise from_validation_error(exc, whole="params") from None
    except RecursionError:
        raise _too_deep() from None
    except msgspec.DecodeError as exc:  # pragma: no cover - Raw holds valid JSON
        raise InvalidRequestError(f"Invalid params: {exc}.", param="params") from None


def _too_deep() -> InvalidRequestError:
    # msgspec raises RecursionError for JSON nested deeper than the interpreter's recursion
    # limit; a few hundred kilobytes of `[` are enough, well under the size limit.
    return InvalidRequestError("The request is nested too deeply to be read.", code="invalid_json")


def recover_id(body: bytes) -> RequestId | None:
    """The ``id`` of a request that could not be decoded, where one can be found."""
    try:
        return _id_decoder.decode(body).id
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None


def encode_result(request_id: RequestId | None, result: Any) -> bytes:
    """A reply body carrying ``result`` (a Struct, builtins, or pre-encoded ``msgspec.Raw``)."""
    return _encoder.encode(Reply(request_id, result=result))


def encode_error(request_id: RequestId | None, error: AssistantdError) -> bytes:
    """An error reply body carrying ``error``'s OpenAI fields and status."""
    return _encoder.encode(Reply(request_id, error=ErrorObject(**error.to_object())))


def encode_request(request_id: RequestId, method: str, params: Any) -> bytes:
    """A request body (used by the clients)."""
    return _encoder.encode({"id": request_id, "method": method, "params": params})


def encode(value: Any) -> bytes:
    """JSON for any Struct or builtin value, with the shared encoder."""
    return _encoder.encode(value)


def decode_reply(body: bytes) -> tuple[RequestId | None, msgspec.Raw | AssistantdError]:
    """The id of a reply body and its raw result, or the error it carries as an exception."""
    reply = _reply_decoder.decode(body)
    if not isinstance(reply.error, UnsetType):
        return reply.id, AssistantdError.from_object(msgspec.structs.asdict(reply.error))
    if isinstance(reply.result, UnsetType):
        raise msgspec.ValidationError("A reply needs 'result' or 'error'")
    return reply.id, reply.result
