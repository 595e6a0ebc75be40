"""Uncontended acquire + release, one client, timed one by one, on one redis-server in one
run: this package (pottery's API, the permit API, asyncio), the Rust library
(`tools uncontended`, its `acquire_release` case) and pottery-semaphore's algorithm.

pottery-semaphore is not on PyPI (it installs from its git repository, which this
machine cannot reach), so its algorithm is expressed here on `pottery` 3 (PyPI), with
the same primitives it composes: a Redlock around a RedisCounter of permits and a
RedisSimpleQueue of wake-up tokens; an acquire takes the lock, reads and decrements the
counter and pops a token; a release takes the lock, reads the counter and the initial
value, increments it and pushes a token. Written for this benchmark, not copied.

    tools/python-bench/run.sh          # makes target/py-bench-venv, builds, runs this
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    binary = os.environ.get("REDIS_SERVER_BIN") or shutil.which("redis-server") or "redis-server"
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            tempfile.mkdtemp(),
        ],
        stdout=subprocess.DEVNULL,
    )
    import redis

    for _ in range(500):
        try:
            redis.Redis(port=port).ping()
            break
        except redis.RedisError:
            time.sleep(0.01)
    return proc, f"redis://127.0.0.1:{port}"


def timed(op: Callable[[], None], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        op()
        out.append((time.perf_counter() - t) * 1e6)
    return out


class PotteryStyle:
    """pottery-semaphore's acquire and release, on pottery's primitives (see above)."""

    def __init__(self, client: Any, key: str, value: int) -> None:
        from pottery import RedisCounter, RedisSimpleQueue, Redlock

        self.lock = Redlock(key=f"semaphore:{key}:lock", masters={client})
        self.counter = RedisCounter(redis=client, key=f"semaphore:{key}:counter")
        self.notify = RedisSimpleQueue(redis=client, key=f"semaphore:{key}:notify")
        with self.lock:
            if "permits" not in self.counter:
                self.counter["permits"] = value
                self.counter["initial"] = value
                for _ in range(value):
                    self.notify.put("1")

    def acquire(self) -> bool:
        from pottery import QueueEmptyError

        with self.lock:
            if self.counter["permits"] > 0:
                self.counter.subtract({"permits": 1})
                try:
                    self.notify.get(block=False)
                except QueueEmptyError:
                    pass
                return True
        return False

    def release(self) -> None:
        with self.lock:
            current = self.counter["permits"]
            initial = self.counter["initial"]
            if current + 1 > initial:
                raise ValueError("released too many times")
            self.counter.update({"permits": 1})
            self.notify.put("1")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rust", default=str(REPO / "target/release/tools"))
    args = parser.parse_args()

    import redis

    from redis_semaphore_rs import AIOSemaphore, Semaphore

    proc, url = start_server()
    try:
        run_id = uuid.uuid4().hex[:8]
        client = redis.Redis.from_url(url)
        ours = Semaphore(value=3, key=f"bench-{run_id}", masters={url})
        potteryish = PotteryStyle(client, f"pottery-{run_id}", 3)
        loop = asyncio.new_event_loop()
        aio = AIOSemaphore(value=3, key=f"bench-aio-{run_id}", masters={url})

        def ours_pottery_api() -> None:
            ours.acquire()
            ours.release()

        def ours_permit() -> None:
            permit = ours.acquire_permit()
            assert permit is not None
            permit.release()

        async def aio_cycle() -> None:
            await aio.acquire()
            await aio.release()

        def ours_aio() -> None:
            loop.run_until_complete(aio_cycle())

        def pottery_algo() -> None:
            assert potteryish.acquire()
            potteryish.release()

        def ping() -> None:
            client.ping()

        cases: dict[str, Callable[[], None]] = {
            "ping (redis-py)": ping,
            "redis-semaphore-rs: acquire() + release()": ours_pottery_api,
            "redis-semaphore-rs: acquire_permit() + permit.release()": ours_permit,
            "redis-semaphore-rs: await acquire() + await release()": ours_aio,
            "pottery-semaphore's algorithm on pottery 3": pottery_algo,
        }
        samples: dict[str, list[float]] = {name: [] for name in cases}
        rust: list[dict[str, Any]] = []
        for _ in range(args.rounds):
            for name, op in cases.items():
                timed(op, 50)  # warm-up
                samples[name] += timed(op, args.cycles)
            if os.path.exists(args.rust):
                out = subprocess.run(
                    [
                        args.rust,
                        "uncontended",
                        "--url",
                        url,
                        "--json",
                        "--rounds",
                        "1",
                        "--cycles",
                        str(args.cycles),
                        "--name",
                        f"bench-rs-{run_id}",
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                rust.append(json.loads(out.stdout.strip().splitlines()[-1]))
        rows = {}
        for name, values in samples.items():
            values.sort()
            rows[name] = (statistics.median(values), values[int(len(values) * 0.99)])
        if rust:
            rows["Rust library: acquire() + permit.release().await"] = (
                statistics.median(r["acquire_release_p50_us"] for r in rust),
                statistics.median(r["acquire_release_p99_us"] for r in rust),
            )
        ours_p50 = rows["redis-semaphore-rs: acquire() + release()"][0]
        print(
            f"uncontended, one client, {args.rounds} rounds x {args.cycles} cycles, "
            f"same redis-server ({url})"
        )
        print(f"{'case':58} {'p50 us':>9} {'p99 us':>9} {'vs ours':>8}")
        for name, (p50, p99) in rows.items():
            print(f"{name:58} {p50:9.0f} {p99:9.0f} {p50 / ours_p50:7.2f}x")
        loop.close()
    finally:
        proc.kill()


if __name__ == "__main__":
    sys.exit(main())
