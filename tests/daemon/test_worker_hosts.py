"""The JavaScript run inside workers: the parentPort shim, the preload, the default worker.

Each test runs real ``node`` through :func:`spawn_node`, against a test assistant's code written
into ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from assistantd.daemon.workers import JSONValue, NodeChannel, spawn_node
from assistantd.daemon.workers.host import (
    DEFAULT_WORKER,
    HOST_DIR,
    PARENTPORT_SHIM,
    PRELOAD,
)

DEADLINE = 20.0
CLEAN_ENV = {"PATH": os.environ["PATH"], "ASSISTANTD_TEST": "yes"}


@dataclass
class Worker:
    process: asyncio.subprocess.Process
    channel: NodeChannel

    async def invoke(self, id: int, method: str, *args: JSONValue) -> JSONValue:
        """Send one invoke and return the next message, which must answer it."""
        await self.channel.send({"type": "invoke", "id": id, "method": method, "args": list(args)})
        reply = await self.channel.receive()
        assert isinstance(reply, dict)
        assert reply["id"] == id
        return reply

    async def result(self, id: int, method: str, *args: JSONValue) -> JSONValue:
        reply = await self.invoke(id, method, *args)
        assert isinstance(reply, dict)
        assert reply["type"] == "result", reply
        return reply["result"]

    async def error(self, id: int, method: str, *args: JSONValue) -> dict[str, JSONValue]:
        reply = await self.invoke(id, method, *args)
        assert isinstance(reply, dict)
        assert reply["type"] == "error", reply
        assert set(reply) == {"type", "id", "error"}
        error = reply["error"]
        assert isinstance(error, dict)
        return error

    async def rest(self) -> list[JSONValue]:
        """Every message until the channel ends."""
        return [message async for message in self.channel]

    async def finish(self) -> tuple[int, str, str]:
        """Wait for the process to end: its exit code, stdout and stderr."""
        stdout, stderr = await self.process.communicate()
        assert self.process.returncode is not None
        return self.process.returncode, stdout.decode(), stderr.decode()


@asynccontextmanager
async def worker(cwd: Path, *args: str | os.PathLike[str]) -> AsyncIterator[Worker]:
    """``node *args`` in ``cwd`` through :func:`spawn_node`, its whole group gone afterwards."""
    process, channel = await spawn_node(args, cwd=cwd, env=CLEAN_ENV)
    try:
        yield Worker(process, channel)
    finally:
        async with asyncio.timeout(DEADLINE):
            await channel.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        async with asyncio.timeout(DEADLINE):
            await process.communicate()


def dig(message: JSONValue, *keys: str) -> Any:
    """``message[k1][k2]...``, each step checked to be a dict."""
    for key in keys:
        assert isinstance(message, dict), message
        message = message[key]
    return message


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def esm_package(folder: Path) -> None:
    (folder / "package.json").write_text(json.dumps({"name": "test", "type": "module"}))


# Where a test assistant's code is ESM: as process.mjs, or as process.js under "type": "module".
STYLES = ["cjs", "mjs", "type-module"]


def write_code(folder: Path, style: str, source: str) -> Path:
    if style == "type-module":
        esm_package(folder)
    return write(folder, "src/process.mjs" if style == "mjs" else "src/process.js", source)


PROCESS_READY: JSONValue = {"type": "ready", "style": "process", "methods": []}


def module_ready(*methods: str) -> JSONValue:
    """The ready message of module-style code exporting ``methods`` (sorted: see below)."""
    names: list[JSONValue] = [*sorted(methods)]
    return {"type": "ready", "style": "module", "methods": names}


def sorted_methods(message: JSONValue) -> JSONValue:
    """``message`` with its "methods" sorted: ESM lists its exports by name, CommonJS in order."""
    methods = message.get("methods") if isinstance(message, dict) else None
    if not isinstance(message, dict) or not isinstance(methods, list):
        return message
    names: list[JSONValue] = [*sorted(str(name) for name in methods)]
    return {**message, "methods": names}


# -- shipped with the package -----------------------------------------------------------------


def test_the_host_scripts_are_package_data() -> None:
    host = resources.files("assistantd.daemon").joinpath("workers/host")
    # pyproject.toml's package-data "workers/host/*.cjs" takes in every one of them.
    for path in (PRELOAD, PARENTPORT_SHIM, DEFAULT_WORKER, HOST_DIR / "serve.cjs"):
        assert host.joinpath(path.name).is_file()
        assert path.is_file()
        assert path.suffix == ".cjs"


# -- the parentPort shim ----------------------------------------------------------------------

FORK_STYLE = """
    process.on('message', (m) => process.send({ echo: m, parentPort: typeof process.parentPort }));
