"""What the sync and the async semaphore share: argument checks, holders, error details,
the exit flush."""

from __future__ import annotations

import atexit
import math
import os
import weakref
from dataclasses import dataclass
from typing import Any

from . import _native
from ._errors import BoundedSemaphoreError, ConfigMismatchError, SemaphoreError, translate

MAX_COUNT = 2**32 - 1

# How long interpreter exit waits for releases in progress (each also ends within its
# request timeout).
EXIT_RELEASE_WAIT = 5.0


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
    ValueError out of range, in pottery-semaphore's words (`value must be non-negative`,
    `n must be >= 1`)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{what} must be an int, got {type(n).__name__}")
    if n < least:
        if least == 0:
            raise ValueError(f"Semaphore {what} must be non-negative, got {n}")
        raise ValueError(f"{what} must be >= {least}, got {n}")
    if n > MAX_COUNT:
        raise ValueError(f"{what} must be at most {MAX_COUNT}, got {n}")
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


def closed_mismatch(native: _native.NativeSemaphore) -> ConfigMismatchError:
    """The error of a closed handle (value 0, bounded) whose name is taken."""
    stored, bounded = native.initial_value, native.bounded
    error = ConfigMismatchError(
        f"the semaphore exists with {stored} permits (bounded={bounded}), this handle asked "
        f"for 0 (bounded=True); pass value={stored}, bounded={bounded} to use it as it is"
    )
    error.stored, error.requested = stored, 0
    error.stored_bounded, error.requested_bounded = bounded, True
    return error


def never_ends(k: int) -> ValueError:
    return ValueError(
        f"cannot acquire {k} permits of a semaphore of 0 (value=0, bounded=True: closed for "
        "good): the wait could never end"
    )


def closed_release(key: str, n: int) -> BoundedSemaphoreError:
    error = BoundedSemaphoreError(
        f"Semaphore {key!r} released too many times: current=0, initial=0 (release of {n}, "
        "but a semaphore of value 0 is closed for good: it holds nothing)"
    )
    error.held, error.requested = 0, n
    error.key, error.current, error.initial = key, 0, 0
    return error


def bounded_error(
    error: BoundedSemaphoreError, key: str, current: int | None, initial: int
) -> BoundedSemaphoreError:
    """pottery-semaphore's fields and words on the Rust library's refusal: ``key``,
    ``current`` (permits available, read after the refusal; None if that read failed) and
    ``initial``, besides ``held`` and ``requested``."""
    error.key, error.current, error.initial = key, current, initial
    error.args = (
        f"Semaphore {key!r} released too many times: current={current}, initial={initial} "
        f"(release of {error.requested}, but this handle holds {error.held})",
    )
    return error


def shown_value(value: int | None, initial: int, fresh: bool) -> str:
    """``value=2/3`` for a repr; a value not read just now says so."""
    if value is None:
        return f"value=?/{initial}"
    return f"value={value}/{initial}" + ("" if fresh else " (as last read)")


def no_pickle(what: str) -> TypeError:
    return TypeError(
        f"{what} cannot be pickled: it is a lease that this process renews and releases; "
        "pass the semaphore instead (it pickles as its configuration and reconnects) and "
        "acquire in the other process"
    )


def wait(pending: _native.Pending, timeout: float | None = None) -> Any:
    """Waits for a native operation (GIL released, Ctrl-C cancels it, except a release,
    which goes on); public errors. ``TimeoutError`` after ``timeout`` seconds, if given."""
    try:
        return pending.wait(timeout)
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
def _at_exit() -> None:
    """At interpreter exit, before it finalizes: the extension's threads stop calling into
    Python (asyncio callbacks, ``lost`` events), releases in progress get a few seconds to
    end, and each handle's background releases are waited for."""
    pid = os.getpid()
    try:
        _native.shutdown(EXIT_RELEASE_WAIT)
    except BaseException:
        pass
    for native, owner in list(_live.items()):
        if owner != pid:
            continue
        try:
            native.flush().wait()
        except BaseException:
            pass
