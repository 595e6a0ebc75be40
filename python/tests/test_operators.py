"""The Rust API's operator calls (open, set_permits, holders, release_holder, delete), and
handles that pickle as their configuration."""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle

import pytest
import redis
from conftest import Server, eventually

from redis_semaphore_rs import (
    AIOSemaphore,
    ConfigMismatchError,
    Semaphore,
    SemaphoreNotFoundError,
)


def test_open_adopts_the_stored_configuration(server: Server, key: str) -> None:
    with pytest.raises(SemaphoreNotFoundError):
        Semaphore.open(key, masters={server.url})
    Semaphore(value=3, key=key, masters={server.url}, bounded=False)
    opened = Semaphore.open(key, masters={server.url})
    assert (opened.initial_value, opened.bounded, opened.value) == (3, False, 3)

    async def main() -> None:
        aio = AIOSemaphore.open(key, masters={server.url})
        assert await aio.get_initial_value() == 3
        with pytest.raises(SemaphoreNotFoundError):
            await AIOSemaphore.open(key + "-none", masters={server.url}).get_value()

    asyncio.run(main())


def test_set_permits_holders_release_holder_delete(server: Server, key: str) -> None:
    sem = Semaphore(value=2, key=key, masters={server.url})
    sem.set_permits(4)
    assert sem.initial_value == 4 and sem.value == 4
    with pytest.raises(ConfigMismatchError):
        Semaphore(value=2, key=key, masters={server.url})
    permit = sem.try_acquire()
    assert permit is not None
    (holder,) = sem.holders()
    assert holder.id == permit.id
    assert sem.release_holder(holder.id) == 1
    assert sem.release_holder(holder.id) == 0
    assert sem.holders() == []
    assert sem.delete() is True
    assert sem.delete() is False

    async def main() -> None:
        aio = AIOSemaphore(value=4, key=key, masters={server.url})
        await aio.set_permits(5)
        assert await aio.get_initial_value() == 5
        mine = await aio.try_acquire()
        assert mine is not None
        (held,) = await aio.holders()
        assert await aio.release_holder(held.id) == 1
        assert await aio.delete() is True

    asyncio.run(main())
    eventually("the released holder's permit is lost", lambda: not permit.is_valid(), 15)


def test_handles_pickle_as_their_configuration(own_server: Server, key: str) -> None:
    own_server.client().config_set("requirepass", "s3cret")
    client = redis.Redis(host="127.0.0.1", port=own_server.port, password="s3cret", db=2)
    sem = Semaphore(value=2, key=key, masters=[client], lease=3.0)
    sem.set_permits(3)
    copy = pickle.loads(pickle.dumps(sem))
    assert copy is not sem and isinstance(copy, Semaphore)
    assert (copy.key, copy.initial_value, copy.lease) == (key, 3, 3.0)
    assert copy.acquire(blocking=False) and sem.value == 2
    copy.release()
    opened = pickle.loads(pickle.dumps(Semaphore.open(key, masters=[client])))
    assert opened.initial_value == 3
    closed = pickle.loads(pickle.dumps(Semaphore(value=0, key=key + "-0", masters=[client])))
    assert closed.locked()
    aio = pickle.loads(pickle.dumps(AIOSemaphore(value=3, key=key, masters=[client])))

    async def main() -> None:
        assert await aio.get_value() == 3

    asyncio.run(main())


def test_permits_cannot_be_pickled(server: Server, key: str) -> None:
    sem = Semaphore(value=1, key=key, masters={server.url})
    permit = sem.try_acquire()
    assert permit is not None
    with pytest.raises(TypeError, match="a Permit cannot be pickled: it is a lease"):
        pickle.dumps(permit)
    permit.release()

    async def main() -> None:
        aio = AIOSemaphore(value=1, key=key, masters={server.url})
        mine = await aio.try_acquire()
        assert mine is not None
        with pytest.raises(TypeError, match="an AIOPermit cannot be pickled"):
            pickle.dumps(mine)
        await mine.release()

    asyncio.run(main())


def test_a_handle_travels_to_a_spawned_process(server: Server, key: str) -> None:
    import workers

    sem = Semaphore(value=2, key=key, masters={server.url})
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(workers.take_and_give_back, (sem,)) == (2, 1)
    assert sem.value == 2
