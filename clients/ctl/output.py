"""How assistantctl shows things: aligned text for people, JSON for scripts.

Every function returns the exit code 0, so a command can end with ``return print_...(...)``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence

# Annotations only, and `assistantctl` imports this module: typing would cost milliseconds of
# its start-up (mypy takes any name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAME_WIDTH = 32
URL_WIDTH = 60


def print_json(value: Any) -> int:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    return 0


def print_fields(rows: Sequence[tuple[str, str]]) -> int:
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        sys.stdout.write(f"{label:<{width}}  {value}\n")
    return 0


def print_table(assistants: Sequence[Mapping[str, Any]], *, more_after: str | None) -> int:
    """One line per assistant; a hint for the next page when there is one."""
    rows: list[tuple[str, ...]] = [("ID", "NAME", "MODEL", "STATE", "CREATED")]
    rows += [
        (
            str(a["id"]),
            _clip(a.get("name") or "", NAME_WIDTH),
            str(a.get("model", "")),
            str(a.get("state", "")),
            _date(a.get("created_at")),
        )
        for a in assistants
    ]
    if any(isinstance(a.get("download"), Mapping) for a in assistants):
        # Where the assistants that are not on disk yet come from, and why the last try failed.
        rows = [(*rows[0], "DOWNLOAD")] + [
            (*row, download_cell(a.get("download")))
            for row, a in zip(rows[1:], assistants, strict=True)
        ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        sys.stdout.write(line.rstrip() + "\n")
    if not assistants:
        sys.stdout.write("(no assistants)\n")
    if more_after:
        sys.stdout.write(f"(more: assistantctl list --after {more_after})\n")
    return 0


def print_assistant(a: Mapping[str, Any]) -> int:
    rows = [
        ("id", str(a["id"])),
        ("name", a.get("name") or "-"),
        ("state", str(a.get("state"))),
        ("model", str(a.get("model"))),
        ("models", ", ".join(a.get("models") or [])),
        ("created_at", f"{_date(a.get('created_at'))} ({a.get('created_at')})"),
        ("description", a.get("description") or "-"),
        ("instructions", _summary(a.get("instructions"))),
        ("tools", ", ".join(str(tool.get("type")) for tool in a.get("tools") or []) or "-"),
        ("file_ids", ", ".join(a.get("file_ids") or []) or "-"),
        ("metadata", ", ".join(f"{k}={v}" for k, v in (a.get("metadata") or {}).items()) or "-"),
    ]
    optional = (
        "avatar",
        "thread_location",
        "temperature",
        "top_p",
        "response_format",
        "tool_resources",
    )
    rows += [(label, _text(a[label])) for label in optional if a.get(label) not in (None, "")]
    rows[3:3] = download_rows(a)  # after the state
    if a.get("runtime") is not None:
        rows += worker_rows(a)
    return print_fields(rows)


def print_download(a: Mapping[str, Any]) -> int:
    """An assistant's state and where it is downloaded from: what download and cancel show."""
    rows = [("id", str(a["id"])), ("name", a.get("name") or "-"), ("state", str(a.get("state")))]
    return print_fields(rows + download_rows(a))


