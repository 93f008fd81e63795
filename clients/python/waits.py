"""How long a client waits for a reply: its own timeout, plus the time the daemon may spend on
the work by its own rules.

Most methods are answered at once, and the client's ``timeout`` is all the wait they need. The
worker commands are not: an invoke may run for its whole ``timeout_ms`` (up to an hour), and a
start waits for the worker to be up. Cutting such a call off at the client's timeout would
report "no reply" for a call the daemon is still carrying out, so the client waits for the
daemon's own limit on the work and then for its usual timeout on top.

A download is answered at once (it goes on in the background), but a cancel waits for the
download to end and its staging folder to be removed. An import or an export copies the whole
assistant, which may be hundreds of megabytes on a slow disk, before it answers: the daemon
sets no limit of its own on that, so the clients give it :data:`TRANSFER_WORK_TIME`.

A wait that runs out is never followed by a second send of the request (the transports never
resend): ``invokeAssistant`` and ``sendToAssistant`` are not idempotent, and a reply that did not
come does not mean the request was not carried out.

No imports beyond the standard library's smallest: ``assistantctl`` uses this.

>>> reply_timeout("getAssistant", {"assistant_id": "jan"}, 10.0)
10.0
>>> reply_timeout("invokeAssistant", {"method": "m", "timeout_ms": 90_000}, 10.0)
100.0
>>> reply_timeout("invokeAssistant", {"method": "m"}, 10.0)
70.0
>>> reply_timeout("exportAssistant", {"assistant_id": "jan", "path": "/tmp/jan.zip"}, 10.0)
610.0
>>> reply_timeout("invokeAssistant", {"method": "m", "timeout_ms": 10**400}, 10.0)
3610.0
"""

from __future__ import annotations

# Annotations only, and `assistantctl` imports this module: typing would cost milliseconds of
# its start-up (mypy takes any name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

# The daemon's defaults for its `[workers]` settings (daemon/workers/settings.py; a test keeps
# them equal). A client cannot ask a daemon for its configured values: with a daemon configured
# for longer ones, give the client a longer `timeout`.
DAEMON_START_TIMEOUT = 30.0
"""Seconds the daemon waits for a worker to say it is up (``start-timeout``)."""
DAEMON_STOP_TIMEOUT = 5.0
"""Seconds each step of a stop may take (``stop-timeout``)."""
STOP_STEPS = 3
"""The steps of a stop: disconnect, SIGTERM, SIGKILL."""
DAEMON_INVOKE_TIMEOUT = 60.0
"""Seconds an invoke without ``timeout_ms`` may take (``invoke-timeout``); a send waits as long
for a restarting worker to be up."""
INVOKE_TIMEOUT_MAX_MS = 3_600_000
"""The largest ``timeout_ms`` the protocol takes (``protocol.limits``'s, which a test keeps
equal: that module would cost the CLI its import)."""
CANCEL_WORK_TIME = 5.0
"""Seconds a cancelDownload may take beyond the usual moment: the download's task ends and its
staging folder is removed before the answer."""
TRANSFER_WORK_TIME = 600.0
"""Seconds an importAssistant or exportAssistant may take beyond the usual moment: it copies
(and checks, or packs) every file of the assistant before it answers."""


def work_time(method: str, params: Mapping[str, Any]) -> float:
    """Seconds the daemon may spend on ``method`` before it answers, beyond the usual moment.

    A start that must first ``npm install`` the assistant's dependencies may take longer; the
    start goes on in the daemon after the client gave up, and a second start waits for it.
    """
    stop = STOP_STEPS * DAEMON_STOP_TIMEOUT
    if method == "invokeAssistant":
        timeout_ms = params.get("timeout_ms")
        if isinstance(timeout_ms, int | float) and not isinstance(timeout_ms, bool):
            # Out of the protocol's range the daemon refuses the invoke at once; the wait must
            # still be a number a timer takes (10**400 / 1000 is an OverflowError, and NaN is
            # no time). In this order, max and min turn NaN into 0.
            return min(INVOKE_TIMEOUT_MAX_MS, max(0, timeout_ms)) / 1000
        return DAEMON_INVOKE_TIMEOUT
    if method == "sendToAssistant":
        return DAEMON_INVOKE_TIMEOUT
    if method == "startAssistant":
        return DAEMON_START_TIMEOUT
    if method == "stopAssistant":
        return stop
    if method == "restartAssistant":
        return stop + DAEMON_START_TIMEOUT
    if method == "cancelDownload":
        return CANCEL_WORK_TIME
    if method in ("importAssistant", "exportAssistant"):
        return TRANSFER_WORK_TIME
    return 0.0


def reply_timeout(method: str, params: Mapping[str, Any], timeout: float) -> float:
    """How long to wait for the reply to ``method`` with ``params``: :func:`work_time` plus the
    client's ``timeout``."""
    return work_time(method, params) + timeout
