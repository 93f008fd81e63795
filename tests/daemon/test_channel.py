"""Node's IPC channel, the daemon's end: against real `node` children (and one Python child)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import signal
import socket
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from assistantd.daemon.workers import ChannelClosed, JSONValue, NodeChannel, spawn_node
from assistantd.daemon.workers import channel as channel_module
from assistantd.daemon.workers.channel import Lines, TooLong, decode, encode

DEADLINE = 20.0
CLEAN_ENV = {"PATH": os.environ["PATH"], "ASSISTANTD_TEST": "yes"}

ECHO = "process.on('message', (m) => process.send(m));"
COUNTING_ECHO = "let n = 0; process.on('message', (m) => process.send({ n: ++n, m }));"
NOT_JSON = "skipped a line from the worker that is not JSON"
HANDLE_TYPES = {"server": "net.Server", "socket": "net.Socket"}


@asynccontextmanager
async def node_child(
    tmp_path: Path, source: str, *, name: str = "child.js", node: str = "node"
) -> AsyncIterator[tuple[asyncio.subprocess.Process, NodeChannel]]:
    """A child running ``source`` through :func:`spawn_node`, its whole group gone afterwards."""
    script = tmp_path / name
    script.write_text(textwrap.dedent(source))
    process, channel = await spawn_node([script], cwd=tmp_path, env=CLEAN_ENV, node=node)
    try:
        yield process, channel
    finally:
        async with asyncio.timeout(DEADLINE):
            await channel.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        async with asyncio.timeout(DEADLINE):
            await process.communicate()


@asynccontextmanager
async def channel_pair() -> AsyncIterator[tuple[NodeChannel, socket.socket]]:
    """A channel whose other end is a plain socket in the test, to write exact bytes with."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    theirs.setblocking(False)
    channel = await NodeChannel.open(ours)
    try:
        yield channel, theirs
    finally:
        theirs.close()
        async with asyncio.timeout(DEADLINE):
            await channel.close()


async def take(channel: NodeChannel, count: int) -> list[JSONValue]:
    return [await channel.receive() for _ in range(count)]


# -- the codec and the line splitter: no socket, no event loop --------------------------------


@pytest.mark.parametrize(
    "value",
    [
        math.nan,
        math.inf,
        -math.inf,
        {"deep": [1, {"x": math.nan}]},
        b"bytes",
        {1, 2},
        object(),
        {("a", "tuple"): "key"},
        {"cmd": "NODE_HANDLE_ACK"},
        {"cmd": "NODE_ANYTHING", "x": 1},
    ],
)
def test_encode_refuses_what_is_not_plain_json(value: object) -> None:
    with pytest.raises(ValueError, match=r"plain JSON|one of its own"):
        encode(value)


def test_encode_refuses_a_circular_value() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="plain JSON"):
        encode(loop)


def test_encode_writes_one_line_as_json_stringify_would() -> None:
    assert encode({"a": [1, "é"], "b": None}) == '{"a":[1,"é"],"b":null}\n'.encode()
    assert encode("two\nlines") == b'"two\\nlines"\n'  # a newline in a string stays escaped
    # A lone surrogate has no UTF-8 form; it goes as an escape, as JSON.stringify writes it.
    assert encode(["é\ud800"]) == b'["\\u00e9\\ud800"]\n'
    assert encode({"cmd": "NODE_"}) == b'{"cmd":"NODE_"}\n'  # not Node's: nothing after NODE_


