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
    rows = [("ID", "NAME", "MODEL", "STATE", "CREATED")]
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
    return print_fields(rows)


def event_line(topic: str, event: Mapping[str, Any], note: str | None = None) -> str:
    """One line for one event: local time, topic, seq, assistant id and name (or reason).

    >>> deleted = {"time": 0.25, "seq": 7, "assistant_id": "x", "cause": "request"}
    >>> event_line("assistant.deleted", deleted)[14:]
    'assistant.deleted  seq=7  x  (request)'
    """
    stamp = time.strftime("%H:%M:%S", time.localtime(event["time"]))
    parts = [f"{stamp}.{int(event['time'] % 1 * 1000):03d}", f"{topic:<17}", f"seq={event['seq']}"]
    assistant = event.get("assistant")
    if isinstance(assistant, Mapping):
        parts += [str(assistant.get("id")), json.dumps(assistant.get("name"), ensure_ascii=False)]
        if topic == "assistant.state":
            parts.append(f"{event.get('previous')} -> {assistant.get('state')}")
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
