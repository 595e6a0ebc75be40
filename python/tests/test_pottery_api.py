"""pottery-semaphore's API: acquire/release by count, value, locked, with, errors."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from conftest import Server

from redis_semaphore_rs import (
    BoundedSemaphoreError,
    ConfigMismatchError,
    Semaphore,
    SemaphoreError,
)


def test_acquire_release_value_locked(server: Server, key: str) -> None:
    sem = Semaphore(value=2, key=key, masters={server.client()})
    assert sem.initial_value == 2 and sem.value == 2 and not sem.locked()
    assert sem.acquire() is True
    assert sem.acquire(blocking=False) is True
    assert sem.locked() and sem.value == 0
    assert sem.acquire(blocking=False) is False
    sem.release(2)
    assert sem.value == 2
    with sem as entered:
        assert entered is sem
        assert sem.value == 1
    assert sem.value == 2


def test_timeouts_are_honoured(server: Server, key: str) -> None:
    sem = Semaphore(value=1, key=key, masters={server.url})
    assert sem.acquire()
    for timeout in (0, 0.3):
        started = time.monotonic()
        assert sem.acquire(timeout=timeout) is False
        took = time.monotonic() - started
        assert timeout <= took < timeout + 2.0, took
    # A release lets a waiter with a timeout in before its time is up.
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(sem.acquire(timeout=10)))
    waiter.start()
    time.sleep(0.2)
    sem.release()
    waiter.join(10)
    assert got == [True]
    sem.release()


def test_bounded_release_raises_and_unbounded_adds(server: Server, key: str) -> None:
    sem = Semaphore(value=1, key=key, masters={server.url})
    with pytest.raises(BoundedSemaphoreError) as raised:
        sem.release()
    assert isinstance(raised.value, SemaphoreError) and isinstance(raised.value, ValueError)
    assert (raised.value.held, raised.value.requested) == (0, 1)
    assert sem.value == 1

    loose = Semaphore(value=1, key=key + "-u", masters={server.url}, bounded=False)
    loose.release(2)
    assert loose.value == 3 and loose.initial_value == 1


def test_value_zero_starts_locked_and_releases_open_it(server: Server, key: str) -> None:
    gate = Semaphore(value=0, key=key, masters={server.url}, bounded=False)
    assert gate.locked() and gate.value == 0
    assert gate.acquire(timeout=0.1) is False
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(gate.acquire(timeout=10)))
    waiter.start()
    time.sleep(0.2)
    Semaphore(value=0, key=key, masters={server.url}, bounded=False).release()
    waiter.join(10)
    assert got == [True]


def test_count_and_boundedness_are_stored(server: Server, key: str) -> None:
    Semaphore(value=2, key=key, masters={server.url})
    with pytest.raises(ConfigMismatchError) as raised:
        Semaphore(value=3, key=key, masters={server.url})
    assert (raised.value.stored, raised.value.requested) == (2, 3)
    # The way out is said in Python's terms, not the Rust API's.
    assert "pass value=2, bounded=True" in str(raised.value), str(raised.value)
    assert "AsyncSemaphore" not in str(raised.value)
    with pytest.raises(ConfigMismatchError):
        Semaphore(value=2, key=key, masters={server.url}, bounded=False)


def test_handles_in_threads_never_exceed_the_count(
    server: Server, observer: Server, key: str
) -> None:
    from conftest import Observer

    shared = Semaphore(value=3, key=key, masters={server.url})
    errors: list[BaseException] = []

    def worker(own_handle: bool) -> None:
        try:
            sem = Semaphore(value=3, key=key, masters={server.url}) if own_handle else shared
            seen = Observer(observer.url, key)
            for _ in range(8):
                with sem:
                    assert seen.enter() <= 3
                    time.sleep(0.003)
                    seen.exit()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i % 2 == 0,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    top = Observer(observer.url, key).max()
    assert 2 <= top <= 3, top
    assert shared.value == 3


def test_the_gil_is_released_while_waiting(server: Server, key: str) -> None:
    sem = Semaphore(value=1, key=key, masters={server.url})
    assert sem.acquire()
    counted = [0]
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            counted[0] += 1

    counter = threading.Thread(target=count)
    counter.start()
    assert sem.acquire(timeout=0.5) is False
    stop.set()
    counter.join()
    assert counted[0] > 1000, counted[0]
    sem.release()


def test_redis_py_clients_are_read(own_server: Server, key: str) -> None:
    own_server.client().config_set("requirepass", "s3cret")
    client = redis.Redis(host="127.0.0.1", port=own_server.port, password="s3cret", db=3)
    sem = Semaphore(value=1, key=key, masters=[client])
    assert sem.acquire()
    assert client.exists(f"semaphore:{{{key}}}:config", f"semaphore:{{{key}}}:slots") == 2
    sem.release()
