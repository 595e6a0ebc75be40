"""Worker processes of the tests (multiprocessing with the 'spawn' start method, and
plain subprocesses): a module of its own so that spawned children can import it."""

from __future__ import annotations

import sys
import time
from typing import Any


def contend(url: str, observer_url: str, name: str, permits: int, rounds: int) -> int:
    """Takes the semaphore `rounds` times from two threads, counting itself in and out on
    the observer; returns how many rounds it did."""
    import threading

    from conftest import Observer

    from redis_semaphore_rs import Semaphore

    sem = Semaphore(value=permits, key=name, masters=url.split(","))
    done = [0]
    failures: list[str] = []

    def run() -> None:
        seen = Observer(observer_url, name)
        for _ in range(rounds):
            with sem:
                now = seen.enter()
                if now > permits:
                    failures.append(f"{now} holders of {permits}")
                time.sleep(0.003)
                seen.exit()
                done[0] += 1

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise AssertionError(failures[0])
    return done[0]


def take_and_give_back(sem: Any) -> tuple[int, int]:
    """Takes a permit of a handle that came pickled; its initial value and the value then."""
    assert sem.acquire(timeout=10)
    try:
        return sem.initial_value, sem.value
    finally:
        sem.release()


def hold_forever(url: str, name: str, lease: float) -> None:
    """Takes a permit, says so on stdout, and sleeps (until SIGKILLed)."""
    from redis_semaphore_rs import Semaphore

    sem = Semaphore(value=1, key=name, masters={url}, lease=lease)
    sem.acquire()
    print("held", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    hold_forever(sys.argv[1], sys.argv[2], float(sys.argv[3]))
