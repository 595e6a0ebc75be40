"""The synchronous semaphore and its permit."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Union

from . import _native
from ._common import (
    Holder,
    ProcessCheck,
    build_args,
    count,
    holders_from,
    track,
    wait,
    wait_limit,
)

Master = Union[str, Any]


class Permit:
    """``k`` permits of a semaphore held under one lease, renewed in the background while
    this object holds them.

    ``with permit:`` releases it at the end of the block; :meth:`release` is the explicit
    form (it raises :class:`PermitLostError` if the lease had passed). A permit that is
    garbage-collected unreleased is released in the background. ``lost`` is a
    ``threading.Event`` set if the lease is lost (it could not be renewed in time): stop
    touching the resource then, and fence it with :attr:`fencing_token`.
    """

    __slots__ = ("_native", "lost")

    def __init__(self, native: _native.NativePermit) -> None:
        self._native = native
        self.lost = threading.Event()
        event = self.lost

        native.on_lost(event.set)

    @property
    def fencing_token(self) -> int:
        """Rises with every grant of the semaphore: a resource that keeps the highest token
        it has seen can refuse a holder whose lease passed to someone else."""
        return self._native.fencing_token

    @property
    def slots(self) -> tuple[int, ...]:
        """The permit slots held, lowest first (one per permit)."""
        return tuple(self._native.slots)

    @property
    def permits(self) -> int:
        """How many permits this object holds: 1, or ``k`` from ``acquire_many(k)``."""
        return len(self._native.slots)

    @property
    def id(self) -> str:
        """The permit's id: 128 random bits in hex."""
        return self._native.id

    def is_valid(self) -> bool:
        """True while the lease is known to be held (False once lost or released)."""
        return self._native.is_valid()

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

    def __repr__(self) -> str:
        return (
            f"<Permit slots={list(self.slots)} fencing_token={self.fencing_token} "
            f"valid={self.is_valid()}>"
        )


class Semaphore:
    """A distributed counting semaphore on Redis or Valkey, with pottery-semaphore's API.

    At most ``value`` holders at once, across threads, processes and machines. Every permit
    is a lease on the master's own clock, renewed in the background while held: a holder
    that crashes gives its permit back within one lease (``lease``, 10 s by default).

    ``key`` names the semaphore; ``masters`` are URLs or redis-py clients (one master, or
    several independent ones: each permit slot is then a Redlock mutex held on a majority).
    No masters means ``redis://localhost:6379/0``. The permit count and ``bounded`` are
    stored with the semaphore: a handle with another one gets
    :class:`ConfigMismatchError`.

    ``acquire()`` / ``release()`` pair up by count, as in pottery-semaphore (the permits
    are held by this handle); :meth:`acquire_many`, :meth:`acquire_permit` and
    :meth:`try_acquire` return :class:`Permit` objects instead.

    Beyond pottery's parameters: ``lease`` (seconds), ``fair`` (first come, first served
    across processes), ``request_timeout`` (seconds a request to a master may take;
    default a quarter of the lease, at most 1 s) and ``outage_timeout`` (seconds a waiting
    acquire rides out masters that do not answer before :class:`OutageError`; ``None``
    waits through any outage).
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
        args = build_args(
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
        self._native: _native.NativeSemaphore = wait(_native.build(**args))
        track(self._native)

    def _sem(self) -> _native.NativeSemaphore:
        self._process.check()
        return self._native

    # pottery-semaphore's API

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Takes one permit, held by this handle until :meth:`release`. Waits for it
        (``blocking``), at most ``timeout`` seconds (``-1``: no limit); returns whether it
        got one. Ctrl-C interrupts the wait; the GIL is released while waiting."""
        limit = wait_limit(blocking, timeout)
        permit: _native.NativePermit | None = wait(
            self._sem().acquire(1, wait=bool(blocking), timeout=limit)
        )
        if permit is None:
            return False
        permit.detach()
        return True

    def release(self, n: int = 1) -> None:
        """Releases ``n`` permits that this handle holds (oldest first). More than it holds
        is :class:`BoundedSemaphoreError` on a bounded semaphore (nothing is released);
        on an unbounded one the excess adds permits."""
        wait(self._sem().release(count("n", n, 1)))

    def locked(self) -> bool:
        """True when no permit is available now."""
        return self.value == 0

    @property
    def value(self) -> int:
        """Permits available now (a snapshot)."""
        result: int = wait(self._sem().value())
        return result

    @property
    def initial_value(self) -> int:
        """The semaphore's permit count."""
        return self._native.initial_value

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
        limit = wait_limit(True, timeout)
        native = wait(self._sem().acquire(count("k", k, 1), wait=True, timeout=limit))
        return None if native is None else Permit(native)

    def acquire_permit(self, timeout: float | None = None) -> Permit | None:
        """Waits for one permit and returns it as a :class:`Permit` (``None`` after
        ``timeout`` seconds)."""
        return self.acquire_many(1, timeout)

    def try_acquire(self, k: int = 1) -> Permit | None:
        """Takes ``k`` permits if they are free now; never waits. ``None`` when they are
        not (or, unless ``raise_on_redis_errors``, when the master did not answer:
        :meth:`last_error` tells the two apart)."""
        native = wait(self._sem().acquire(count("k", k, 1), wait=False))
        return None if native is None else Permit(native)

    def holders(self) -> list[Holder]:
        """Who holds the semaphore now, lowest slot first."""
        return holders_from(wait(self._sem().holders()))

    def flush(self) -> None:
        """Waits for the releases this handle started in the background (dropped permits,
        interrupted acquires)."""
        wait(self._sem().flush())

    def delete(self) -> bool:
        """Deletes the semaphore's keys on every master; whether there was one."""
        result: bool = wait(self._sem().delete())
        return result

    def last_error(self) -> str | None:
        """The latest failure of a master that has not answered since, or None."""
        return self._native.last_error()

    @property
    def key(self) -> str:
        """The semaphore's name."""
        return self._native.name

    @property
    def lease(self) -> float:
        """The lease of every permit, in seconds."""
        return self._native.lease

    @property
    def bounded(self) -> bool:
        """Whether releasing more than the handle holds is an error (stored with the
        semaphore)."""
        return self._native.bounded

    def __repr__(self) -> str:
        return (
            f"<Semaphore key={self.key!r} initial_value={self.initial_value} "
            f"bounded={self.bounded}>"
        )
