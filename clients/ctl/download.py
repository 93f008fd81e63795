"""``assistantctl download``: ask the daemon for a download, then follow it to its end.

The daemon answers a download at once and carries it out in the background, telling how far it
is with ``download.progress`` events and how it ended with an ``assistant.state`` event. So the
command enters a watch *before* it sends the request: a small download can be over before the
reply is read, and an event published before the subscription would be lost. The watch's mirror
covers what the stream may drop: after a snapshot (lost events, a restarted daemon) the
assistant's state in the mirror tells whether the download ended.

This module is imported only by the download command: it pulls in pyzmq, msgspec and rich, which
a short command does not need.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Literal, Protocol

import msgspec

from assistantd.client.clone import Mirror, Synced, WatchEvent
from assistantd.protocol.assistant import Assistant
from assistantd.protocol.errors import AssistantdError
from assistantd.protocol.events import (
    AssistantDeleted,
    AssistantStateChanged,
    AssistantUpdated,
    DownloadProgress,
)

from . import output

EXIT_OK = 0
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports it (128 + SIGINT)
# A failed download is raised as its error, which assistantctl reports as it reports the
# daemon's refusals (exit 1).

PLAIN_LINE_INTERVAL = 1.0
"""Seconds between two progress lines in plain output (the daemon sends up to ten a second,
more than a log needs)."""


def follow(args: argparse.Namespace, params: dict[str, Any], endpoint: str) -> int:
    """Send ``downloadAssistant`` with ``params`` and show the download until it ends: 0 once
    it is ``ready`` (``running`` with ``start``), 1 if it failed, 130 on Ctrl-C."""
    from assistantd.client.sync import Client

    as_json = bool(getattr(args, "json", False))
    display: Display
    if as_json:
        display = JsonLines()
    elif sys.stdout.isatty():
        display = Bar()
    else:
        display = PlainLines()
    tracker: Tracker | None = None
    client = Client(
        command=endpoint,
        events=args.events,
        runtime_dir=getattr(args, "runtime_dir", None),
        timeout=getattr(args, "timeout", 10.0),
        insecure_tcp=getattr(args, "insecure_tcp", False),
    )
    try:
        # The whole stream: only "" covers both the state events and download.progress.
        with client, client.watch("") as watch:
            # The start's Synced: its mirror is from before the request, so it says nothing.
            watch.next()
            assistant = client.download_assistant(
                params.get("url"),
                sha256=params.get("sha256"),
                assistant_id=params.get("assistant_id"),
                start=bool(params.get("start")),
            )
            start = assistant.download is not None and assistant.download.start
            tracker = Tracker(assistant.id, start=start)
            display.begin(assistant)
            for event in watch:
                for step in tracker.follow(event, watch.mirror):
                    display.show(step)
                    if isinstance(step, Failed):
                        display.end()
                        raise AssistantdError.from_object(step.error)
                if tracker.done:
                    break
    except KeyboardInterrupt:
        display.end()
        sys.stderr.write(f"assistantctl: {_interrupted(tracker)}\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): the download goes on in the daemon. Point stdout at
        # /dev/null so that the interpreter's last flush does not complain about it once more.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    finally:
        display.end()
    return EXIT_OK


def _interrupted(tracker: Tracker | None) -> str:
    if tracker is None:
        return (
            "interrupted before the daemon answered: the download may have been registered "
            "(`assistantctl list` shows it)"
        )
    assistant_id = tracker.assistant_id
    if tracker.phase == "starting":
        return f"interrupted: {assistant_id} is downloaded; its worker is being started"
    return (
        f"interrupted: the download of {assistant_id} goes on in the daemon "
        f"(`assistantctl cancel {assistant_id}` cancels it)"
    )


# --- what the events say (no I/O) ------------------------------------------------------------


class Progressed(msgspec.Struct):
    event: DownloadProgress


class Downloaded(msgspec.Struct):
    assistant: Assistant


class Running(msgspec.Struct):
    assistant: Assistant


class Failed(msgspec.Struct):
    """The download failed (``started`` False), or the worker of the downloaded assistant did
    not start (``started`` True). ``error`` is the error object."""

    assistant_id: str
    error: dict[str, Any]
    started: bool = False


Step = Progressed | Downloaded | Running | Failed
Phase = Literal["downloading", "starting", "done"]


class Tracker:
    """Which events of a watch tell how the download of one assistant goes, fed every event
    of the watch in order (from the moment after ``downloadAssistant`` was answered).

    >>> tracker = Tracker("tutor", start=False)
    >>> ready = Assistant(id="tutor", created_at=0, state="ready")
    >>> event = AssistantStateChanged(epoch="e", time=0, seq=2, cause="daemon",
    ...                               assistant=ready, previous="downloading", error=None)
    >>> [type(step).__name__ for step in tracker.follow(event, Mirror())], tracker.done
    (['Downloaded'], True)
    """

    def __init__(self, assistant_id: str, *, start: bool) -> None:
        self.assistant_id = assistant_id
        self.start = start
        self.phase: Phase = "downloading"

    @property
    def done(self) -> bool:
        return self.phase == "done"

    def follow(self, event: WatchEvent, mirror: Mirror) -> list[Step]:
        """What ``event`` says about the download; ``mirror`` is the watch's, as of it."""
        mine = getattr(event, "assistant_id", None) == self.assistant_id
        match event:
            case DownloadProgress() if mine and self.phase == "downloading":
                return [Progressed(event)]
            case AssistantStateChanged(assistant=assistant) if assistant.id == self.assistant_id:
                return self._judge(assistant, event.error)
            case AssistantUpdated(assistant=assistant) if (
                assistant.id == self.assistant_id and self.phase == "starting"
            ):
                # A failed start shows as the runtime's error, the state staying "ready".
                return self._judge(assistant, None)
            case AssistantDeleted() if mine:
                return self._judge(None, None)
            case Synced():
                # Events may have been lost (or the daemon restarted): the mirror says where
                # the download is. Only a snapshot taken after the request may be fed here
                # (the watch's first is older).
                return self._judge(mirror.assistants.get(self.assistant_id), None)
        return []

    def _judge(self, assistant: Assistant | None, error: dict[str, Any] | None) -> list[Step]:
        if self.phase == "done":
            return []
        if assistant is None:
            self.phase = "done"
            message = f"The assistant '{self.assistant_id}' was deleted meanwhile."
            return [Failed(self.assistant_id, _error(message, "not_found", 404))]
        steps: list[Step] = []
        if self.phase == "downloading":
            if assistant.state == "to_download":
                self.phase = "done"
                failure = error or (assistant.download and assistant.download.error)
                return [Failed(self.assistant_id, failure or _error("The download failed."))]
            if assistant.state not in ("ready", "running"):
                return []
            steps.append(Downloaded(assistant))
            self.phase = "starting" if self.start else "done"
        if self.phase == "starting":
            runtime = assistant.runtime
            if assistant.state == "running":
                steps.append(Running(assistant))
                self.phase = "done"
            elif runtime is not None and runtime.status == "stopped" and runtime.error:
                steps.append(Failed(self.assistant_id, runtime.error, started=True))
                self.phase = "done"
        return steps


