"""A handle's settings: pottery-semaphore's keywords, checked once, kept as one object."""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import _native
from ._common import count, seconds_or_none
from ._masters import master_urls


@dataclass(frozen=True)
class Options:
    """What a handle is made of, every check that needs no server done: the native
    ``build`` reads it whole (by attribute), and a handle pickles as it.

    ``name`` is the ``key``, ``permits`` the ``value``; masters are URLs (read from redis-py
    clients); times are seconds. ``open`` adopts the stored count and ``bounded``
    (``permits`` is then 0 and unused)."""

    name: str
    permits: int
    masters: tuple[str, ...]
    bounded: bool
    raise_on_redis_errors: bool
    lease: float
    fair: bool
    request_timeout: float | None
    outage_timeout: float | None
    open: bool

    @classmethod
    def checked(
        cls,
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
        open: bool = False,
    ) -> Options:
        """The options of pottery-semaphore's keywords (and this package's own), or the
        ``TypeError`` / ``ValueError`` that says what is wrong with them."""
        permits = 0 if open else count("value", value, 0)
        name = _checked_key(key)
        lease_s = seconds_or_none("lease", lease)
        if lease_s is None or math.isinf(lease_s):
            raise ValueError("lease must be a finite number of seconds")
        request_s = seconds_or_none("request_timeout", request_timeout)
        _check_times(lease_s, request_s)
        return cls(
            name=name,
            permits=permits,
            masters=tuple(master_urls(masters)),
            bounded=bool(bounded) or open,
            raise_on_redis_errors=bool(raise_on_redis_errors),
            lease=lease_s,
            fair=bool(fair),
            request_timeout=request_s,
            outage_timeout=seconds_or_none("outage_timeout", outage_timeout),
            open=bool(open),
        )

    @property
    def closed(self) -> bool:
        """A bounded semaphore of value 0: closed for good, as ``threading.BoundedSemaphore(0)``
        is. Nothing is stored for it (the Rust library stores no such semaphore); building
        one only checks that no semaphore of that name exists with another configuration."""
        return self.permits == 0 and self.bounded and not self.open


def _checked_key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, got {type(key).__name__}")
    if not key:
        raise ValueError(
            "key must name the semaphore (it is stored under semaphore:{key}:*); "
            "an empty key is refused, so that unrelated code never shares one by accident"
        )
    if len(key.encode()) > _native.MAX_NAME_LEN:
        raise ValueError(
            f"key is {len(key.encode())} bytes long; at most {_native.MAX_NAME_LEN} are allowed"
        )
    return key


def _check_times(lease: float, request_timeout: float | None) -> None:
    """The Rust library's checks of the lease and the request timeout, said with keyword
    names and seconds."""
    if lease < _native.MIN_LEASE:
        raise ValueError(
            f"lease={lease:g} is too short: the least is {_native.MIN_LEASE:g} seconds"
        )
    if lease > _native.MAX_LEASE:
        raise ValueError(
            f"lease={lease:g} is too long: the most is {_native.MAX_LEASE:g} seconds (a held "
            "permit is renewed, so a long lease only delays the return of a crashed "
            "holder's permits)"
        )
    if request_timeout is not None and not 0 < request_timeout <= lease / 2:
        raise ValueError(
            f"request_timeout={request_timeout:g} must be above 0 and at most half the lease "
            f"(lease={lease:g}), or one slow request could cost a permit its lease"
        )
