"""The asyncio semaphore and its permit: the same operations, as coroutines.

Each operation runs on the extension's own runtime and reports to the event loop with
``call_soon_threadsafe``. Cancelling the awaiting task cancels the operation, which leaks
nothing: a grant it may have had is released in the background.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from . import _native
from ._common import (
    Holder,
    ProcessCheck,
    build_args,
    count,
    holders_from,
    track,
    wait_limit,
)
from ._errors import translate
from ._sync import Master


def _discard(value: object) -> None:
    if isinstance(value, _native.NativePermit):
        value.close()


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        _discard(value)
    elif ok:
        future.set_result(value)
    else:
        future.set_exception(translate(value))


async def _run(start: Callable[[_native.Callback], _native.Pending]) -> Any:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def done(ok: bool, value: Any) -> None:  # on a runtime thread
        try:
            loop.call_soon_threadsafe(_settle, future, ok, value)
        except RuntimeError:  # the loop is closed: nobody will take it
            _discard(value)

    pending = start(done)
    try:
        return await future
    except asyncio.CancelledError:
        pending.cancel()
        raise


class AIOPermit:
    """A permit of an :class:`AIOSemaphore`: as :class:`Permit`, with ``lost`` an
    ``asyncio.Event`` (``await permit.lost.wait()``) and ``release()`` a coroutine;
    ``async with permit:`` releases it at the end of the block."""

    __slots__ = ("_native", "lost")

    def __init__(self, native: _native.NativePermit) -> None:
        self._native = native
        self.lost = asyncio.Event()
        loop = asyncio.get_running_loop()
        event = self.lost

        def on_lost() -> None:  # on a runtime thread
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop is closed
                pass

        native.on_lost(on_lost)

    @property
    def fencing_token(self) -> int:
        """Rises with every grant of the semaphore (see :class:`Permit`)."""
        return self._native.fencing_token

    @property
    def slots(self) -> tuple[int, ...]:
        """The permit slots held, lowest first."""
        return tuple(self._native.slots)

    @property
    def permits(self) -> int:
        """How many permits this object holds."""
        return len(self._native.slots)

    @property
    def id(self) -> str:
        """The permit's id."""
        return self._native.id

    def is_valid(self) -> bool:
        """True while the lease is known to be held."""
        return self._native.is_valid()

    async def release(self) -> None:
        """Releases the permit and waits for the masters (:class:`PermitLostError` if the
        lease had passed first). Releasing twice does nothing."""
        await _run(lambda done: self._native.release(callback=done))

    async def __aenter__(self) -> AIOPermit:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()

    def __repr__(self) -> str:
        return (
            f"<AIOPermit slots={list(self.slots)} fencing_token={self.fencing_token} "
            f"valid={self.is_valid()}>"
        )


class AIOSemaphore:
    """The asyncio twin of :class:`Semaphore`, with the same parameters.

    Nothing is sent until the first coroutine is awaited (the handle is built then, in
    the running loop), as in pottery-semaphore; the arguments are checked at once.
    """

    def __init__(
        self,
        *,
        value: int = 1,
        key: str = "",
        masters: Iterable[Master] = frozenset(),
        bounded: bool = True,
        raise_on_redis_errors: bool = False,
        lease: float = _native.DEFAULT_LEASE,
        fair: bool = True,
        request_timeout: float | None = None,
        outage_timeout: float | None = _native.DEFAULT_OUTAGE_TIMEOUT,
    ) -> None:
        self._args = build_args(
            value=value,
            key=key,
            masters=masters,
            bounded=bounded,
            raise_on_redis_errors=raise_on_redis_errors,
            lease=lease,
            fair=fair,
            request_timeout=request_timeout,
            outage_timeout=outage_timeout,
        )
        self._process = ProcessCheck()
        self._native: _native.NativeSemaphore | None = None
        self._building: asyncio.Future[Any] | None = None

    async def _sem(self) -> _native.NativeSemaphore:
        self._process.check()
        if self._native is not None:
            return self._native
        if self._building is None or (
            self._building.done()
            and (self._building.cancelled() or self._building.exception() is not None)
        ):
            args = self._args
            self._building = asyncio.ensure_future(
                _run(lambda done: _native.build(**args, callback=done))
            )
        native: _native.NativeSemaphore = await asyncio.shield(self._building)
        if self._native is None:
            self._native = native
            track(native)
        return self._native

    # pottery-semaphore's API

    async def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Takes one permit, held by this handle until :meth:`release`; see
        :meth:`Semaphore.acquire`. Cancelling the task leaks nothing."""
        limit = wait_limit(blocking, timeout)
        sem = await self._sem()
        permit: _native.NativePermit | None = await _run(
            lambda done: sem.acquire(1, wait=bool(blocking), timeout=limit, callback=done)
        )
        if permit is None:
            return False
        permit.detach()
        return True

    async def release(self, n: int = 1) -> None:
        """Releases ``n`` permits this handle holds; see :meth:`Semaphore.release`."""
        n = count("n", n, 1)
        sem = await self._sem()
        await _run(lambda done: sem.release(n, callback=done))

    async def locked(self) -> bool:
        """True when no permit is available now."""
        return await self.get_value() == 0

    async def get_value(self) -> int:
        """Permits available now."""
        sem = await self._sem()
        result: int = await _run(lambda done: sem.value(callback=done))
        return result

    async def get_initial_value(self) -> int:
        """The semaphore's permit count."""
        return (await self._sem()).initial_value

    async def __aenter__(self) -> AIOSemaphore:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()

    # beyond pottery: permit objects

    async def acquire_many(self, k: int, timeout: float | None = None) -> AIOPermit | None:
        """Waits for ``k`` permits under one :class:`AIOPermit`; ``None`` after
        ``timeout`` seconds."""
        k = count("k", k, 1)
        limit = wait_limit(True, timeout)
        sem = await self._sem()
        native = await _run(lambda done: sem.acquire(k, wait=True, timeout=limit, callback=done))
        return None if native is None else AIOPermit(native)

    async def acquire_permit(self, timeout: float | None = None) -> AIOPermit | None:
        """Waits for one permit, as an :class:`AIOPermit`."""
        return await self.acquire_many(1, timeout)

    async def try_acquire(self, k: int = 1) -> AIOPermit | None:
        """Takes ``k`` permits if they are free now; never waits."""
        k = count("k", k, 1)
        sem = await self._sem()
        native = await _run(lambda done: sem.acquire(k, wait=False, callback=done))
        return None if native is None else AIOPermit(native)

    async def holders(self) -> list[Holder]:
        """Who holds the semaphore now, lowest slot first."""
        sem = await self._sem()
        return holders_from(await _run(lambda done: sem.holders(callback=done)))

    async def flush(self) -> None:
        """Waits for the releases this handle started in the background."""
        sem = await self._sem()
        await _run(lambda done: sem.flush(callback=done))

    async def delete(self) -> bool:
        """Deletes the semaphore's keys on every master; whether there was one."""
        sem = await self._sem()
        result: bool = await _run(lambda done: sem.delete(callback=done))
        return result

    def last_error(self) -> str | None:
        """The latest failure of a master that has not answered since, or None."""
        return None if self._native is None else self._native.last_error()

    @property
    def key(self) -> str:
        """The semaphore's name."""
        name: str = self._args["name"]
        return name

    def __repr__(self) -> str:
        return f"<AIOSemaphore key={self.key!r} bounded={self._args['bounded']}>"
