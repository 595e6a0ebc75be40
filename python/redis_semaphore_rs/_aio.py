"""The asyncio semaphore and its permit: the same operations, as coroutines.

Each operation runs on the extension's own runtime and reports to the event loop with
``call_soon_threadsafe``. Cancelling the awaiting task cancels the operation, which leaks
nothing: a grant it may have had is released in the background, and one that reached the
task just as it was cancelled is released at once. A release is never cancelled: once
begun it runs to its end, the task cancelled or not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType
from typing import Any

from . import _native
from ._base import PermitBase, SemaphoreBase
from ._common import (
    Holder,
    ProcessCheck,
    bounded_error,
    closed_mismatch,
    closed_release,
    count,
    holders_from,
    never_ends,
    shown_value,
    track,
    wait_limit,
)
from ._errors import BoundedSemaphoreError, SemaphoreError, SemaphoreNotFoundError, translate
from ._options import Options


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
        # The outcome may have reached the future already (set just before the task was
        # cancelled, it is not delivered): nobody will take it, so let it go now.
        if future.done() and not future.cancelled() and future.exception() is None:
            _discard(future.result())
        pending.cancel()  # a release goes on regardless
        raise


class AIOPermit(PermitBase):
    """A permit of an :class:`AIOSemaphore`: as :class:`Permit`, with ``lost`` an
    ``asyncio.Event`` (``await permit.lost.wait()``) and ``release()`` a coroutine;
    ``async with permit:`` releases it at the end of the block."""

    __slots__ = ("lost",)
    _called = "an AIOPermit"

    def __init__(self, native: _native.NativePermit) -> None:
        super().__init__(native)
        self.lost = asyncio.Event()
        loop = asyncio.get_running_loop()
        event = self.lost

        def on_lost() -> None:  # on a runtime thread
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop is closed
                pass

        native.on_lost(on_lost)

    async def release(self) -> None:
        """Releases the permit and waits for the masters (:class:`PermitLostError` if the
        lease had passed first). Releasing twice does nothing. Cancelling the task does not
        stop a release once begun: it ends in the background."""
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


class AIOSemaphore(SemaphoreBase):
    """The asyncio twin of :class:`Semaphore`, with the same parameters (``value=0``
    included) and the same pickling.

    Nothing is sent until the first coroutine is awaited (the handle is built then, in
    the running loop), as in pottery-semaphore; the arguments are checked at once.
    """

    def _setup(self, options: Options) -> None:
        self._options = options
        self._process = ProcessCheck()
        self._native = None
        self._built = False
        self._building: asyncio.Future[Any] | None = None
        self._last_value: int | None = None

    async def _build(self) -> _native.NativeSemaphore | None:
        options = self._options
        if options.closed:
            try:
                taken = await _run(
                    lambda done: _native.build(replace(options, open=True), callback=done)
                )
            except SemaphoreNotFoundError:
                return None
            raise closed_mismatch(taken)
        native: _native.NativeSemaphore = await _run(
            lambda done: _native.build(options, callback=done)
        )
        return native

    async def _sem(self) -> _native.NativeSemaphore | None:
        """The native handle, built on first use; None for a closed semaphore (value 0,
        bounded)."""
        self._process.check()
        if self._built:
            return self._native
        if self._building is None or (
            self._building.done()
            and (self._building.cancelled() or self._building.exception() is not None)
        ):
            self._building = asyncio.ensure_future(self._build())
        native: _native.NativeSemaphore | None = await asyncio.shield(self._building)
        if not self._built:
            self._native, self._built = native, True
            if native is not None:
                track(native)
        return self._native

    # pottery-semaphore's API

    async def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Takes one permit, held by this handle until :meth:`release`; see
        :meth:`Semaphore.acquire`. Cancelling the task leaks nothing."""
        limit = wait_limit(blocking, timeout)
        sem = await self._sem()
        if sem is None:
            if not blocking:
                return False
            if limit is None:
                raise never_ends(1)
            await asyncio.sleep(limit)
            return False
        permit: _native.NativePermit | None = await _run(
            lambda done: sem.acquire(1, wait=bool(blocking), timeout=limit, callback=done)
        )
        if permit is None:
            return False
        permit.detach()
        return True

    async def release(self, n: int = 1) -> None:
        """Releases ``n`` permits this handle holds; see :meth:`Semaphore.release`. Once
        begun it runs to its end, even if the task is cancelled meanwhile."""
        n = count("n", n, 1)
        sem = await self._sem()
        if sem is None:
            raise closed_release(self.key, n)
        try:
            await _run(lambda done: sem.release(n, callback=done))
        except BoundedSemaphoreError as error:
            try:
                current: int | None = await self.get_value()
            except SemaphoreError:
                current = None
            raise bounded_error(error, self.key, current, sem.initial_value) from None

    async def locked(self) -> bool:
        """True when no permit is available now."""
        return await self.get_value() == 0

    async def get_value(self) -> int:
        """Permits available now."""
        sem = await self._sem()
        if sem is None:
            result = 0
        else:
            result = await _run(lambda done: sem.value(callback=done))
        self._last_value = result
        return result

    async def get_initial_value(self) -> int:
        """The semaphore's permit count."""
        sem = await self._sem()
        return 0 if sem is None else sem.initial_value

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
        if sem is None:
            raise never_ends(k)
        native = await _run(lambda done: sem.acquire(k, wait=True, timeout=limit, callback=done))
        return None if native is None else AIOPermit(native)

    async def acquire_permit(self, timeout: float | None = None) -> AIOPermit | None:
        """Waits for one permit, as an :class:`AIOPermit`."""
        return await self.acquire_many(1, timeout)

    async def try_acquire(self, k: int = 1) -> AIOPermit | None:
        """Takes ``k`` permits if they are free now; never waits."""
        k = count("k", k, 1)
        sem = await self._sem()
        if sem is None:
            raise never_ends(k)
        native = await _run(lambda done: sem.acquire(k, wait=False, callback=done))
        return None if native is None else AIOPermit(native)

    # beyond pottery: operators' calls

    async def holders(self) -> list[Holder]:
        """Who holds the semaphore now, lowest slot first."""
        sem = await self._sem()
        if sem is None:
            return []
        return holders_from(await _run(lambda done: sem.holders(callback=done)))

    async def set_permits(self, n: int) -> None:
        """Changes the stored permit count for every handle; see
        :meth:`Semaphore.set_permits`."""
        n = count("n", n, 1)
        sem = await self._sem()
        if sem is None:
            raise SemaphoreError(
                "a semaphore of value 0 (bounded) is closed for good and not stored: make a "
                f"handle with AIOSemaphore(value={n}, ...) instead"
            )
        await _run(lambda done: sem.set_permits(n, callback=done))

    async def release_holder(self, id: str) -> int:
        """Releases the permit ``id``, whoever holds it; see
        :meth:`Semaphore.release_holder`."""
        sem = await self._sem()
        if sem is None:
            return 0
        freed: int = await _run(lambda done: sem.release_holder(id, callback=done))
        return freed

    async def flush(self) -> None:
        """Waits for the releases this handle started in the background."""
        sem = await self._sem()
        if sem is not None:
            await _run(lambda done: sem.flush(callback=done))

    async def delete(self) -> bool:
        """Deletes the semaphore's keys on every master; whether there was one."""
        sem = await self._sem()
        if sem is None:
            return False
        result: bool = await _run(lambda done: sem.delete(callback=done))
        return result

    def __repr__(self) -> str:
        """``<AIOSemaphore key='x' value=2/3 (as last read) bounded=True>``: a repr cannot
        await, so the value is the last one this handle read (``get_value()``,
        ``locked()``), ``?`` before any; the initial value is the stored count once the
        handle is built, the asked one before."""
        native = self._native
        initial = native.initial_value if native is not None else self._options.permits
        bounded = native.bounded if native is not None else self._options.bounded
        value = shown_value(self._last_value, initial, fresh=False)
        return f"<AIOSemaphore key={self.key!r} {value} bounded={bounded}>"