@pytest.mark.parametrize("line", [b"", b"NaN", b"-Infinity", b'{"a": 1', b"\xff\xfe", b"1 2"])
def test_decode_refuses_what_json_parse_would(line: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each has its own message
        decode(line)


def test_lines_are_whole_however_the_stream_is_split() -> None:
    stream = b'{"a":1}\n"two"\n\n[3,4]\n{"long":"' + b"x" * 50 + b'"}\n'
    expected = [b'{"a":1}', b'"two"', b"", b"[3,4]", b'{"long":"' + b"x" * 50 + b'"}']
    for cut in range(len(stream) + 1):
        lines = Lines()
        assert lines.feed(stream[:cut]) + lines.feed(stream[cut:]) == expected
        assert lines.pending == 0
    one_by_one = Lines()
    assert [line for i in range(len(stream)) for line in one_by_one.feed(stream[i : i + 1])] == (
        expected
    )


def test_lines_over_the_limit_are_skipped_and_the_next_ones_kept() -> None:
    lines = Lines(max_line=10)
    assert lines.feed(b'"short"\n"this one is far too long"\n"ok"\n"and a') == [
        b'"short"',
        TooLong(26),
        b'"ok"',
    ]
    assert lines.feed(b"nother one that goes on") == []
    assert lines.pending > 10
    assert lines.feed(b' and on"\n[1]\n') == [TooLong(37), b"[1]"]
    assert lines.pending == 0


# -- the channel over a plain socket: exact bytes on the wire ---------------------------------


@pytest.mark.asyncio
async def test_node_handle_is_answered_with_a_nack_and_not_delivered() -> None:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(DEADLINE), channel_pair() as (channel, peer):
        await loop.sock_sendall(
            peer, b'{"cmd":"NODE_HANDLE","type":"net.Server","msg":{"k":1}}\n{"k":"after"}\n'
        )
        assert await channel.receive() == {"k": "after"}
        assert await loop.sock_recv(peer, 100) == b'{"cmd":"NODE_HANDLE_NACK"}\n'


@pytest.mark.asyncio
async def test_the_end_of_the_channel_mid_message_is_reported() -> None:
    loop = asyncio.get_running_loop()
    with capture_logs() as logs:
        async with asyncio.timeout(DEADLINE), channel_pair() as (channel, peer):
            await loop.sock_sendall(peer, b'{"a":1}\n{"b":')
            peer.shutdown(socket.SHUT_WR)
            assert [message async for message in channel] == [{"a": 1}]
            with pytest.raises(ChannelClosed):
                await channel.receive()
    assert [log["bytes"] for log in logs if "middle of a message" in log["event"]] == [5]


@pytest.mark.asyncio
async def test_send_waits_while_the_other_end_is_slow_to_read() -> None:
    loop = asyncio.get_running_loop()
    message = "x" * 10_000_000
    size = len(encode(message))

    async with asyncio.timeout(DEADLINE), channel_pair() as (channel, peer):

        async def read_it_all() -> int:
            received = 0
            while received < size:
                received += len(await loop.sock_recv(peer, 1 << 20))
            return received

        async with asyncio.TaskGroup() as tasks:
            reading = tasks.create_task(read_it_all())
            await channel.send(message)
            # Sent without waiting, nearly all 10 MB would still sit in our buffer here.
            transport = channel._transport
            assert transport is not None
            assert transport.get_write_buffer_size() <= transport.get_write_buffer_limits()[1]
        assert reading.result() == size


# -- real node children -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_fork_style_child_echoes_messages(tmp_path: Path) -> None:
    messages: list[JSONValue] = [
        {"text": "héllo wörld 😀", "separators": "a\u2028b\nc\r\td", "quote": '"\\'},
        {"numbers": [0, -1, 2**53, 2.5, 1e300, -1e-300], "flags": [True, False, None]},
        "just a string",
        "a lone \ud800 surrogate",
        42,
        None,
        [],
        {},
        {"nested": {"deeper": [[["x"]], {"y": {}}]}},
    ]
    async with asyncio.timeout(DEADLINE), node_child(tmp_path, ECHO) as (_, channel):
        for message in messages:
            await channel.send(message)
            assert await channel.receive() == message


@pytest.mark.asyncio
async def test_many_messages_in_flight_come_back_in_order(tmp_path: Path) -> None:
    count = 5000
    async with asyncio.timeout(DEADLINE), node_child(tmp_path, ECHO) as (_, channel):

        async def send_all() -> None:
            for i in range(count):
                await channel.send({"i": i, "pad": "p" * (i % 300)})

        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(send_all())
            received = await take(channel, count)
    assert received == [{"i": i, "pad": "p" * (i % 300)} for i in range(count)]


@pytest.mark.asyncio
async def test_ten_megabytes_each_way(tmp_path: Path) -> None:
    blob = "x" * 10_000_000 + "é😀"
    source = """
        process.on('message', (m) => {
          process.send({ length: m.blob.length, back: m.blob + '!', own: 'y'.repeat(10e6) });
        });
    """
    async with asyncio.timeout(DEADLINE), node_child(tmp_path, source) as (_, channel):
        await channel.send({"blob": blob})
        reply = await channel.receive()
    assert isinstance(reply, dict)
    assert reply["length"] == len(blob) + 1  # JavaScript counts 😀 as two UTF-16 units
    assert reply["back"] == blob + "!"
    assert reply["own"] == "y" * 10_000_000


@pytest.mark.asyncio
async def test_many_small_messages_and_big_ones_arrive_whole(tmp_path: Path) -> None:
    source = """
        for (let i = 0; i < 20000; i++) {
          process.send(i % 5000 === 4999 ? { i, big: 'z'.repeat(3e6 + i) } : { i });
        }
        process.send('done');
    """
    async with asyncio.timeout(DEADLINE), node_child(tmp_path, source) as (_, channel):
        received = await take(channel, 20001)
    assert received[-1] == "done"
    for i, message in enumerate(received[:-1]):
        if i % 5000 == 4999:
            assert message == {"i": i, "big": "z" * (3_000_000 + i)}
        else:
            assert message == {"i": i}


@pytest.mark.asyncio
async def test_nan_and_infinity_are_refused_without_writing_anything(tmp_path: Path) -> None:
    bad = [math.nan, math.inf, -math.inf, {"x": [1, math.nan]}, {"cmd": "NODE_HANDLE_ACK"}]
    async with asyncio.timeout(DEADLINE), node_child(tmp_path, COUNTING_ECHO) as (_, channel):
        for value in bad:
            with pytest.raises(ValueError):  # noqa: PT011 - the message is encode's to test
                await channel.send(value)
        await channel.send("good")
        # The child lives, and this is the first message it has seen.
        assert await channel.receive() == {"n": 1, "m": "good"}


@pytest.mark.asyncio
@pytest.mark.parametrize("handle", ["server", "socket"])
async def test_a_child_that_sends_a_handle_still_gets_later_messages_through(
    tmp_path: Path, handle: str
) -> None:
    source = f"""
        const net = require('net');
        const server = net.createServer(() => {{}}).listen(0, '127.0.0.1', () => {{
          if ('{handle}' === 'server') {{
            process.send({{ k: 'with the handle' }}, server);
            process.send({{ k: 'after' }});
          }} else {{
            const client = net.connect(server.address().port, '127.0.0.1', () => {{
              process.send({{ k: 'with the handle' }}, client);
              process.send({{ k: 'after' }});
            }});
          }}
        }});
        process.on('message', () => process.exit(0));
    """
    with capture_logs() as logs:
        async with (
            asyncio.timeout(DEADLINE),
            node_child(tmp_path, source) as (process, channel),
        ):
            # Without an answer to NODE_HANDLE, Node would hold 'after' back for ever.
            assert await channel.receive() == {"k": "after"}
            await channel.send("bye")
            _, stderr = await process.communicate()
            assert process.returncode == 0
    # The NACK tells the child the truth: for a socket, Node retries, then warns in its log.
    assert (b"SentHandleNotReceivedWarning" in stderr) == (handle == "socket")
    # Ours tells of the handle once, retries or not.
    assert [log["type"] for log in logs if "sent a handle" in log["event"]] == [
        HANDLE_TYPES[handle]
    ]


@pytest.mark.asyncio
async def test_node_internal_messages_are_not_delivered(tmp_path: Path) -> None:
    source = """
        process.send({ cmd: 'NODE_CLUSTER', act: 'online' });
        process.send({ cmd: 'NODE_' });
        process.send({ cmd: 'node_lower' });
        process.send({ cmd: 5 });
        process.send({ cmd: 'NODE_HANDLE_ACK' });
        process.send('end');
    """
    async with asyncio.timeout(DEADLINE), node_child(tmp_path, source) as (_, channel):
        received = [message async for message in channel]
    assert received == [{"cmd": "NODE_"}, {"cmd": "node_lower"}, {"cmd": 5}, "end"]


@pytest.mark.asyncio
async def test_a_malformed_line_is_reported_and_the_channel_goes_on(tmp_path: Path) -> None:
    # Node's process.send() cannot write a bad line, and Node hides NODE_CHANNEL_FD from user
    # code; a Python child on the same inherited fd writes what it likes.
    source = r"""
        import os
        fd = int(os.environ["NODE_CHANNEL_FD"])
        os.write(fd, b'{"n": 1}\nthis is not json\n{"n": 2}\n\xff\xfe\n{"n": 3, NaN}\nNaN\n\n')
        os.write(fd, b'{"n": 3}\n')
        with os.fdopen(fd, "rb", buffering=0) as channel:
            line = channel.readline()
            os.write(fd, line)
    """
    with capture_logs() as logs:
        async with (
            asyncio.timeout(DEADLINE),
            node_child(tmp_path, source, name="child.py", node=sys.executable) as (_, channel),
        ):
            assert await take(channel, 3) == [{"n": 1}, {"n": 2}, {"n": 3}]
            await channel.send({"still": "talking"})
            assert [message async for message in channel] == [{"still": "talking"}]
    reported = [log for log in logs if log["event"] == NOT_JSON]
    assert [log["start"] for log in reported] == [
        "this is not json",
        "\ufffd\ufffd",
        '{"n": 3, NaN}',
        "NaN",
        "",
    ]
    assert all(log["log_level"] == "warning" and log["pid"] for log in reported)


@pytest.mark.asyncio
async def test_closing_our_end_makes_disconnect_fire_in_the_child(tmp_path: Path) -> None:
    source = """
        setInterval(() => {}, 1000); // alive until it decides otherwise
        process.on('disconnect', () => {
          process.send('too late', (error) => {
            process.exit(error && error.code === 'ERR_IPC_CHANNEL_CLOSED' ? 42 : 1);
          });
        });
        process.send('ready');
    """
    async with asyncio.timeout(DEADLINE), node_child(tmp_path, source) as (process, channel):
        assert await channel.receive() == "ready"
        await channel.close()
        assert await process.wait() == 42
        assert [message async for message in channel] == []
        with pytest.raises(ChannelClosed):
            await channel.send("anyone?")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("ending", "exit_code"),
    [("process.disconnect();", 0), ("process.send('c', () => process.exit(7));", 7)],
)
async def test_the_child_closing_the_channel_ends_the_iteration(
    tmp_path: Path, ending: str, exit_code: int
) -> None:
    source = f"process.send('a'); process.send('b'); {ending}"
    async with asyncio.timeout(DEADLINE), node_child(tmp_path, source) as (process, channel):
        received = [message async for message in channel]
        assert await process.wait() == exit_code
        for _ in range(2):  # and it stays ended
            with pytest.raises(ChannelClosed):
                await channel.receive()
    assert received == (["a", "b"] if exit_code == 0 else ["a", "b", "c"])


