"""AIOSemaphore: the same API as coroutines, and cancellation that leaks nothing."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio
from conftest import Server

from redis_semaphore_rs import AIOPermit, AIOSemaphore, BoundedSemaphoreError, SemaphoreError


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_pottery_api(server: Server, key: str) -> None:
    async def main() -> None:
        client = redis.asyncio.Redis(host="127.0.0.1", port=server.port)
        sem = AIOSemaphore(value=2, key=key, masters={client})
        assert await sem.get_initial_value() == 2 and await sem.get_value() == 2
        assert await sem.acquire() is True
        assert await sem.acquire(blocking=False) is True
        assert await sem.locked()
        started = time.monotonic()
        assert await sem.acquire(timeout=0.3) is False
        assert 0.3 <= time.monotonic() - started < 2.3
        await sem.release(2)
        with pytest.raises(BoundedSemaphoreError):
            await sem.release()
        async with sem as entered:
            assert entered is sem and await sem.get_value() == 1
        assert await sem.get_value() == 2
        await client.aclose()

    run(main())


def test_tasks_never_exceed_the_count(server: Server, key: str) -> None:
    async def main() -> None:
        sem = AIOSemaphore(value=3, key=key, masters={server.url})
        inside, top = 0, 0

        async def worker() -> None:
            nonlocal inside, top
            for _ in range(5):
                async with sem:
                    inside += 1
                    top = max(top, inside)
                    await asyncio.sleep(0.005)
                    inside -= 1

        await asyncio.gather(*(worker() for _ in range(8)))
        assert 2 <= top <= 3, top
        assert await sem.get_value() == 3

    run(main())


def test_permits_and_loss(own_server: Server, key: str) -> None:
    async def main() -> None:
        sem = AIOSemaphore(
            value=3, key=key, masters={own_server.url}, lease=1.5, request_timeout=0.3
        )
        two = await sem.acquire_many(2)
        assert isinstance(two, AIOPermit) and two.slots == (0, 1)
        one = await sem.try_acquire()
        assert one is not None and one.fencing_token > two.fencing_token
        assert await sem.try_acquire() is None
        assert [h.slots for h in await sem.holders()] == [(0, 1), (2,)]
        async with one:
            pass
        own_server.pause()
        try:
            await asyncio.wait_for(two.lost.wait(), 10)
            assert not two.is_valid()
        finally:
            own_server.resume()

    run(main())


def test_cancellation_leaks_nothing(server: Server, key: str) -> None:
    async def main() -> None:
        sem = AIOSemaphore(value=1, key=key, masters={server.url})
        holder = await sem.acquire_permit()
        assert holder is not None
        # Cancelled while waiting, by wait_for and by cancel().
        assert not await _times_out(sem.acquire(), 0.2)
        waiter = asyncio.ensure_future(sem.acquire())
        await asyncio.sleep(0.2)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await holder.release()
        # Cancelled right after the start, many times over: some may have been granted.
        for _ in range(20):
            task = asyncio.ensure_future(sem.acquire_permit())
            await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await sem.flush()
        await asyncio.sleep(0.2)
        await sem.flush()
        assert await sem.get_value() == 1
        assert await sem.holders() == []
        assert await sem.acquire(timeout=2) is True
        await sem.release()

    run(main())


async def _times_out(coro, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    try:
        await asyncio.wait_for(coro, timeout)
    except asyncio.TimeoutError:
        return False
    return True


def test_bad_input_is_checked_at_construction(server: Server) -> None:
    with pytest.raises(ValueError):
        AIOSemaphore(value=-1, key="x", masters={server.url})
    with pytest.raises(ValueError):
        AIOSemaphore(value=1, key="", masters={server.url})

    async def main() -> None:
        sem = AIOSemaphore(
            value=1, key="aio-bad", masters={"redis://127.0.0.1:1"}, request_timeout=0.2
        )
        with pytest.raises(SemaphoreError):
            await sem.get_value()

    run(main())