"""


@pytest.mark.asyncio
@pytest.mark.parametrize("shim", [True, False])
async def test_fork_style_code_works_with_or_without_the_shim(tmp_path: Path, shim: bool) -> None:
    script = write(tmp_path, "src/process.js", FORK_STYLE)
    preload: list[str | os.PathLike[str]] = ["--require", PARENTPORT_SHIM] if shim else []
    async with asyncio.timeout(DEADLINE), worker(tmp_path, *preload, script) as child:
        for message in ["a", {"b": [1, None]}]:
            await child.channel.send(message)
            assert await child.channel.receive() == {
                "echo": message,
                "parentPort": "object" if shim else "undefined",
            }


@pytest.mark.asyncio
async def test_the_shim_does_not_keep_a_worker_that_listens_to_nothing_alive(
    tmp_path: Path,
) -> None:
    script = write(tmp_path, "src/process.js", "process.send('hi');")
    async with (
        asyncio.timeout(DEADLINE),
        worker(tmp_path, "--require", PARENTPORT_SHIM, script) as child,
    ):
        assert await child.rest() == ["hi"]
        assert (await child.finish())[0] == 0


UTILITY_PROCESS_STYLE = """
    const port = process.parentPort;
    const kind = typeof require === 'undefined' ? 'esm' : 'cjs';
    port.start();
    port.once('message', (e) => port.postMessage({ first: e.data, ports: e.ports, kind }));
    const listener = (e) => {
      if (e.data === 'off') {
        port.off('message', listener); // the last listener: nothing keeps the worker alive now
        port.postMessage('stopped');
      } else {
        port.postMessage({ got: e.data });
      }
    };
    port.on('message', listener);
