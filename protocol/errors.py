"""Errors of the assistantd protocol.

One base exception, :class:`AssistantdError`, carries the OpenAI error fields (``message``,
``type``, ``param``, ``code``) plus ``status``, the HTTP status the same error would have. The
daemon raises these in its handlers and only its command server turns them into error replies;
the clients raise the same classes from the error replies they receive, so a caller catches one
hierarchy whichever side of the wire an error came from. (No msgspec here: `assistantctl` uses
these without paying for that import.)
"""

from __future__ import annotations

from collections.abc import Mapping

# Annotations only, and `assistantctl` imports this module: typing would cost milliseconds of
# its start-up (mypy takes any name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar


class AssistantdError(Exception):
    """Base of every error the protocol can carry.

    >>> err = NotFoundError("No assistant found with id 'x'.", param="assistant_id")
    >>> (err.status, err.type, err.code)
    (404, 'invalid_request_error', 'not_found')
    """

    status: int = 500
    error_type: str = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        error_type: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = dict(details) if details is not None else None
        """More about the error where there is more to say (the worker's own error, the exit of
        a worker that failed to start); on the wire only when not None."""
        self.param = param
        self.code = code if code is not None else self.default_code
        if status is not None:
            self.status = status
        if error_type is not None:
            self.error_type = error_type

    @property
    def type(self) -> str:
        return self.error_type

    def to_object(self) -> dict[str, Any]:
        """The error object of the wire: ``{message, type, param, code, status}``, and
        ``details`` when there are any."""
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.error_type,
            "param": self.param,
            "code": self.code,
            "status": self.status,
        }
        if self.details is not None:
            error["details"] = self.details
        return error

    @classmethod
    def from_object(cls, error: Mapping[str, Any]) -> AssistantdError:
        """The exception for an error object received over the wire, keeping its fields.

        >>> exc = AssistantdError.from_object({"message": "gone", "type": "invalid_request_error",
        ...                                    "param": None, "code": "not_found", "status": 404})
        >>> (type(exc).__name__, exc.status, exc.code)
        ('NotFoundError', 404, 'not_found')
        """
        status = error.get("status")
        status = status if isinstance(status, int) else 500
        exc_type = _BY_STATUS.get(status, AssistantdError)
        details = error.get("details")
        return exc_type(
            str(error.get("message", "")),
            param=_text_or_none(error.get("param")),
            code=_text_or_none(error.get("code")),
            status=status,
            error_type=str(error.get("type", "server_error")),
            details=details if isinstance(details, Mapping) else None,
        )

    def __repr__(self) -> str:
        fields: dict[str, Any] = {"status": self.status, "code": self.code, "param": self.param}
        shown = ", ".join(f"{k}={v!r}" for k, v in fields.items() if v is not None)
        return f"{type(self).__name__}({self.message!r}, {shown})"


class InvalidRequestError(AssistantdError):
    """The request is malformed or a value breaks a rule (400)."""

    status = 400
    error_type = "invalid_request_error"


class PermissionDeniedError(AssistantdError):
    """The request is understood but refused, such as deleting the default assistant (403)."""

    status = 403
    error_type = "invalid_request_error"
    default_code = "permission_denied"


class NotFoundError(AssistantdError):
    """No such assistant or method (404)."""

    status = 404
    error_type = "invalid_request_error"
    default_code = "not_found"


class ConflictError(AssistantdError):
    """The request clashes with the current state, such as an id that is taken (409)."""

    status = 409
    error_type = "invalid_request_error"
    default_code = "conflict"


class PayloadTooLargeError(AssistantdError):
    """The request body is over the size limit (413)."""

    status = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class InternalError(AssistantdError):
    """Something failed inside the daemon; the details are in its log, never on the wire (500)."""

    status = 500
    error_type = "server_error"
    default_code = "internal_error"


class WorkerError(AssistantdError):
    """The assistant's worker failed: its method threw (``details`` holds the worker's error:
    ``name``, ``message``, ``stack``, ``code``), it exited before answering, or it could not be
    started (502, as a gateway answers for an upstream that failed)."""

    status = 502
    error_type = "worker_error"
    default_code = "worker_error"


class DownloadError(AssistantdError):
    """A download failed: the server, the network, the archive or the definition in it (its
    ``code`` says which). Carried by the ``assistant.state`` event back to ``to_download`` and
    by the assistant's ``download.error``, not by a reply (502: the upstream failed)."""

    status = 502
    error_type = "download_error"
    default_code = "download_failed"


class GatewayTimeoutError(AssistantdError):
    """The assistant's worker did not answer in time (504)."""

    status = 504
    error_type = "worker_error"
    default_code = "timeout"


class UnavailableError(AssistantdError):
    """The daemon could not be reached or did not answer in time (503, raised by clients)."""

    status = 503
    error_type = "server_error"
    default_code = "daemon_unavailable"


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


_BY_STATUS: dict[int, type[AssistantdError]] = {
    cls.status: cls
    for cls in (
        InvalidRequestError,
        PermissionDeniedError,
        NotFoundError,
        ConflictError,
        PayloadTooLargeError,
        InternalError,
        WorkerError,
        UnavailableError,
        GatewayTimeoutError,
    )
}
