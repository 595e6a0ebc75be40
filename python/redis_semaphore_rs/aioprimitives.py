"""The two small asyncio Redis primitives that pottery-semaphore exports beside its
semaphores: a counter of named integers in a hash, and a FIFO queue in a stream.

Both store what pottery's ``RedisCounter`` and ``RedisSimpleQueue`` store (fields and
values JSON-encoded, a queue item under the stream field ``item``), so they share data
with pottery code. They take a ``redis.asyncio.Redis`` client (redis-py is needed for
them, not for the semaphores). The semaphores of this package do not use them.

Where pottery-semaphore's versions race, these do not: ``incr`` is one ``HINCRBY`` (the
JSON form of an integer is its decimal form), and taking an item off the queue is one
script, so two consumers never get the same item.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

__all__ = ["AIORedisCounter", "AIORedisSimpleQueue", "QueueEmpty"]


def _encode(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _decode(raw: str | bytes) -> Any:
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def _text(raw: str | bytes) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class AIORedisCounter:
    """Named integers in one Redis hash (``key``), as pottery's ``RedisCounter`` keeps them.

    >>> counter = AIORedisCounter(redis=redis.asyncio.Redis(), key="jobs")  # doctest: +SKIP
    >>> await counter.set("done", 5)  # doctest: +SKIP
    >>> await counter.incr("done")  # doctest: +SKIP
    6
    """

    def __init__(self, *, redis: Any, key: str) -> None:
        self._redis = redis
        self._key = key

    @property
    def key(self) -> str:
        """The Redis key of the hash."""
        return self._key

    async def get(self, field: str, default: int = 0) -> int:
        """The value of ``field``, or ``default`` when it has none."""
        raw = await self._redis.hget(self._key, _encode(field))
        if raw is None:
            return default
        value: int = _decode(raw)
        return value

    async def set(self, field: str, value: int) -> None:
        """Sets ``field`` to ``value``."""
        await self._redis.hset(self._key, _encode(field), _encode(value))

    async def incr(self, field: str, amount: int = 1) -> int:
        """Adds ``amount`` to ``field`` (0 when it has no value) atomically; the new value.
        A field that holds something other than an integer is a ``redis.ResponseError``."""
        value: int = await self._redis.hincrby(self._key, _encode(field), amount)
        return value

    async def decr(self, field: str, amount: int = 1) -> int:
        """Takes ``amount`` off ``field`` atomically; the new value."""
        return await self.incr(field, -amount)

    async def exists(self, field: str) -> bool:
        """Whether ``field`` has a value."""
        return bool(await self._redis.hexists(self._key, _encode(field)))


class QueueEmpty(Exception):
    """``get`` found no item: the queue was empty (``block=False``) or stayed empty for
    ``timeout`` seconds."""


# Takes the oldest entry of the stream KEYS[1]: its fields and values, flat, or nil.
_POP = """
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if #first == 0 then return false end
redis.call('XDEL', KEYS[1], first[1][1])
return first[1][2]
"""


class AIORedisSimpleQueue:
    """A FIFO queue in one Redis stream (``key``), as pottery's ``RedisSimpleQueue`` keeps
    it: ``put`` appends, ``get`` takes the oldest item.

    >>> queue = AIORedisSimpleQueue(redis=redis.asyncio.Redis(), key="tasks")  # doctest: +SKIP
    >>> await queue.put({"job": 1})  # doctest: +SKIP
    >>> await queue.get(timeout=5)  # doctest: +SKIP
    {'job': 1}
    """

    def __init__(self, *, redis: Any, key: str) -> None:
        self._redis = redis
        self._key = key
        self._pop = redis.register_script(_POP)

    @property
    def key(self) -> str:
        """The Redis key of the stream."""
        return self._key

    async def qsize(self) -> int:
        """How many items the queue holds."""
        size: int = await self._redis.xlen(self._key)
        return size

    async def empty(self) -> bool:
        """Whether the queue holds no item."""
        return await self.qsize() == 0

    async def put(self, item: Any) -> None:
        """Appends ``item`` (anything ``json.dumps`` takes)."""
        await self._redis.xadd(self._key, {"item": _encode(item)}, id="*")

    async def _take(self) -> tuple[bool, Any]:
        flat = await self._pop(keys=[self._key])
        if not flat:
            return False, None
        fields = {_text(flat[i]): flat[i + 1] for i in range(0, len(flat) - 1, 2)}
        return True, _decode(fields["item"])

    async def get(self, *, block: bool = True, timeout: float | None = None) -> Any:
        """Takes the oldest item. Without ``block`` it raises :class:`QueueEmpty` at once if
        there is none; with it, it waits for one, at most ``timeout`` seconds (``None``: no
        limit) as ``queue.Queue.get`` does (``timeout=0`` looks once)."""
        if timeout is not None and (math.isnan(timeout) or timeout < 0):
            raise ValueError("'timeout' must be a non-negative number")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            got, item = await self._take()
            if got:
                return item
            if not block:
                raise QueueEmpty(f"queue {self._key!r} is empty")
            if deadline is None:
                block_ms = 0  # XREAD's "no limit"
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise QueueEmpty(f"queue {self._key!r} stayed empty for {timeout:g} s")
                block_ms = max(1, math.ceil(left * 1000))
            # Wakes as soon as the stream holds an entry (from the start: "0-0"), then
            # loops to take it; another consumer may take it first.
            await self._redis.xread({self._key: "0-0"}, count=1, block=block_ms)
