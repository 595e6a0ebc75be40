"""The synchronous semaphore and its permit."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from types import TracebackType

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
    wait,
    wait_limit,
)
from ._errors import BoundedSemaphoreError, SemaphoreError, SemaphoreNotFoundError
from ._options import Options


class Permit(PermitBase):
    """``k`` permits of a semaphore held under one lease, renewed in the background while
    this object holds them.

    ``with permit:`` releases it at the end of the block; :meth:`release` is the explicit
    form (it raises :class:`PermitLostError` if the lease had passed). A permit that is
    garbage-collected unreleased is released in the background. ``lost`` is a
    ``threading.Event`` set if the lease is lost (it could not be renewed in time): stop
    touching the resource then, and fence it with :attr:`fencing_token`.
    """

    __slots__ = ("lost",)
    _called = "a Permit"

    def __init__(self, native: _native.NativePermit) -> None:
        super().__init__(native)
        self.lost = threading.Event()
        native.on_lost(self.lost.set)

    def release(self) -> None:
        """Releases the permit and waits for the masters. Releasing twice does nothing.

        Raises :class:`PermitLostError` if the lease had passed first, and
        :class:`MasterError` if the masters cannot be reached (the lease then ends on its
        own, within one lease).
        """
        wait(self._native.release())

    def __enter__(self) -> Permit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class Semaphore(SemaphoreBase):
    """A distributed counting semaphore on Redis or Valkey, with pottery-semaphore's API.

    At most ``value`` holders at once, across threads, processes and machines. Every permit
    is a lease on the master's own clock, renewed in the background while held: a holder
    that crashes gives its permit back within one lease (``lease``, 10 s by default).

    ``key`` names the semaphore; ``masters`` are URLs or redis-py clients (one master, or
    several independent ones: each permit slot is then a Redlock mutex held on a majority).
    No masters means ``redis://localhost:6379/0``. The permit count and ``bounded`` are
    stored with the semaphore: a handle with another one gets
    :class:`ConfigMismatchError` (:meth:`open` adopts what is stored).

    ``value=0`` is accepted, as ``threading.BoundedSemaphore(0)`` accepts it: bounded, such a
    semaphore is closed for good (``acquire(blocking=False)`` is False, ``locked()`` True, a
    release is :class:`BoundedSemaphoreError`, and an ``acquire()`` without a timeout is a
    ``ValueError``, since it could never end); nothing is stored for it. With
    ``bounded=False`` it starts locked and releases open it, as ``threading.Semaphore(0)``.

    ``acquire()`` / ``release()`` pair up by count, as in pottery-semaphore (the permits
    are held by this handle); :meth:`acquire_many`, :meth:`acquire_permit` and
    :meth:`try_acquire` return :class:`Permit` objects instead.

    Beyond pottery's parameters: ``lease`` (seconds), ``fair`` (first come, first served
    across processes), ``request_timeout`` (seconds a request to a master may take;
    default a quarter of the lease, at most 1 s) and ``outage_timeout`` (seconds a waiting
    acquire rides out masters that do not answer before :class:`OutageError`; ``None``
    waits through any outage).

    A handle pickles as its configuration (masters as URLs, a redis-py client's connection
    settings included, its password too): unpickled, say in a ``multiprocessing`` child, it
    connects anew. The permits it holds stay with the original.
    """

    def _setup(self, options: Options) -> None:
        self._options = options
        self._process = ProcessCheck()
        self._last_value: int | None = None
        self._native = None
        if options.closed:
            try:
                taken = wait(_native.build(replace(options, open=True)))
            except SemaphoreNotFoundError:
                return
            raise closed_mismatch(taken)
        self._native = wait(_native.build(options))
        track(self._native)

    def _sem(self) -> _native.NativeSemaphore | None:
        """The native handle; None for a closed semaphore (value 0, bounded)."""
        self._process.check()
        return self._native

    # pottery-semaphore's API

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Takes one permit, held by this handle until :meth:`release`. Waits for it
        (``blocking``), at most ``timeout`` seconds (``-1``: no limit); returns whether it
        got one. Ctrl-C interrupts the wait; the GIL is released while waiting."""
        limit = wait_limit(blocking, timeout)
        sem = self._sem()
        if sem is None:
            if not blocking:
                return False
            if limit is None:
                raise never_ends(1)
            time.sleep(limit)
            return False
        permit: _native.NativePermit | None = wait(
            sem.acquire(1, wait=bool(blocking), timeout=limit)
        )
        if permit is None:
            return False
        permit.detach()
        return True

    def release(self, n: int = 1) -> None:
        """Releases ``n`` permits that this handle holds (oldest first). More than it holds
        is :class:`BoundedSemaphoreError` on a bounded semaphore (nothing is released);
        on an unbounded one the excess adds permits. Once begun, a release runs to its end
        even if Ctrl-C interrupts the wait for it."""
        n = count("n", n, 1)
        sem = self._sem()
        if sem is None:
            raise closed_release(self.key, n)
        try:
            wait(sem.release(n))
        except BoundedSemaphoreError as error:
            try:
                current: int | None = wait(sem.value())
            except SemaphoreError:
                current = None
            raise bounded_error(error, self.key, current, sem.initial_value) from None

    def locked(self) -> bool:
        """True when no permit is available now."""
        return self.value == 0

    @property
    def value(self) -> int:
        """Permits available now (a snapshot)."""
        sem = self._sem()
        if sem is None:
            return 0
        result: int = wait(sem.value())
        self._last_value = result
        return result

    @property
    def initial_value(self) -> int:
        """The semaphore's permit count."""
        return 0 if self._native is None else self._native.initial_value

    def __enter__(self) -> Semaphore:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    # beyond pottery: permit objects

    def acquire_many(self, k: int, timeout: float | None = None) -> Permit | None:
        """Waits for ``k`` permits held together under one :class:`Permit` (all or none);
        ``None`` if they did not come within ``timeout`` seconds (``None``: no limit).
        More than the permit count of a bounded semaphore is a ValueError at once."""
        k = count("k", k, 1)
        limit = wait_limit(True, timeout)
        sem = self._sem()
        if sem is None:
            raise never_ends(k)
        native = wait(sem.acquire(k, wait=True, timeout=limit))
        return None if native is None else Permit(native)

    def acquire_permit(self, timeout: float | None = None) -> Permit | None:
        """Waits for one permit and returns it as a :class:`Permit` (``None`` after
        ``timeout`` seconds)."""
        return self.acquire_many(1, timeout)

    def try_acquire(self, k: int = 1) -> Permit | None:
        """Takes ``k`` permits if they are free now; never waits. ``None`` when they are
        not (or, unless ``raise_on_redis_errors``, when the master did not answer:
        :meth:`last_error` tells the two apart)."""
        k = count("k", k, 1)
        sem = self._sem()
        if sem is None:
            raise never_ends(k)
        native = wait(sem.acquire(k, wait=False))
        return None if native is None else Permit(native)

    # beyond pottery: operators' calls

    def holders(self) -> list[Holder]:
        """Who holds the semaphore now, lowest slot first."""
        sem = self._sem()
        return [] if sem is None else holders_from(wait(sem.holders()))

    def set_permits(self, n: int) -> None:
        """Changes the stored permit count to ``n`` for every handle: handles made with the
        old count get :class:`ConfigMismatchError` at their next call, this one takes the
        new count. Lowering it takes no permit away: holders past the new count keep theirs
        until they release them."""
        n = count("n", n, 1)
        sem = self._sem()
        if sem is None:
            raise SemaphoreError(
                "a semaphore of value 0 (bounded) is closed for good and not stored: make a "
                f"handle with Semaphore(value={n}, ...) instead"
            )
        wait(sem.set_permits(n))

    def release_holder(self, id: str) -> int:
        """Releases the permit ``id`` (:attr:`Holder.id`), whoever holds it: an operator's
        fix for a holder that is stuck but still renewing. Returns the slots freed (0: no
        such permit); the holder finds its permit lost at its next renewal."""
        sem = self._sem()
        if sem is None:
            return 0
        freed: int = wait(sem.release_holder(id))
        return freed

    def flush(self) -> None:
        """Waits for the releases this handle started in the background (dropped permits,
        interrupted acquires)."""
        sem = self._sem()
        if sem is not None:
            wait(sem.flush())

    def delete(self) -> bool:
        """Deletes the semaphore's keys on every master (holders lose their permits at their
        next renewal); whether there was one."""
        sem = self._sem()
        if sem is None:
            return False
        result: bool = wait(sem.delete())
        return result

    @property
    def lease(self) -> float:
        """The lease of every permit, in seconds."""
        return self._options.lease

    @property
    def bounded(self) -> bool:
        """Whether releasing more than the handle holds is an error (stored with the
        semaphore)."""
        return True if self._native is None else self._native.bounded

    def __repr__(self) -> str:
        """``<Semaphore key='x' value=2/3 bounded=True>``: the value read now, waiting at
        most 0.25 s for it; when the masters do not answer by then, the value last read
        (marked ``(as last read)``, or ``?`` if none was), so that it never hangs nor
        raises."""
        fresh = True
        try:
            native = self._sem()
            self._last_value = 0 if native is None else wait(native.value(), REPR_WAIT)
        except Exception:
            fresh = False
        value = shown_value(self._last_value, self.initial_value, fresh)
        return f"<Semaphore key={self.key!r} {value} bounded={self.bounded}>"


# How long a repr waits for the value before it shows the last one read.
REPR_WAIT = 0.25
