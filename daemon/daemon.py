"""The daemon: owns the store, the index, the sockets and every task, in one ``run()``."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
import zmq
import zmq.asyncio

from assistantd.protocol import PROTOCOL_VERSION, __version__
from assistantd.protocol.assistant import Assistant
from assistantd.protocol.ids import DEFAULT_ASSISTANT_ID
from assistantd.protocol.limits import TRANSPORT_MAX_BYTES

from .acquire.downloads import Downloads
from .acquire.transfer import Transfers
from .acquire_commands import AcquireCommands
from .activation import Activation
from .assistants import AssistantService
from .config import Settings
from .defaults import default_assistant_document
from .index import Index
from .notify import ServiceNotifications, status_line
from .publisher import Publisher
from .reload import Reloader
from .runtime import (
    ROOT_LOCK,
    RUNTIME_LOCK,
    Lock,
    check_endpoints,
    prepare_runtime_dir,
    remove_socket_files,
)
from .security import (
    CurveServer,
    prepare_tcp,
    private_socket_files,
    secure_socket,
    start_authenticator,
)
from .server import CommandServer
from .state import LiveState
from .store import InvalidDefinition, Loaded, Store
from .watcher import Watcher
from .worker_commands import WorkerCommands
from .workers.desired import DesiredState
from .workers.launch import worker_marker
from .workers.reaper import Reaper, sweep_leftovers
from .workers.supervisor import WorkerSupervisor

log = structlog.get_logger("assistantd")


class Daemon:
    """One daemon over one assistants root.

    Example::

        await Daemon(settings).run(shutdown=stop_event.wait())
    """

    def __init__(
        self,
        settings: Settings,
        *,
        reread: Callable[[], Settings] | None = None,
        activation: Activation | None = None,
    ) -> None:
        self.settings = settings
        self.activation = activation or Activation()
        """The sockets systemd passed (taken by ``__main__`` before the event loop began)."""
        self.configured = settings
        """The settings as their sources gave them (``settings`` may then take, say, the
        endpoint of a socket systemd passed)."""
        self.reread = reread
        """Resolves the settings again from their sources, for a reload."""
        self.epoch = uuid.uuid4().hex
        self.store = Store(settings.root)
        self.index = Index()
        self.curve: CurveServer | None = None

    async def run(self, shutdown: Awaitable[object], reloads: asyncio.Event | None = None) -> None:
        """Serve until ``shutdown`` completes, then stop in a fixed order; reload the settings
        each time ``reloads`` is set (SIGHUP sets it)."""
        activation = self.activation
        settings = self.settings = activation.apply(self.settings)
        check_endpoints(settings)
        # Always private, even when no socket is in it: it holds the pid lock, which another
        # user could otherwise plant as a link to one of our files.
        prepare_runtime_dir(settings.runtime_dir)
        self.curve = prepare_tcp(settings)
        runtime_lock = Lock(
            settings.runtime_dir / RUNTIME_LOCK, f"runtime dir {settings.runtime_dir}"
        )
        try:
            self.store.create_root()
            root_lock = Lock(settings.root / ROOT_LOCK, f"assistants root {settings.root}")
            try:
                self.store.clear_leftovers()
                await self._serve(shutdown, activation, reloads)
            finally:
                root_lock.release()
        finally:
            runtime_lock.release()

    async def _serve(
        self,
        shutdown: Awaitable[object],
        activation: Activation,
        reloads: asyncio.Event | None,
    ) -> None:
        settings = self.settings
        started = time.monotonic()
        context = zmq.asyncio.Context()
        # Before any bind: without a ZAP handler libzmq would let every CURVE client in.
        authenticator = start_authenticator(context, self.curve) if self.curve else None
        notify = ServiceNotifications.from_environ(
            lambda: status_line(entry.assistant.state for entry in self.index)
        )
        try:
            events = context.socket(zmq.XPUB)
            Publisher.configure(events)
            publisher = Publisher(events, self.epoch)
            state = LiveState(self.store, self.index, publisher)
            reaper = Reaper()
            reaper.start()
            supervisor = WorkerSupervisor(
                state, settings.workers, reaper=reaper, desired=DesiredState(settings.root)
            )
            downloads = Downloads(state, settings.acquire, start=supervisor.start_soon)
            self._load(state, downloads)
            service = AssistantService(
                state,
                version=__version__,
                before_delete=supervisor.stop,
                forget_download=downloads.forget,
            )
            workers = WorkerCommands(supervisor)
            transfers = Transfers(state, settings.acquire)
            acquire = AcquireCommands(downloads, transfers)
            publisher.state_listeners.append(notify.changed)

            def use_settings(reloaded: Settings) -> None:
                self.settings = reloaded
                supervisor.use_settings(reloaded.workers)
                downloads.use_settings(reloaded.acquire)
                transfers.use_settings(reloaded.acquire)

            commands = context.socket(zmq.ROUTER)
            commands.setsockopt(zmq.LINGER, 0)
            commands.setsockopt(zmq.MAXMSGSIZE, TRANSPORT_MAX_BYTES)
            secure_socket(commands, settings.command, self.curve)
            secure_socket(events, settings.events, self.curve)
            with private_socket_files(settings):
                activation.bind(commands, "command", settings.command)
                activation.bind(events, "events", settings.events)
            server = CommandServer(
                commands,
                {
                    "ping": service.ping,
                    "listAssistants": service.list_assistants,
                    "getAssistant": service.get_assistant,
                    "createAssistant": service.create_assistant,
                    "modifyAssistant": service.modify_assistant,
                    "deleteAssistant": service.delete_assistant,
                    "getSnapshot": service.get_snapshot,
                    "startAssistant": workers.start_assistant,
                    "stopAssistant": workers.stop_assistant,
                    "restartAssistant": workers.restart_assistant,
                    "invokeAssistant": workers.invoke_assistant,
                    "sendToAssistant": workers.send_to_assistant,
                    "downloadAssistant": acquire.download_assistant,
                    "cancelDownload": acquire.cancel_download,
                    "importAssistant": acquire.import_assistant,
                    "exportAssistant": acquire.export_assistant,
                },
            )
            stop_serving, stop_watching, stop_publishing = (asyncio.Event() for _ in range(3))
            async with asyncio.TaskGroup() as tasks:
                serving = tasks.create_task(server.serve(stop_serving))
                tasks.create_task(publisher.serve(stop_publishing))
                tasks.create_task(notify.run(stop_publishing))
                reloading: asyncio.Task[None] | None = None
                if reloads is not None and self.reread is not None:
                    reloader = Reloader(
                        self.configured, settings, self.reread, notify, apply=use_settings
                    )
                    reloading = tasks.create_task(reloader.serve(reloads))
                log.info(
                    "ready",
                    root=str(settings.root),
                    command=settings.command,
                    events=settings.events,
                    assistants=len(self.index),
                    epoch=self.epoch,
                    protocol_version=PROTOCOL_VERSION,
                    start_seconds=round(time.monotonic() - started, 3),
                )
                notify.ready()  # the sockets are bound, the index is loaded
                watching = tasks.create_task(_watch_soon(state, stop_watching))
                await sweep_leftovers(
                    worker_marker(settings.root), reaper, settings.workers.stop_timeout
                )
                await supervisor.resume()
                await shutdown
                log.info("stopping")
                notify.stopping()
                if reloading is not None:
                    reloading.cancel()
                # The order matters: no new commands (the writes under way finish; the invokes
                # waiting on workers end as the workers stop), no more watching, the workers,
                # the last event, then the sockets.
                stop_serving.set()
                stopping_workers = tasks.create_task(supervisor.shutdown())
                stopping_downloads = tasks.create_task(downloads.shutdown())
                await serving
                stop_watching.set()
                await watching
                await stopping_workers
                await stopping_downloads
                reaper.close()
                publisher.stopping()
                stop_publishing.set()
            commands.close(linger=0)
            events.close(linger=0)
            # Remove the socket files while the runtime dir is still ours (libzmq removes an
            # ipc file itself only for wildcard binds): a client then learns at once that no
            # daemon runs, instead of waiting out its timeout. Adopted sockets stay: their
            # .socket units own them, and they take the next command while the daemon is away.
            remove_socket_files(settings, keep=activation.endpoints)
        finally:
            if authenticator is not None:
                authenticator.stop()
            context.destroy(linger=0)
            notify.close()
        log.info("stopped")

    def _load(self, state: LiveState, downloads: Downloads) -> None:
        # The cyclic collector would run hundreds of times while ten thousand definitions are
        # built (none of which can form a cycle); after the load, freezing moves them out of
        # its view for good, so later collections do not walk the whole index either.
        gc.disable()
        try:
            self._scan_into(state, downloads.load())
        finally:
            gc.freeze()
            gc.enable()

    def _scan_into(self, state: LiveState, registered: list[Assistant]) -> None:
        loaded: list[Loaded] = []
        invalid: list[tuple[str, InvalidDefinition]] = []
        for assistant_id, outcome in self.store.scan():
            if isinstance(outcome, Loaded):
                loaded.append(outcome)
            else:
                invalid.append((assistant_id, outcome))
                log.warning(
                    "invalid assistant skipped",
                    assistant_id=assistant_id,
                    path=str(outcome.path),
                    reason=outcome.reason,
                )
        if not loaded and not invalid and not registered:
            # As the Jan app does: an empty folder of assistants gets the default one.
            loaded.append(self._write_default())
        state.load(loaded, invalid, registered)

    def _write_default(self) -> Loaded:
        self.store.create(DEFAULT_ASSISTANT_ID, default_assistant_document(int(time.time())))
        log.info("default assistant written", path=self.store.definition_path("jan"))
        return self.store.read(DEFAULT_ASSISTANT_ID)


WATCH_DELAY = 0.25
"""Seconds between ``ready`` and the start of watching (see :func:`_watch_soon`)."""


async def _watch_soon(state: LiveState, stop: asyncio.Event) -> None:
    """Start watching the root a moment after the daemon is ready.

    Setting up the watches holds the interpreter for about 130 ms per 10,000 assistant folders
    (watchfiles keeps the GIL while it walks the tree), so it is done after the first commands
    of a starting frontend have been answered rather than before. Changes made meanwhile are
    not lost: the watcher catches up with the folder once its watches are in place.
    """
    try:
        async with asyncio.timeout(WATCH_DELAY):
            await stop.wait()
        return  # stopped before watching began
    except TimeoutError:
        await Watcher(state).run(stop)