@pytest.mark.asyncio
async def test_the_childs_own_children_see_neither_the_channel_nor_its_variables(
    tmp_path: Path,
) -> None:
    source = """
        const fs = require('fs');
        const { execFileSync } = require('child_process');
        const grandchild = execFileSync(process.execPath, ['-e', `
          const fs = require('fs');
          const fds = fs.readdirSync('/proc/self/fd').map((fd) => {
            try { return fs.readlinkSync('/proc/self/fd/' + fd); } catch { return null; }
          });
          process.stdout.write(JSON.stringify({ env: process.env, fds }));
        `]);
        process.send({
          env: process.env,
          channel: fs.readlinkSync('/proc/self/fd/' + process.channel.fd),
          grandchild: JSON.parse(grandchild),
        });
    """
    async with asyncio.timeout(DEADLINE), node_child(tmp_path, source) as (_, channel):
        report = await channel.receive()
    assert isinstance(report, dict)
    assert report["env"] == CLEAN_ENV  # the caller's environment, no more (Node took its two)
    grandchild = report["grandchild"]
    assert isinstance(grandchild, dict)
    assert grandchild["env"] == CLEAN_ENV
    assert isinstance(report["channel"], str)
    assert report["channel"].startswith("socket:")
    assert isinstance(grandchild["fds"], list)
    assert report["channel"] not in grandchild["fds"]