"""


async def talk_utility_process_style(child: Worker, style: str, second: JSONValue) -> None:
    """Drive :data:`UTILITY_PROCESS_STYLE` code to its end, ``second`` being a message to echo."""
    await child.channel.send("a")
    kind = "cjs" if style == "cjs" else "esm"
    assert await child.channel.receive() == {"first": "a", "ports": [], "kind": kind}
    assert await child.channel.receive() == {"got": "a"}
    await child.channel.send(second)
    assert await child.channel.receive() == {"got": second}  # once() fired once only
    await child.channel.send("off")
    assert await child.rest() == ["stopped"]
    assert (await child.finish())[0] == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("style", STYLES)
async def test_utility_process_style_code_runs_with_the_shim(tmp_path: Path, style: str) -> None:
    script = write_code(tmp_path, style, UTILITY_PROCESS_STYLE)
    async with (
        asyncio.timeout(DEADLINE),
        worker(tmp_path, "--require", PARENTPORT_SHIM, script) as child,
    ):
        await talk_utility_process_style(child, style, {"b": 2})


@pytest.mark.asyncio
async def test_both_styles_at_once_each_get_every_message(tmp_path: Path) -> None:
    source = """
        process.on('message', (m) => process.send({ fork: m }));
        const port = process.parentPort;
        port.addListener('message', (e) => port.postMessage({ port: e.data }));
    """
    script = write(tmp_path, "src/process.js", source)
    async with (
        asyncio.timeout(DEADLINE),
        worker(tmp_path, "--require", PARENTPORT_SHIM, script) as child,
    ):
        await child.channel.send(1)
        assert [await child.channel.receive() for _ in range(2)] == [{"fork": 1}, {"port": 1}]


@pytest.mark.asyncio
async def test_post_message_after_the_channel_closed_is_dropped_quietly(tmp_path: Path) -> None:
    source = """
        setInterval(() => {}, 1000);
        process.parentPort.on('message', () => {});
        process.on('disconnect', () => {
          process.parentPort.postMessage('too late'); // Electron drops it; so do we
          setImmediate(() => process.exit(3));
        });
        process.parentPort.postMessage('ready');
    """
    script = write(tmp_path, "src/process.js", source)
    async with (
        asyncio.timeout(DEADLINE),
        worker(tmp_path, "--require", PARENTPORT_SHIM, script) as child,
    ):
        assert await child.channel.receive() == "ready"
        await child.channel.close()
        code, _, stderr = await child.finish()
        assert (code, stderr) == (3, "")


# -- the preload: module style -----------------------------------------------------------------

MODULE_BODY = """
    let open;
    const gate = new Promise((resolve) => { open = resolve; });

    function add(a, b) { return a + b; }
    async function later(value) { await new Promise((r) => setTimeout(r, 5)); return value; }
    function kind() { return typeof require === 'undefined' ? 'esm' : 'cjs'; }
    function cwd() { return process.cwd(); }
    async function waitForGate() { await gate; return 'through'; }
    function openGate() { open(); return 'opened'; }
    function nothing() {}
    function notANumber() { return [NaN, Infinity, { u: undefined, d: new Date(0) }]; }
    function big() { return 10n; }
    function fails(message) { throw new TypeError(message); }
    async function rejects() {
      const error = new Error('over quota');
      error.name = 'QuotaError';
      error.code = 'E_QUOTA';
      throw error;
    }
    function throwsAString() { throw 'just a string'; }
    const notAFunction = 5;
"""
EXPORTED = [
    "add",
    "later",
    "kind",
    "cwd",
    "waitForGate",
    "openGate",
    "nothing",
    "notANumber",
    "big",
    "fails",
    "rejects",
    "throwsAString",
]
EXPORTS = ", ".join([*EXPORTED, "notAFunction"])


def write_module(folder: Path, style: str, body: str, names: str) -> Path:
    tail = f"module.exports = {{ {names} }};" if style == "cjs" else f"export {{ {names} }};"
    return write_code(folder, style, body + "\n" + tail + "\n")


@asynccontextmanager
async def hosted(folder: Path, module: Path | str) -> AsyncIterator[Worker]:
    """``node --require <preload> module``, as the daemon runs an assistant's own code."""
    async with worker(folder, "--require", PRELOAD, module) as child:
        yield child


@pytest.mark.asyncio
@pytest.mark.parametrize("style", STYLES)
async def test_the_preload_calls_exports_by_name(tmp_path: Path, style: str) -> None:
    write_module(tmp_path, style, MODULE_BODY, EXPORTS)
    module = "src/process.mjs" if style == "mjs" else "src/process.js"  # relative to the cwd
    async with asyncio.timeout(DEADLINE), hosted(tmp_path, module) as child:
        assert sorted_methods(await child.channel.receive()) == module_ready(*EXPORTED)

        assert await child.result(1, "kind") == ("cjs" if style == "cjs" else "esm")
        assert await child.result(2, "add", 2, 3) == 5
        assert await child.result(3, "add", "a", "b") == "ab"
        assert await child.result(4, "later", {"x": [1, "é"]}) == {"x": [1, "é"]}
        assert await child.result(5, "cwd") == str(tmp_path)
        # What JSON cannot hold: undefined is null; the rest as JSON.stringify has it.
        assert await child.result(6, "nothing") is None
        assert await child.result(7, "notANumber") == [
            None,
            None,
            {"d": "1970-01-01T00:00:00.000Z"},
        ]
        error = await child.error(8, "big")
        assert error["name"] == "ResultNotSerializable"
        assert "BigInt" in str(error["message"])
        # and the worker lives on
        assert await child.result(9, "add", 1, 1) == 2

        await child.channel.send({"type": "dispose"})
        assert await child.rest() == [{"type": "disposed"}]  # no dispose() export: still fine
        assert (await child.finish())[0] == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("style", ["cjs", "mjs"])
