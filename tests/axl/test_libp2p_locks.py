"""FastLock (``axl/_libp2p_locks.py``): mutual exclusion, FIFO hand-over, cancelled waiters
leave without the lock, and a free lock is taken without a trip through the scheduler."""

from __future__ import annotations

import pytest
import trio

from axl._libp2p_locks import FastLock


async def test_holders_never_overlap_and_waiters_get_it_in_arrival_order() -> None:
    lock = FastLock()
    inside: list[int] = []
    order: list[int] = []

    async def worker(n: int) -> None:
        async with lock:
            inside.append(n)
            assert len(inside) == 1
            order.append(n)
            await trio.sleep(0.001)  # hold it across an await
            inside.remove(n)

    async with trio.open_nursery() as nursery:
        for n in range(5):
            nursery.start_soon(worker, n)
            await trio.testing.wait_all_tasks_blocked()  # n is parked before n + 1 starts
    assert order == [0, 1, 2, 3, 4]
    assert not lock.locked()


async def test_a_cancelled_waiter_leaves_without_the_lock() -> None:
    lock = FastLock()
    got: list[str] = []

    async def waiter(name: str, task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            async with lock:
                got.append(name)

    await lock.acquire()
    async with trio.open_nursery() as nursery:
        first = await nursery.start(waiter, "first")
        await nursery.start(waiter, "second")
        await trio.testing.wait_all_tasks_blocked()
        first.cancel()
        await trio.testing.wait_all_tasks_blocked()
        lock.release()
    assert got == ["second"]
    assert not lock.locked()


async def test_a_free_lock_is_taken_without_yielding() -> None:
    lock = FastLock()
    ran: list[int] = []

    async def other() -> None:
        ran.append(1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        for _ in range(100):
            async with lock:
                pass
        assert ran == []  # no checkpoint happened: the other task never got to run
        lock.acquire_nowait()
        with pytest.raises(RuntimeError):
            lock.acquire_nowait()  # held by this very task
        lock.release()
    assert ran == [1]
    with pytest.raises(RuntimeError):
        lock.release()


async def test_re_acquiring_a_held_lock_raises_instead_of_deadlocking() -> None:
    lock = FastLock()
    async with lock:
        with pytest.raises(RuntimeError):
            await lock.acquire()
        with pytest.raises(RuntimeError):
            lock.acquire_nowait()
    assert not lock.locked()


async def test_only_the_owner_releases() -> None:
    lock = FastLock()
    await lock.acquire()

    async def other() -> None:
        with pytest.raises(RuntimeError):
            lock.release()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
    lock.release()
