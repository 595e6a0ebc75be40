"""What the sync and the async semaphore share: argument checks, holders, the exit flush."""

from __future__ import annotations

import atexit
import math
import os
import weakref
from dataclasses import dataclass
from typing import Any

from . import _native
from ._errors import SemaphoreError, translate
from ._masters import master_urls

MAX_COUNT = 2**32 - 1


@dataclass(frozen=True)
class HeldOn:
    """One master's view of a holder: its slots there and the lease left (seconds)."""

    master: str
    slots: tuple[int, ...]
    lease_left: float


@dataclass(frozen=True)
class Holder:
    """A permit as the masters see it: its id, the slots it holds on a majority of the
    masters (empty for a stray grant about to be given back), its fencing token, and what
    each master that answered holds for it."""

    id: str
    slots: tuple[int, ...]
    fencing_token: int
    masters: tuple[HeldOn, ...]


def holders_from(rows: list[_native.HolderRow]) -> list[Holder]:
    return [
        Holder(
            id=id_,
            slots=tuple(slots),
            fencing_token=token,
            masters=tuple(HeldOn(m, tuple(s), left) for m, s, left in masters),
        )
        for id_, slots, token, masters in rows
    ]


def count(what: str, n: object, least: int) -> int:
    """`n` as a count of at least `least`: a TypeError for a non-integer (bool included), a
    ValueError out of range."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{what} must be an int, got {type(n).__name__}")
    if n < least or n > MAX_COUNT:
        raise ValueError(f"{what} must be between {least} and {MAX_COUNT}, got {n}")
    return n


def wait_limit(blocking: bool, timeout: float | None) -> float | None:
    """threading's acquire(blocking, timeout) as seconds to wait: None without a limit."""
    if timeout is None or timeout == -1:
        return None
    if not blocking:
        raise ValueError("can't specify a timeout for a non-blocking acquire")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, got {type(timeout).__name__}")
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"timeout must be -1 (no limit) or a non-negative number, got {timeout}")
    return None if math.isinf(timeout) else float(timeout)


def seconds_or_none(what: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise TypeError(f"{what} must be a number of seconds or None, got {value!r}")
    if value < 0:
        raise ValueError(f"{what} must not be negative, got {value}")
    return float(value)


def build_args(
    *,
    value: object,
    key: object,
    masters: object,
    bounded: bool,
    raise_on_redis_errors: bool,
    lease: float,
    fair: bool,
    request_timeout: float | None,
    outage_timeout: float | None,
) -> dict[str, Any]:
    """The native build's arguments, every check that needs no server done."""
    permits = count("value", value, 0)
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, got {type(key).__name__}")
    if not key:
        raise ValueError(
            "key must name the semaphore (it is stored under semaphore:{key}:*); "
            "an empty key is refused, so that unrelated code never shares one by accident"
        )
    if permits == 0 and bounded:
        raise ValueError(
            "a bounded semaphore of value 0 could never be acquired: pass bounded=False "
            "for one that starts locked and is opened by release()"
        )
    lease_s = seconds_or_none("lease", lease)
    if lease_s is None or math.isinf(lease_s):
        raise ValueError("lease must be a finite number of seconds")
    return {
        "name": key,
        "permits": permits,
        "masters": master_urls(masters),
        "bounded": bool(bounded),
        "raise_on_redis_errors": bool(raise_on_redis_errors),
        "lease": lease_s,
        "fair": bool(fair),
        "request_timeout": seconds_or_none("request_timeout", request_timeout),
        "outage_timeout": seconds_or_none("outage_timeout", outage_timeout),
        "open": False,
    }


def wait(pending: _native.Pending) -> Any:
    """Waits for a native operation (GIL released, Ctrl-C cancels it); public errors."""
    try:
        return pending.wait()
    except _native.NativeError as error:
        raise translate(error) from None


class ProcessCheck:
    """Refuses a handle used in a child made by fork(): its connections and renewals run
    on threads the child does not have."""

    def __init__(self) -> None:
        self._pid = os.getpid()

    def check(self) -> None:
        if os.getpid() != self._pid:
            raise SemaphoreError(
                f"this semaphore was made in process {self._pid}, before a fork: make a new "
                "one in this process (or use multiprocessing's 'spawn' start method)"
            )


_live: weakref.WeakKeyDictionary[_native.NativeSemaphore, int] = weakref.WeakKeyDictionary()


def track(native: _native.NativeSemaphore) -> None:
    """Flushes the handle's background releases at interpreter exit."""
    _live[native] = os.getpid()


@atexit.register
def _flush_at_exit() -> None:
    pid = os.getpid()
    for native, owner in list(_live.items()):
        if owner != pid:
            continue
        try:
            native.flush().wait()
        except BaseException:
            pass
