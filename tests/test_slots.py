"""`Slots`: a free slot is taken without yielding; waiters are served in order, within a bound."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from begateway_async._slots import Slots

pytestmark = pytest.mark.anyio


async def test_a_free_slot_is_taken_without_a_trip_through_the_loop():
    """No other task runs while a free slot is taken (anyio's semaphore always yields)."""
    slots = Slots(2)
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    async with anyio.create_task_group() as tg:
        tg.start_soon(other)
        await slots.acquire()
        async with slots:
            assert ran == []  # nothing else ran: neither acquire yielded
            assert slots.free == 0
        await anyio.lowlevel.checkpoint()
    assert ran == ["other"]
    slots.release()
    assert slots.free == 2


async def test_waiters_get_slots_in_arrival_order_and_a_newcomer_waits_behind_them():
    slots = Slots(1)
    await slots.acquire()
    order: list[int] = []

    async def wait(k: int) -> None:
        async with slots:
            order.append(k)
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        for k in range(3):  # they arrive one after the other
            tg.start_soon(wait, k)
            await anyio.wait_all_tasks_blocked()
        slots.release()  # handed to the first waiter, not left free for a newcomer
        assert not await slots.acquire(within=0)
    assert order == [0, 1, 2]
    assert slots.free == 1


async def test_a_wait_within_a_bound_says_whether_it_got_a_slot():
    slots = Slots(1)
    assert await slots.acquire(within=0.01)
    assert not await slots.acquire(within=0.01)  # nobody gives it back
    slots.release()
    assert await slots.acquire(within=0.01)
