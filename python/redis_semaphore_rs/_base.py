"""What :class:`Semaphore` and :class:`AIOSemaphore`, and their permits, share: the
constructor's keywords (declared here once), ``open``, pickling, and what needs no
server."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any, ClassVar, NoReturn, TypeVar, Union

from ._common import no_pickle
from ._native import DEFAULT_LEASE, DEFAULT_OUTAGE_TIMEOUT, NativePermit, NativeSemaphore
from ._options import Options

# A master: a URL, or a redis.Redis / redis.asyncio.Redis client.
Master = Union[str, Any]

H = TypeVar("H", bound="SemaphoreBase")


class SemaphoreBase:
    """The keywords, checks, pickling and properties of both semaphores; each twin says
    how it builds its native handle (:meth:`_setup`) and how it waits."""

    _options: Options
    _native: NativeSemaphore | None

    def __init__(
        self,
        *,
        value: int = 1,
        key: str = "",
        masters: Iterable[Master] = frozenset(),
        bounded: bool = True,
        raise_on_redis_errors: bool = False,
        lease: float = DEFAULT_LEASE,
        fair: bool = True,
        request_timeout: float | None = None,
        outage_timeout: float | None = DEFAULT_OUTAGE_TIMEOUT,
    ) -> None:
        self._setup(
            Options.checked(
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
        )

    @classmethod
    def open(
        cls: type[H],
        key: str,
        *,
        masters: Iterable[Master] = frozenset(),
        raise_on_redis_errors: bool = False,
        lease: float = DEFAULT_LEASE,
        fair: bool = True,
        request_timeout: float | None = None,
        outage_timeout: float | None = DEFAULT_OUTAGE_TIMEOUT,
    ) -> H:
        """A handle on an existing semaphore, with the permit count and ``bounded`` stored
        with it: for tools and operators that do not know them.
        :class:`SemaphoreNotFoundError` if there is none (an :class:`AIOSemaphore` raises
        it at its first await, when it connects)."""
        handle = cls.__new__(cls)
        handle._setup(
            Options.checked(
                value=0,
                key=key,
                masters=masters,
                bounded=True,
                raise_on_redis_errors=raise_on_redis_errors,
                lease=lease,
                fair=fair,
                request_timeout=request_timeout,
                outage_timeout=outage_timeout,
                open=True,
            )
        )
        return handle

    def _setup(self, options: Options) -> None:
        """Takes the checked options (from the constructor, ``open`` or an unpickling)."""
        raise NotImplementedError

    def __reduce__(self) -> tuple[Any, ...]:
        options = self._options
        if self._native is not None and not options.open:
            # The count this handle uses now, set_permits included.
            options = replace(options, permits=self._native.initial_value)
        return (_restore, (type(self), options))

    def last_error(self) -> str | None:
        """The latest failure of a master that has not answered since, or None."""
        return None if self._native is None else self._native.last_error()

    @property
    def key(self) -> str:
        """The semaphore's name."""
        return self._options.name


def _restore(cls: type[H], options: Options) -> H:
    """Unpickles a handle: a new one made from the pickled options (it connects anew)."""
    handle = cls.__new__(cls)
    handle._setup(options)
    return handle


class PermitBase:
    """What :class:`Permit` and :class:`AIOPermit` share: the permit's facts."""

    __slots__ = ("_native",)

    # "a Permit", "an AIOPermit": the subject of the refusal to pickle.
    _called: ClassVar[str]

    def __init__(self, native: NativePermit) -> None:
        self._native = native

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

    def __reduce__(self) -> NoReturn:
        raise no_pickle(self._called)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} slots={list(self.slots)} "
            f"fencing_token={self.fencing_token} valid={self.is_valid()}>"
        )