def download_rows(a: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The rows for an assistant's ``download`` (none once it is on disk).

    >>> for row in download_rows({"download": {"url": "https://x/a.zip", "sha256": None,
    ...     "start": True, "error": {"message": "Gone.", "code": "http_status"}}}):
    ...     print(row)
    ('download', 'https://x/a.zip')
    ('start', 'once downloaded')
    ('download_error', 'Gone. (http_status)')
    """
    download = a.get("download")
    if not isinstance(download, Mapping):
        return []
    rows = [("download", str(download.get("url")))]
    if download.get("sha256"):
        rows.append(("sha256", str(download["sha256"])))
    if download.get("start"):
        rows.append(("start", "once downloaded"))
    if isinstance(download.get("error"), Mapping):
        rows.append(("download_error", _error_text(download["error"])))
    return rows


def download_cell(download: Any) -> str:
    """The table's DOWNLOAD cell: the URL, and the code of the last failure.

    >>> download_cell({"url": "https://x/a.zip", "error": {"code": "cancelled"}})
    'https://x/a.zip (cancelled)'
    >>> download_cell(None)
    ''
    """
    if not isinstance(download, Mapping):
        return ""
    cell = _clip(str(download.get("url")), URL_WIDTH)
    if isinstance(download.get("error"), Mapping):
        cell += f" ({download['error'].get('code')})"
    return cell


def print_export(export: Mapping[str, Any]) -> int:
    """What an export wrote.

    >>> _ = print_export({"assistant_id": "jan", "path": "/tmp/jan.zip", "format": "zip",
    ...                   "files": 2, "bytes": 1234})
    exported jan to /tmp/jan.zip (zip, 2 files, 1.2 kB)
    """
    files = export.get("files")
    sys.stdout.write(
        f"exported {export.get('assistant_id')} to {export.get('path')} ({export.get('format')}, "
        f"{files} file{'' if files == 1 else 's'}, {size_text(export.get('bytes') or 0)})\n"
    )
    return 0


def size_text(size: float) -> str:
    """A number of bytes for people, in decimal units as download tools show them.

    >>> size_text(999), size_text(1000), size_text(1_536_000), size_text(3 * 10**12)
    ('999 bytes', '1.0 kB', '1.5 MB', '3.0 TB')
    """
    if size < 1000:
        return f"{int(size)} byte{'' if size == 1 else 's'}"
    for unit in ("kB", "MB", "GB"):
        size /= 1000
        if size < 999.95:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} TB"


def duration_text(seconds: float) -> str:
    """A duration for people, to the second.

    >>> duration_text(5.2), duration_text(65), duration_text(3725)
    ('5s', '1m 05s', '1h 02m')
    """
    whole = int(seconds + 0.5)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def progress_text(done: int, total: int | None, rate: float) -> str:
    """How far a download is: bytes, of the total when known, the rate and the time left.

    >>> progress_text(250_000, 1_000_000, 50_000)
    '250.0 kB of 1.0 MB (25%), 50.0 kB/s, 15s left'
    >>> progress_text(4096, None, 0)
    '4.1 kB'
    """
    text = size_text(done)
    if total:
        text += f" of {size_text(total)} ({done * 100 // total}%)"
    if rate > 0:
        text += f", {size_text(rate)}/s"
        if total and total > done:
            text += f", {duration_text((total - done) / rate)} left"
    return text


def print_worker(a: Mapping[str, Any]) -> int:
    """An assistant's state and its worker's: what start, stop and restart show."""
    rows = [("id", str(a["id"])), ("name", a.get("name") or "-"), ("state", str(a.get("state")))]
    return print_fields(rows + worker_rows(a))


def worker_rows(a: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The rows for an assistant's ``runtime``: status, pid, style, methods, exits, error."""
    runtime = a.get("runtime")
    if not isinstance(runtime, Mapping):
        return [("worker", "-")]  # never started
    rows = [("worker", str(runtime.get("status")))]
    if runtime.get("pid") is not None:
        rows.append(("pid", str(runtime["pid"])))
    if runtime.get("style") is not None and runtime.get("status") != "stopped":
        rows.append(("style", str(runtime["style"])))
        rows.append(("methods", ", ".join(runtime.get("methods") or []) or "-"))
    if runtime.get("up_since") is not None:
        rows.append(("up_since", _moment(runtime["up_since"])))
    rows.append(("restarts", str(runtime.get("restarts", 0))))
    if runtime.get("retry_at") is not None:
        rows.append(("retry_at", _moment(runtime["retry_at"])))
    if isinstance(runtime.get("last_exit"), Mapping):
        last_exit = runtime["last_exit"]
        rows.append(("last_exit", f"{exit_text(last_exit)}, {_moment(last_exit.get('time'))}"))
    if isinstance(runtime.get("error"), Mapping):
        rows.append(("error", _error_text(runtime["error"])))
    return rows


def exit_text(exit: Mapping[str, Any]) -> str:
    """How a worker ended, in a few words.

    >>> exit_text({"code": None, "signal": "SIGKILL", "stopped_by": "SIGKILL"})
    'SIGKILL, stopped by SIGKILL'
    >>> exit_text({"code": 1, "signal": None, "stopped_by": None})
    'exit code 1'
    """
    how = f"exit code {exit.get('code')}" if exit.get("signal") is None else str(exit["signal"])
    if exit.get("stopped_by") is not None:
        how += f", stopped by {exit['stopped_by']}"
    return how


def detail_lines(details: Mapping[str, Any] | None) -> list[str]:
    """The ``details`` of an error reply as lines: a worker's error code and stack, or the exit
    and last stderr lines of a worker that failed to start. ``name`` and ``message`` are left
    out: the error's own message holds them.

    >>> detail_lines({"name": "Error", "message": "boom", "code": "E_X", "stack": "a\\n  b"})
    ['code: E_X', 'stack:', '  a', '    b']
    """
    lines: list[str] = []
    for key, value in (details or {}).items():
        if key in ("name", "message"):
            continue
        if key == "exit" and isinstance(value, Mapping):
            lines.append(f"exit: {exit_text(value)}")
        elif isinstance(value, Mapping):
            lines += [f"{key}:", *(f"  {line}" for line in detail_lines(value))]
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            lines += [f"{key}:", *(f"  {item}" for item in value)]
        elif isinstance(value, str) and "\n" in value:
            lines += [f"{key}:", *(f"  {line}" for line in value.splitlines())]
        else:
            lines.append(f"{key}: {_text(value)}")
    return lines


def event_line(topic: str, event: Mapping[str, Any], note: str | None = None) -> str:
    """One line for one event: local time, topic, seq, assistant id and name (or reason), and
    the worker's status; for a worker's own events, see :func:`worker_event_line`.

    >>> deleted = {"time": 0.25, "seq": 7, "assistant_id": "x", "cause": "request"}
    >>> event_line("assistant.deleted", deleted)[14:]
    'assistant.deleted  seq=7  x  (request)'
    """
    if topic.startswith("worker."):
        return worker_event_line(topic, event)
    if "seq" not in event:  # another activity event: download.progress, or one of a later version
        return activity_line(topic, event)
    parts = [_stamp(event["time"]), f"{topic:<17}", f"seq={event['seq']}"]
    assistant = event.get("assistant")
    if isinstance(assistant, Mapping):
        parts += [str(assistant.get("id")), json.dumps(assistant.get("name"), ensure_ascii=False)]
        if topic == "assistant.state":
            parts.append(f"{event.get('previous')} -> {assistant.get('state')}")
        runtime = assistant.get("runtime")
        error = event.get("error")
        if isinstance(runtime, Mapping):
            parts.append(f"worker={runtime.get('status')}")
            if runtime.get("pid") is not None:
                parts.append(f"pid={runtime['pid']}")
            error = error or runtime.get("error")
        if isinstance(error, Mapping):
            parts.append(f"error={error.get('code')}")
    elif "assistant_id" in event:
        parts.append(str(event["assistant_id"]))
    if "reason" in event:
        parts.append(" ".join(str(event["reason"]).split()))  # one line, whatever it holds
        if "served" in event:
            parts.append("(last good version served)" if event["served"] else "(not listed)")
    elif "cause" in event:
        parts.append(f"({event['cause']})")
    if note:
        parts.append(note)
    return "  ".join(parts)


def worker_event_line(topic: str, event: Mapping[str, Any]) -> str:
    """One line for a worker's event: local time, ``[id pid what]``, and what it said or did.

    >>> log = {"time": 0.25, "assistant_id": "jan", "pid": 42, "stream": "stderr", "line": "hi"}
    >>> worker_event_line("worker.log", log)[14:]
    '[jan 42 stderr] hi'
    >>> exited = {"time": 0.25, "assistant_id": "jan", "pid": 42, "restart": True,
    ...           "exit": {"code": 1, "signal": None, "stopped_by": None}}
    >>> worker_event_line("worker.exited", exited)[14:]
    '[jan 42 exited] exit code 1, restarting'
    """
    if topic == "worker.log":
        what, text = str(event.get("stream")), str(event.get("line"))
    elif topic == "worker.message":
        what, text = "message", json.dumps(event.get("message"), ensure_ascii=False)
    elif topic == "worker.exited":
        restart = "restarting" if event.get("restart") else "not restarting"
        what, text = "exited", f"{exit_text(event.get('exit') or {})}, {restart}"
    else:  # a worker event of a later version
        what, text = topic.removeprefix("worker."), ""
    who = f"{event.get('assistant_id')} {event.get('pid')} {what}"
    return f"{_stamp(event['time'])}  [{who}] {text}"


def activity_line(topic: str, event: Mapping[str, Any]) -> str:
    """One line for an activity event other than a worker's: local time, ``[id what]``, and
    what happened.

    >>> progress = {"time": 0.25, "assistant_id": "tutor", "bytes": 5000, "total": None,
    ...             "rate": 1000.0}
    >>> activity_line("download.progress", progress)[14:]
    '[tutor download] 5.0 kB, 1.0 kB/s'
    """
    if topic == "download.progress":
        what = "download"
        done, rate = int(event.get("bytes") or 0), float(event.get("rate") or 0)
        text = progress_text(done, event.get("total"), rate)
    else:
        what, text = topic, ""
    return f"{_stamp(event['time'])}  [{event.get('assistant_id')} {what}] {text}".rstrip()


def _stamp(moment: float) -> str:
    """Local time of day to the millisecond."""
    return f"{time.strftime('%H:%M:%S', time.localtime(moment))}.{int(moment % 1 * 1000):03d}"


def _moment(timestamp: Any) -> str:
    if not isinstance(timestamp, int | float):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def _error_text(error: Mapping[str, Any]) -> str:
    return f"{error.get('message')} ({error.get('code')})"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _date(timestamp: Any) -> str:
    if not isinstance(timestamp, int):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _summary(text: str | None) -> str:
    if not text:
        return "-"
    first_line = text.splitlines()[0]
    if len(text) == len(first_line) and len(text) <= 60:
        return text
    return f"{_clip(first_line, 60)} ({len(text)} characters)"
