"""A distributed counting semaphore on Redis or Valkey, with pottery-semaphore's API.

The Rust library redis-semaphore underneath: leases on the master's clock renewed in the
background (a crashed holder's permit comes back within one lease), fencing tokens,
several masters (Redlock per permit slot), fair waiting. Rust and Python processes can
share one semaphore. Every name pottery-semaphore exports is here, with its behaviour
(the async counter and queue in :mod:`redis_semaphore_rs.aioprimitives`).

>>> from redis_semaphore_rs import Semaphore
>>> sem = Semaphore(value=3, key="reports", masters={"redis://127.0.0.1:6379"})  # doctest: +SKIP
>>> with sem:  # doctest: +SKIP
...     pass
"""

from . import _native
from ._aio import AIOPermit, AIOSemaphore
from ._common import HeldOn, Holder
from ._errors import (
    BoundedSemaphoreError,
    ConfigMismatchError,
    MasterError,
    OutageError,
    PermitLostError,
    SemaphoreError,
    SemaphoreNotFoundError,
    WrongTypeError,
)
from ._sync import Permit, Semaphore
from .aioprimitives import AIORedisCounter, AIORedisSimpleQueue, QueueEmpty

__version__: str = _native.VERSION

__all__ = [
    "AIOPermit",
    "AIORedisCounter",
    "AIORedisSimpleQueue",
    "AIOSemaphore",
    "BoundedSemaphoreError",
    "ConfigMismatchError",
    "HeldOn",
    "Holder",
    "MasterError",
    "OutageError",
    "Permit",
    "PermitLostError",
    "QueueEmpty",
    "Semaphore",
    "SemaphoreError",
    "SemaphoreNotFoundError",
    "WrongTypeError",
]