async def test_errors_come_back_with_name_message_and_stack(tmp_path: Path, style: str) -> None:
    write_module(tmp_path, style, MODULE_BODY, EXPORTS)
    module = tmp_path / ("src/process.mjs" if style == "mjs" else "src/process.js")
    async with asyncio.timeout(DEADLINE), hosted(tmp_path, module) as child:
        assert sorted_methods(await child.channel.receive()) == module_ready(*EXPORTED)

        error = await child.error(1, "fails", "bad input")
        assert (error["name"], error["message"]) == ("TypeError", "bad input")
        assert isinstance(error["stack"], str)
        assert "bad input" in error["stack"]
        assert "process." in error["stack"]

        error = await child.error(2, "rejects")
        assert error["name"] == "QuotaError"
        assert error["message"] == "over quota"
        assert error["code"] == "E_QUOTA"

        error = await child.error(3, "throwsAString")
        assert error == {"name": "Error", "message": "just a string", "stack": None}

        for id, method in enumerate(["noSuchMethod", "notAFunction", "toString", "constructor"]):
            error = await child.error(10 + id, method)
            assert error["name"] == "MethodNotFound"
            assert method in str(error["message"])

        await child.channel.send({"type": "invoke", "id": 20, "args": []})
        reply = await child.channel.receive()
        assert isinstance(reply, dict)
        assert reply["id"] == 20
        assert dig(reply, "error", "name") == "InvalidRequest"
        await child.channel.send({"type": "invoke", "id": 21, "method": "add", "args": 3})
        reply = await child.channel.receive()
        assert isinstance(reply, dict)
        assert (reply["id"], dig(reply, "error", "name")) == (21, "InvalidRequest")

        await child.channel.send({"type": "something else"})  # ignored
        assert await child.result(22, "add", 40, 2) == 42


@pytest.mark.asyncio
async def test_invokes_in_flight_are_answered_by_id_as_they_end(tmp_path: Path) -> None:
    write_module(tmp_path, "cjs", MODULE_BODY, EXPORTS)
    async with asyncio.timeout(DEADLINE), hosted(tmp_path, "src/process.js") as child:
        assert sorted_methods(await child.channel.receive()) == module_ready(*EXPORTED)
        invoke = {"type": "invoke", "method": "waitForGate"}
        await child.channel.send({**invoke, "id": 1})
        await child.channel.send({**invoke, "id": 2, "args": []})
        await child.channel.send({"type": "invoke", "id": 3, "method": "later", "args": ["x"]})
        await child.channel.send({"type": "invoke", "id": 4, "method": "openGate", "args": []})
        replies = [await child.channel.receive() for _ in range(4)]
    by_id = {reply["id"]: reply for reply in replies if isinstance(reply, dict)}
    assert by_id == {
        1: {"type": "result", "id": 1, "result": "through"},
        2: {"type": "result", "id": 2, "result": "through"},
        3: {"type": "result", "id": 3, "result": "x"},
        4: {"type": "result", "id": 4, "result": "opened"},
    }
    # The gate holders answer only after the invoke that opened it.
    order = [reply["id"] for reply in replies if isinstance(reply, dict)]
    assert order.index(4) < order.index(1)
    assert order.index(4) < order.index(2)


DISPOSABLE = """
    setInterval(() => {}, 1000); // a live timer: the worker must exit all the same
    function ping() { return 'pong'; }
    async function dispose() {
      await new Promise((r) => setTimeout(r, 20));
      console.log('dispose called');
    }
"""