def _error(message: str, code: str = "download_failed", status: int = 502) -> dict[str, Any]:
    kind = "download_error" if status == 502 else "invalid_request_error"
    return {"message": message, "type": kind, "param": None, "code": code, "status": status}


# --- how it is shown ------------------------------------------------------------------------


class Display(Protocol):
    def begin(self, assistant: Assistant) -> None: ...
    def show(self, step: Step) -> None: ...
    def end(self) -> None:
        """Stop drawing (a bar); may be called more than once."""


class PlainLines:
    """A line for each step, a progress line at most every second: for logs and pipes."""

    def __init__(self) -> None:
        self._shown_at: float | None = None
        self._bytes: int | None = None

    def begin(self, assistant: Assistant) -> None:
        url = assistant.download.url if assistant.download else "its URL"
        _line(f"{assistant.id}: downloading {url}")

    def show(self, step: Step) -> None:
        match step:
            case Progressed(event=event):
                self._bytes = event.bytes
                now = time.monotonic()
                if self._shown_at is None or now - self._shown_at >= PLAIN_LINE_INTERVAL:
                    self._shown_at = now
                    progress = output.progress_text(event.bytes, event.total, event.rate)
                    _line(f"{event.assistant_id}: {progress}")
            case Downloaded(assistant=assistant):
                size = f" {output.size_text(self._bytes)}" if self._bytes is not None else ""
                _line(f"{assistant.id}: downloaded{size}, ready")
            case _:
                _line(_final_text(step))

    def end(self) -> None:
        pass


