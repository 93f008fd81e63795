"""Per-assistant locks: one writer per key at a time, and nothing kept for idle keys."""

from __future__ import annotations

import asyncio

import pytest

from assistantd.daemon.locks import KeyedLocks


async def test_one_holder_per_key_and_fifo_order() -> None:
    locks = KeyedLocks()
    inside = 0
    most_inside = 0
    order: list[int] = []

    async def work(n: int) -> None:
        nonlocal inside, most_inside
        async with locks.hold("jan"):
            inside += 1
            most_inside = max(most_inside, inside)
            order.append(n)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            inside -= 1

    await asyncio.gather(*(work(n) for n in range(10)))
    assert most_inside == 1
    assert order == list(range(10))
    assert not locks.is_held("jan")
    assert locks._locks == {}


async def test_different_keys_do_not_wait_for_each_other() -> None:
    locks = KeyedLocks()
    async with locks.hold("a"):
        async with asyncio.timeout(1):
            async with locks.hold("b"):
                assert locks.is_held("a")
                assert locks.is_held("b")
    assert locks._locks == {}


async def test_a_cancelled_waiter_leaves_nothing_behind() -> None:
    locks = KeyedLocks()
    entered = asyncio.Event()

    async def waiter() -> None:
        async with locks.hold("k"):
            entered.set()

    async with locks.hold("k"):
        task = asyncio.create_task(waiter())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not entered.is_set()
    assert locks._locks == {}
    async with asyncio.timeout(1), locks.hold("k"):
        assert locks.is_held("k")


async def test_an_error_inside_releases_the_lock() -> None:
    locks = KeyedLocks()

    async def fail() -> None:
        async with locks.hold("k"):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail()
    assert not locks.is_held("k")
    assert locks._locks == {}