@pytest.mark.asyncio
@pytest.mark.parametrize("style", ["cjs", "type-module"])
async def test_dispose_is_called_on_the_dispose_message(tmp_path: Path, style: str) -> None:
    write_module(tmp_path, style, DISPOSABLE, "ping, dispose")
    async with asyncio.timeout(DEADLINE), hosted(tmp_path, "src/process.js") as child:
        assert sorted_methods(await child.channel.receive()) == module_ready("dispose", "ping")
        assert await child.result(1, "ping") == "pong"
        await child.channel.send({"type": "dispose"})
        await child.channel.send({"type": "invoke", "id": 2, "method": "ping", "args": []})
        await child.channel.send({"type": "dispose"})  # a second one changes nothing
        rest = await child.rest()
        code, stdout, stderr = await child.finish()
    assert rest[-1] == {"type": "disposed"}
    assert len(rest) == 2
    refused = rest[0]
    assert isinstance(refused, dict)
    assert (refused["id"], dig(refused, "error", "name")) == (2, "Disposed")
    assert (code, stdout, stderr) == (0, "dispose called\n", "")  # once, though 'disconnect' came


@pytest.mark.asyncio
@pytest.mark.parametrize("style", ["cjs", "mjs"])
async def test_dispose_is_called_when_the_channel_closes(tmp_path: Path, style: str) -> None:
    module = write_module(tmp_path, style, DISPOSABLE, "ping, dispose")
    async with asyncio.timeout(DEADLINE), hosted(tmp_path, module) as child:
        assert sorted_methods(await child.channel.receive()) == module_ready("dispose", "ping")
        await child.channel.close()
        assert await child.finish() == (0, "dispose called\n", "")


@pytest.mark.asyncio
async def test_a_dispose_that_throws_is_reported(tmp_path: Path) -> None:
    source = "exports.dispose = () => { throw new RangeError('cannot let go'); };"
    module = write(tmp_path, "src/process.js", source)
    async with asyncio.timeout(DEADLINE), hosted(tmp_path, module) as child:
        assert await child.channel.receive() == module_ready("dispose")
        await child.channel.send({"type": "dispose"})
        [disposed] = await child.rest()
        code, _, stderr = await child.finish()
    assert isinstance(disposed, dict)
    assert disposed["type"] == "disposed"
    assert isinstance(disposed["error"], dict)
    assert (disposed["error"]["name"], disposed["error"]["message"]) == (
        "RangeError",
        "cannot let go",
    )
    assert code == 0
    assert "cannot let go" in stderr


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("name", "source", "message"),
    [
        ("process.js", "throw new Error('broken at load');", "Error: broken at load"),
        ("process.mjs", "await Promise.reject(new Error('broken at load'));", "broken at load"),
        ("process.js", "this is not javascript", "SyntaxError: Unexpected identifier"),
        ("process.mjs", "export {", "SyntaxError"),
        ("process.mjs", "import './nowhere.mjs';", "Cannot find module"),
        ("missing.js", None, "Cannot find module"),
    ],
)
async def test_a_module_that_does_not_load_ends_the_worker_before_ready(
    tmp_path: Path, name: str, source: str | None, message: str
) -> None:
    """Node reports it on stderr and exits 1; the preload says nothing at all."""
    if source is not None:
        write(tmp_path, name, source)
    async with asyncio.timeout(DEADLINE), hosted(tmp_path, name) as child:
        assert await child.rest() == []
        code, _, stderr = await child.finish()
    assert code == 1
    assert message in stderr