class JsonLines:
    """A JSON object a line: the assistant as the command answered it (``downloading``), each
    ``download.progress`` event as the daemon sent it, and the assistant once ``ready`` (and
    once ``running``). An assistant's line has ``"object": "assistant"``, an event's a
    ``topic``; a failure is the error object on stderr."""

    def begin(self, assistant: Assistant) -> None:
        _line(msgspec.json.encode(assistant).decode())

    def show(self, step: Step) -> None:
        match step:
            case Progressed(event=event):
                _line(msgspec.json.encode(event).decode())
            case Downloaded(assistant=assistant) | Running(assistant=assistant):
                _line(msgspec.json.encode(assistant).decode())

    def end(self) -> None:
        pass


class Bar:
    """A progress bar on a terminal (rich): bytes, of the total when announced, the rate the
    daemon measures, and the time left."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        self._console = Console(highlight=False)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[left]}"),
            console=self._console,
        )
        self._task: Any = None
        self._bytes: int | None = None
        self._live = False

    def begin(self, assistant: Assistant) -> None:
        url = assistant.download.url if assistant.download else "its URL"
        self._console.print(f"{assistant.id}: downloading {url}", markup=False)
        self._task = self._progress.add_task(assistant.id, total=None, rate="", left="")
        self._progress.start()
        self._live = True

    def show(self, step: Step) -> None:
        match step:
            case Progressed(event=event):
                self._bytes = event.bytes
                left = ""
                if event.total and event.rate > 0 and event.total > event.bytes:
                    left = output.duration_text((event.total - event.bytes) / event.rate) + " left"
                rate = f"{output.size_text(event.rate)}/s" if event.rate > 0 else ""
                self._progress.update(
                    self._task, completed=event.bytes, total=event.total, rate=rate, left=left
                )
            case Downloaded(assistant=assistant):
                if self._bytes is not None:
                    # Full, also when no total was announced.
                    self._progress.update(self._task, completed=self._bytes, total=self._bytes)
                self.end()
                size = f" {output.size_text(self._bytes)}" if self._bytes is not None else ""
                self._console.print(f"{assistant.id}: downloaded{size}, ready", markup=False)
            case _:
                self.end()
                self._console.print(_final_text(step), markup=False)

    def end(self) -> None:
        if self._live:
            self._live = False
            self._progress.stop()


def _final_text(step: Step) -> str:
    match step:
        case Running(assistant=assistant):
            pid = assistant.runtime.pid if assistant.runtime else None
            return f"{assistant.id}: started, running" + (f" (pid {pid})" if pid else "")
        case Failed(assistant_id=assistant_id, started=True):
            return f"{assistant_id}: downloaded, ready; its worker did not start"
        case Failed(assistant_id=assistant_id):
            return (
                f"{assistant_id}: the download failed, back to to_download "
                f"(`assistantctl download --id {assistant_id}` tries again)"
            )
    return ""


def _line(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
