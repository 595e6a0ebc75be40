"""Processes: Python processes contending, a SIGKILLed holder, and a mixed fleet of Rust and
Python processes on one semaphore, watched by an independent observer."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, Observer, Server

from redis_semaphore_rs import Semaphore

HERE = Path(__file__).resolve().parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    return env


def test_processes_never_exceed_the_count(server: Server, observer: Server, key: str) -> None:
    import workers

    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        results = [
            pool.apply_async(workers.contend, (server.url, observer.url, key, 2, 6))
            for _ in range(4)
        ]
        rounds = [r.get(timeout=120) for r in results]
    assert rounds == [12] * 4
    top = Observer(observer.url, key).max()
    assert 1 <= top <= 2, top


def test_a_killed_holder_gives_its_permit_back_within_a_lease(server: Server, key: str) -> None:
    lease = 1.0
    holder = subprocess.Popen(
        [sys.executable, str(HERE / "workers.py"), server.url, key, str(lease)],
        stdout=subprocess.PIPE,
        env=_env(),
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"held"
        sem = Semaphore(value=1, key=key, masters={server.url}, lease=lease)
        assert sem.acquire(blocking=False) is False
        holder.kill()
        holder.wait(10)
        started = time.monotonic()
        assert sem.acquire(timeout=10) is True
        waited = time.monotonic() - started
        assert waited < lease + 1.5, waited
        sem.release()
    finally:
        holder.kill()


def fleet_worker() -> str:
    """The tools' fleet worker (`tools fleet-worker`), built by scripts/test-python.sh
    (FLEET_WORKER_BIN) or here."""
    given = os.environ.get("FLEET_WORKER_BIN")
    if given:
        return given
    subprocess.run(["cargo", "build", "-q", "-p", "tools"], cwd=REPO, check=True, timeout=900)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return str(target / "debug" / "tools")


def test_a_mixed_fleet_of_rust_and_python_processes(
    server: Server, observer: Server, key: str
) -> None:
    import workers

    binary = fleet_worker()
    permits, rounds = 2, 8
    rust = [
        subprocess.Popen(
            [binary, "fleet-worker", server.url, key, str(permits), str(rounds), observer.url, "3"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        results = [
            pool.apply_async(workers.contend, (server.url, observer.url, key, permits, rounds))
            for _ in range(3)
        ]
        python_rounds = [r.get(timeout=120) for r in results]
    outputs = [p.communicate(timeout=120) for p in rust]
    for p, (out, err) in zip(rust, outputs):
        assert p.returncode == 0, err.decode()
        assert out.decode().strip() == f"done {rounds}"
    assert python_rounds == [2 * rounds] * 3
    top = Observer(observer.url, key).max()
    assert 1 <= top <= permits, top
    assert Semaphore(value=permits, key=key, masters={server.url}).value == permits


@pytest.mark.parametrize("method", ["fork"])
def test_a_handle_used_after_fork_says_so(server: Server, key: str, method: str) -> None:
    sem = Semaphore(value=1, key=key, masters={server.url})
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            sem.acquire(blocking=False)
        except Exception as error:
            code = 0 if "before a fork" in str(error) else 1
        try:  # a new handle in the child works
            if code == 0 and Semaphore(value=1, key=key, masters={server.url}).value != 1:
                code = 1
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