@pytest.mark.asyncio
@pytest.mark.parametrize("style", STYLES)
async def test_module_style_is_reported_only_once_the_module_is_evaluated(
    tmp_path: Path, style: str
) -> None:
    """Top-level await included: what the code sends while evaluating comes before ready."""
    esm = style != "cjs"
    wait = "await new Promise((r) => setTimeout(r, 50));" if esm else ""
    last = "export function f() { return 'f'; }" if esm else "exports.f = () => 'f';"
    source = f"""
        process.send('evaluating');
        {wait}
        {last}
        process.send('evaluated');
    """
    write_code(tmp_path, style, source)
    module = "src/process.mjs" if style == "mjs" else "src/process.js"
    async with asyncio.timeout(DEADLINE), hosted(tmp_path, module) as child:
        assert [await child.channel.receive() for _ in range(3)] == [
            "evaluating",
            "evaluated",
            module_ready("f"),
        ]
        assert await child.result(1, "f") == "f"
        await child.channel.send({"type": "dispose"})
        assert await child.rest() == [{"type": "disposed"}]
        assert (await child.finish())[0] == 0


MAIN_CJS = """
    globalThis.evaluations = (globalThis.evaluations ?? 0) + 1;
    process.send({ main: require.main === module, argv1: process.argv[1] });
    exports.evaluations = () => globalThis.evaluations;
"""
MAIN_ESM = """
    import { pathToFileURL } from 'node:url';
    globalThis.evaluations = (globalThis.evaluations ?? 0) + 1;
    const main = import.meta.url === pathToFileURL(process.argv[1]).href;
    process.send({ main, argv1: process.argv[1] });
    export function evaluations() { return globalThis.evaluations; }
"""


@pytest.mark.asyncio
@pytest.mark.parametrize("style", STYLES)
async def test_the_code_runs_as_the_main_module_once(tmp_path: Path, style: str) -> None:
    """As under plain ``node src/process.js``; the preload's look at it evaluates nothing again."""
    write_code(tmp_path, style, MAIN_CJS if style == "cjs" else MAIN_ESM)
    module = "src/process.mjs" if style == "mjs" else "src/process.js"
    async with asyncio.timeout(DEADLINE), hosted(tmp_path, module) as child:
        assert await child.channel.receive() == {"main": True, "argv1": str(tmp_path / module)}
        assert await child.channel.receive() == module_ready("evaluations")
        assert await child.result(1, "evaluations") == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["process.js", "process.mjs"])
async def test_a_symlinked_main_module_is_evaluated_once(tmp_path: Path, name: str) -> None:
    """Node runs the real file; the preload must find that very module, not load the link."""
    real = write(tmp_path, f"real/{name}", MAIN_CJS if name.endswith(".js") else MAIN_ESM)
    link = tmp_path / "src" / name
    link.parent.mkdir()
    link.symlink_to(real)
    async with asyncio.timeout(DEADLINE), hosted(tmp_path, link) as child:
        assert dig(await child.channel.receive(), "argv1") == str(link)
        assert await child.channel.receive() == module_ready("evaluations")
        assert await child.result(1, "evaluations") == 1


# -- the preload: process style ----------------------------------------------------------------

FORK_STYLE_TALKING = """
    process.send('evaluating');
    process.on('message', (m) => {
      process.send({ echo: m }, () => m === 'bye' && process.disconnect());
    });
    process.send('evaluated');
"""
INVOKE: JSONValue = {"type": "invoke", "id": 1, "method": "f", "args": []}


@pytest.mark.asyncio
@pytest.mark.parametrize("style", STYLES)
async def test_fork_style_code_talks_for_itself_under_the_preload(
    tmp_path: Path, style: str
) -> None:
    """Ready comes after what the code sent while evaluating; invokes are the code's own."""
    write_code(tmp_path, style, FORK_STYLE_TALKING)
    module = "src/process.mjs" if style == "mjs" else "src/process.js"
    async with asyncio.timeout(DEADLINE), hosted(tmp_path, module) as child:
        assert [await child.channel.receive() for _ in range(3)] == [
            "evaluating",
            "evaluated",
            PROCESS_READY,
        ]
        await child.channel.send({"b": [1, None]})
        assert await child.channel.receive() == {"echo": {"b": [1, None]}}
        await child.channel.send(INVOKE)
        await child.channel.send("bye")
        # Every message until the code disconnected: the preload answered nothing.
        assert await child.rest() == [{"echo": INVOKE}, {"echo": "bye"}]
        assert (await child.finish())[0] == 0


