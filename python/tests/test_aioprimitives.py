"""AIORedisCounter and AIORedisSimpleQueue: pottery-semaphore's async primitives, stored as
pottery stores them (JSON in a hash, JSON items in a stream), without its races."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import redis.asyncio
from conftest import Server

from redis_semaphore_rs import AIORedisCounter, AIORedisSimpleQueue, QueueEmpty


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_counter(server: Server, key: str) -> None:
    async def main() -> None:
        client = redis.asyncio.Redis(host="127.0.0.1", port=server.port)
        counter = AIORedisCounter(redis=client, key=key)
        assert counter.key == key
        assert await counter.get("permits") == 0 and await counter.get("x", 7) == 7
        assert not await counter.exists("permits")
        await counter.set("permits", 5)
        assert await counter.exists("permits") and await counter.get("permits") == 5
        assert await counter.incr("permits") == 6
        assert await counter.decr("permits", 2) == 4
        # pottery's format: JSON field names and values.
        assert await client.hget(key, json.dumps("permits")) == b"4"
        # Increments do not race: 50 at once make 50.
        await asyncio.gather(*(counter.incr("hits") for _ in range(50)))
        assert await counter.get("hits") == 50
        await client.aclose()

    run(main())


def test_queue(server: Server, key: str) -> None:
    async def main() -> None:
        client = redis.asyncio.Redis(host="127.0.0.1", port=server.port)
        queue = AIORedisSimpleQueue(redis=client, key=key)
        assert queue.key == key and await queue.empty() and await queue.qsize() == 0
        with pytest.raises(QueueEmpty):
            await queue.get(block=False)
        with pytest.raises(QueueEmpty):
            await queue.get(timeout=0)
        started = time.monotonic()
        with pytest.raises(QueueEmpty):
            await queue.get(timeout=0.2)
        assert time.monotonic() - started >= 0.2
        await queue.put({"job": 1})
        await queue.put("two")
        assert await queue.qsize() == 2
        # pottery's format: a stream entry with the JSON item under "item".
        (_, fields), _ = await client.xrange(key)
        assert fields == {b"item": b'{"job": 1}'}
        assert await queue.get() == {"job": 1}
        assert await queue.get(block=False) == "two"
        # A blocked get is woken by a put; two getters never take one item twice.
        getters = [asyncio.ensure_future(queue.get(timeout=10)) for _ in range(2)]
        await asyncio.sleep(0.1)
        await queue.put(3)
        await queue.put(4)
        assert sorted(await asyncio.gather(*getters)) == [3, 4]
        assert await queue.empty()
        with pytest.raises(ValueError, match="non-negative"):
            await queue.get(timeout=-1)
        await client.aclose()

    run(main())
