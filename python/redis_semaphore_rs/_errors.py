"""The exceptions of redis_semaphore_rs, and the translation of the native layer's errors."""

from __future__ import annotations

from typing import Any

from . import _native


class SemaphoreError(Exception):
    """Base class of every error of this package, as in pottery-semaphore."""


class BoundedSemaphoreError(SemaphoreError, ValueError):
    """``release(n)`` of a bounded semaphore asked for more permits than the handle holds.

    A ``ValueError`` too, as ``threading.BoundedSemaphore`` raises. ``held`` is what the
    handle held, ``requested`` what was asked; nothing was released. As in
    pottery-semaphore, ``key`` names the semaphore, ``initial`` is its permit count and
    ``current`` the permits available (read just after the refusal; ``None`` if that read
    failed).
    """

    held: int
    requested: int
    key: str
    current: int | None
    initial: int


class PermitLostError(SemaphoreError):
    """The permit's lease passed before it was released or renewed: another holder may
    have had its slot meanwhile. ``id`` is the permit's id."""

    id: str


class ConfigMismatchError(SemaphoreError):
    """The semaphore exists with another permit count (``stored``) or boundedness
    (``stored_bounded``) than this handle asked for (``requested``, ``requested_bounded``).
    Both are stored with the semaphore, so that every handle agrees on them."""

    stored: int
    requested: int
    stored_bounded: bool
    requested_bounded: bool


class SemaphoreNotFoundError(SemaphoreError):
    """No semaphore of that name exists (a handle that adopts the stored configuration)."""


class MasterError(SemaphoreError):
    """A master answered with an error, or did not answer within the request timeout; on
    several masters, too few of them answered (the message lists each one's failure)."""


class OutageError(MasterError):
    """A waiting acquire gave up: the masters had not answered for the outage timeout
    (``outage_timeout``, 30 s by default; ``None`` waits through any outage)."""


class WrongTypeError(SemaphoreError):
    """One of the semaphore's keys holds a value this library did not write. Nothing was
    changed."""


_KINDS: dict[str, type[SemaphoreError]] = {
    "bounded": BoundedSemaphoreError,
    "permit_lost": PermitLostError,
    "config_mismatch": ConfigMismatchError,
    "not_found": SemaphoreNotFoundError,
    "outage": OutageError,
    "redis": MasterError,
    "quorum": MasterError,
    "wrong_type": WrongTypeError,
}


def translate(error: BaseException) -> BaseException:
    """The public exception for an error of the native layer (others pass unchanged)."""
    if not isinstance(error, _native.NativeError):
        return error
    kind, message, details = error.args
    public = _KINDS.get(kind, SemaphoreError)(message)
    fields: dict[str, Any] = details
    for name, value in fields.items():
        setattr(public, name, value)
    return public