@pytest.mark.asyncio
async def test_code_that_exports_functions_but_listens_itself_is_process_style(
    tmp_path: Path,
) -> None:
    source = FORK_STYLE_TALKING + "\nmodule.exports = { f() { return 'f'; } };\n"
    module = write(tmp_path, "src/process.js", source)
    async with asyncio.timeout(DEADLINE), hosted(tmp_path, module) as child:
        assert [await child.channel.receive() for _ in range(3)] == [
            "evaluating",
            "evaluated",
            PROCESS_READY,
        ]
        await child.channel.send(INVOKE)
        await child.channel.send("bye")
        assert await child.rest() == [{"echo": INVOKE}, {"echo": "bye"}]
        assert (await child.finish())[0] == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("style", STYLES)
async def test_utility_process_style_code_is_process_style_under_the_preload(
    tmp_path: Path, style: str
) -> None:
    write_code(tmp_path, style, UTILITY_PROCESS_STYLE)
    module = "src/process.mjs" if style == "mjs" else "src/process.js"
    async with asyncio.timeout(DEADLINE), hosted(tmp_path, module) as child:
        assert await child.channel.receive() == PROCESS_READY
        await talk_utility_process_style(child, style, INVOKE)  # an invoke is e.data too


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("style", "source"),
    [
        ("cjs", "process.send('evaluated');"),
        ("cjs", "module.exports = { answer: 42 }; process.send('evaluated');"),
        ("mjs", "export const answer = 42; process.send('evaluated');"),
        ("type-module", "process.send('evaluated');"),
    ],
)
async def test_code_with_nothing_to_do_exits_by_itself_after_ready(
    tmp_path: Path, style: str, source: str
) -> None:
    """No exported function, no listener, no timer: the preload keeps nothing alive."""
    module = write_code(tmp_path, style, source)
    async with asyncio.timeout(DEADLINE), hosted(tmp_path, module) as child:
        assert await child.rest() == ["evaluated", PROCESS_READY]
        assert await child.finish() == (0, "", "")


# -- the default worker -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_default_worker_answers_ping_and_get_definition(tmp_path: Path) -> None:
    definition = {"name": "Helper", "model": {"id": "x"}, "tools": [], "note": "héllo"}
    (tmp_path / "assistant.json").write_text(json.dumps(definition))
    async with asyncio.timeout(DEADLINE), worker(tmp_path, DEFAULT_WORKER) as child:
        ready = {"type": "ready", "style": "default", "methods": ["ping", "getDefinition"]}
        assert await child.channel.receive() == ready
        assert await child.result(1, "ping") == "pong"
        assert await child.result(2, "getDefinition") == definition
        assert (await child.error(3, "nope"))["name"] == "MethodNotFound"
        await child.channel.send({"type": "dispose"})
        assert await child.rest() == [{"type": "disposed"}]
        assert (await child.finish())[0] == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("content", [None, "{not json"])
async def test_the_default_worker_without_a_readable_assistant_json_fails(
    tmp_path: Path, content: str | None
) -> None:
    if content is not None:
        (tmp_path / "assistant.json").write_text(content)
    async with asyncio.timeout(DEADLINE), worker(tmp_path, DEFAULT_WORKER) as child:
        [failed] = await child.rest()
        code, _, _ = await child.finish()
    assert isinstance(failed, dict)
    assert failed["type"] == "failed"
    error = failed["error"]
    assert isinstance(error, dict)
    assert error["name"] == ("Error" if content is None else "SyntaxError")
    if content is None:
        assert error["code"] == "ENOENT"
    assert code == 1
