"""pottery-semaphore's observable behaviour, where it costs no guarantee: its names, its
argument checks and words, value=0, its BoundedSemaphoreError fields, a repr of the value
over the initial value; and messages in Python's terms."""

from __future__ import annotations

import asyncio
import importlib.metadata
import re
import time

import pytest
from conftest import Server

import redis_semaphore_rs
from redis_semaphore_rs import (
    AIOSemaphore,
    BoundedSemaphoreError,
    ConfigMismatchError,
    OutageError,
    Semaphore,
)

# pottery_semaphore/__init__.py's __all__.
POTTERY_EXPORTS = (
    "AIORedisCounter",
    "AIORedisSimpleQueue",
    "AIOSemaphore",
    "BoundedSemaphoreError",
    "QueueEmpty",
    "Semaphore",
    "SemaphoreError",
)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_every_name_pottery_exports_is_here() -> None:
    for name in POTTERY_EXPORTS:
        assert name in redis_semaphore_rs.__all__, name
        assert getattr(redis_semaphore_rs, name) is not None
    from redis_semaphore_rs.aioprimitives import (  # noqa: F401
        AIORedisCounter,
        AIORedisSimpleQueue,
        QueueEmpty,
    )

    assert redis_semaphore_rs.__version__ == importlib.metadata.version("redis-semaphore-rs")


def test_value_zero_is_closed_for_good(server: Server, key: str) -> None:
    started = time.monotonic()
    sem = Semaphore(value=0, key=key, masters={server.url})
    assert sem.acquire(blocking=False) is False
    assert sem.locked() and sem.value == 0 and sem.initial_value == 0
    assert sem.acquire(timeout=0.2) is False
    assert time.monotonic() - started >= 0.2
    with pytest.raises(ValueError, match="could never end"):
        sem.acquire()
    with pytest.raises(BoundedSemaphoreError) as raised:
        sem.release()
    assert (raised.value.key, raised.value.current, raised.value.initial) == (key, 0, 0)
    assert "released too many times" in str(raised.value)
    assert "value=0/0" in repr(sem)
    # Nothing is stored for it, and the name is free for a semaphore of another count...
    assert server.client().keys(f"semaphore:{{{key}}}:*") == []
    assert sem.holders() == [] and sem.delete() is False
    # ...but one that exists with another count is a mismatch, as for any count.
    Semaphore(value=2, key=key + "-taken", masters={server.url})
    with pytest.raises(ConfigMismatchError) as mismatch:
        Semaphore(value=0, key=key + "-taken", masters={server.url})
    assert (mismatch.value.stored, mismatch.value.requested) == (2, 0)

    async def main() -> None:
        aio = AIOSemaphore(value=0, key=key, masters={server.url})
        assert await aio.acquire(blocking=False) is False
        assert await aio.locked() and await aio.get_initial_value() == 0
        assert await aio.acquire(timeout=0.05) is False
        with pytest.raises(ValueError, match="could never end"):
            await aio.acquire()
        with pytest.raises(BoundedSemaphoreError):
            await aio.release()

    run(main())


def test_pottery_argument_checks_and_words(server: Server, key: str) -> None:
    for cls in (Semaphore, AIOSemaphore):
        with pytest.raises(ValueError, match="Semaphore value must be non-negative"):
            cls(value=-1, key=key, masters={server.url})
    sem = Semaphore(value=1, key=key, masters={server.url})
    with pytest.raises(ValueError, match="n must be >= 1"):
        sem.release(0)

    async def main() -> None:
        aio = AIOSemaphore(value=1, key=key, masters={server.url})
        with pytest.raises(ValueError, match="n must be >= 1"):
            await aio.release(0)

    run(main())


def test_bounded_error_has_potterys_fields(server: Server, key: str) -> None:
    sem = Semaphore(value=2, key=key, masters={server.url})
    assert sem.acquire()
    sem.release()
    with pytest.raises(BoundedSemaphoreError) as raised:
        sem.release()
    error = raised.value
    assert (error.key, error.current, error.initial) == (key, 2, 2)
    assert (error.held, error.requested) == (0, 1)
    assert isinstance(error, ValueError)
    assert f"Semaphore {key!r} released too many times: current=2, initial=2" in str(error)

    async def main() -> None:
        aio = AIOSemaphore(value=2, key=key, masters={server.url})
        with pytest.raises(BoundedSemaphoreError) as raised:
            await aio.release(3)
        assert (raised.value.current, raised.value.initial, raised.value.requested) == (2, 2, 3)

    run(main())


def test_repr_shows_value_over_initial_value_and_never_hangs(own_server: Server, key: str) -> None:
    sem = Semaphore(value=3, key=key, masters={own_server.url}, lease=2, request_timeout=0.3)
    assert repr(sem) == f"<Semaphore key={key!r} value=3/3 bounded=True>"
    assert sem.acquire()
    assert "value=2/3" in repr(sem)
    own_server.pause()
    try:
        started = time.monotonic()
        shown = repr(sem)
        assert time.monotonic() - started < 1.0
        assert "value=2/3 (as last read)" in shown, shown
    finally:
        own_server.resume()

    async def main() -> None:
        aio = AIOSemaphore(value=3, key=key, masters={own_server.url}, lease=2)
        assert "value=?/3" in repr(aio)
        assert await aio.get_value() == 2
        assert f"<AIOSemaphore key={key!r} value=2/3 (as last read) bounded=True>" == repr(aio)

    run(main())
    sem.release()


def test_messages_say_seconds_keywords_and_one_address(own_server: Server, key: str) -> None:
    sem = Semaphore(
        value=1,
        key=key,
        masters={own_server.url},
        lease=2,
        request_timeout=0.2,
        outage_timeout=0.5,
    )
    holder = sem.acquire_permit()
    assert holder is not None
    own_server.pause()
    try:
        with pytest.raises(OutageError) as raised:
            sem.acquire()
        text = str(raised.value)
        assert re.search(r"gave up after \d+(\.\d+)? seconds", text), text
        assert "outage_timeout=" in text and "Builder::" not in text, text
        # The request timeout's 200ms, in seconds.
        assert "0.2 seconds" in text and not re.search(r"\d(ns|µs|ms|s)\b", text), text
        down = sem.last_error()
        assert down is not None
        assert down.count(f"127.0.0.1:{own_server.port}") == 1, down
        assert "Builder::" not in down and "0.2 seconds" in down, down
    finally:
        own_server.resume()
    holder.release()
