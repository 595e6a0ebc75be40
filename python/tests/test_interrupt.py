"""Ctrl-C interrupts a waiting acquire, and the interrupted acquire leaks nothing."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from conftest import Server, eventually

from redis_semaphore_rs import Semaphore


def test_ctrl_c_interrupts_a_wait_and_leaks_nothing(server: Server, key: str) -> None:
    sem = Semaphore(value=1, key=key, masters={server.url})
    holder = sem.acquire_permit()
    assert holder is not None
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        sem.acquire()
    assert time.monotonic() - started < 3
    holder.release()
    sem.flush()
    # The cancelled waiter neither holds a permit nor blocks the queue.
    eventually("the permit is free", lambda: sem.value == 1)
    assert sem.acquire(timeout=2) is True
    sem.release()
    assert sem.holders() == []