PARENT = """
    import asyncio, os, sys

    from assistantd.daemon.workers import channel, spawn_node

    if sys.argv[2] == "preexec_fn":
        channel._setpriv = lambda: None  # as where util-linux's setpriv is not installed

    async def main() -> None:
        script = sys.argv[1]
        env = {"PATH": os.environ["PATH"]}
        process, channel = await spawn_node([script], cwd=os.path.dirname(script), env=env)
        await channel.receive()
        print(process.pid, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
"""

STUBBORN = """
    setInterval(() => {}, 1000);
    process.on('disconnect', () => {});
    process.on('SIGTERM', () => {});
    process.send('ready');
"""


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "armed_by",
    [
        pytest.param(
            "setpriv",
            marks=pytest.mark.skipif(not shutil.which("setpriv"), reason="no setpriv here"),
        ),
        "preexec_fn",
    ],
)
async def test_a_killed_daemon_leaves_no_worker_behind(tmp_path: Path, armed_by: str) -> None:
    # A child that outlives both the channel's end and SIGTERM: only PR_SET_PDEATHSIG gets it.
    (tmp_path / "parent.py").write_text(textwrap.dedent(PARENT))
    (tmp_path / "stubborn.js").write_text(textwrap.dedent(STUBBORN))
    daemon = await asyncio.create_subprocess_exec(
        sys.executable,
        tmp_path / "parent.py",
        tmp_path / "stubborn.js",
        armed_by,
        stdout=asyncio.subprocess.PIPE,
    )
    assert daemon.stdout is not None
    worker = 0
    killed = gone = False
    try:
        async with asyncio.timeout(DEADLINE):
            worker = int(await daemon.stdout.readline())
        # A pidfd turns readable when the process ends (zombie or reaped, whoever its parent is
        # by then): the wait needs no polling.
        pidfd = os.pidfd_open(worker)
        try:
            daemon.kill()
            killed = True
            ended = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_reader(pidfd, ended.set)
            try:
                async with asyncio.timeout(DEADLINE):
                    await ended.wait()
                gone = True
            finally:
                loop.remove_reader(pidfd)
        finally:
            os.close(pidfd)
    finally:
        if worker and not gone:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker, signal.SIGKILL)
        # Never a second kill(): asyncio's Process.kill() has Popen poll first, and that
        # waitpid() can reap the child before asyncio's child watcher does, which then reports
        # exit code 255 (seen under load).
        if not killed:
            with contextlib.suppress(ProcessLookupError):
                daemon.kill()
        async with asyncio.timeout(DEADLINE):
            await daemon.communicate()
    assert daemon.returncode == -signal.SIGKILL


@pytest.mark.asyncio
async def test_a_child_started_without_setpriv_talks_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(channel_module, "_setpriv", lambda: None)  # the preexec_fn way instead
    async with asyncio.timeout(DEADLINE), node_child(tmp_path, ECHO) as (_, channel):
        await channel.send({"hello": "there"})
        assert await channel.receive() == {"hello": "there"}


@pytest.mark.asyncio
async def test_spawning_a_node_that_is_not_there_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not on the daemon's PATH"):
        await spawn_node(["x.js"], cwd=tmp_path, env=CLEAN_ENV, node="no-such-node-here")
    with pytest.raises(FileNotFoundError, match="is not executable"):
        await spawn_node(["x.js"], cwd=tmp_path, env=CLEAN_ENV, node=tmp_path / "node")
