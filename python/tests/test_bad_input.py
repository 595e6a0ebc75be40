"""Bad input: a clear error at once, never a hang."""

from __future__ import annotations

import asyncio

import pytest
from conftest import Server

from redis_semaphore_rs import Semaphore, WrongTypeError
from redis_semaphore_rs._masters import master_url


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"value": -1}, ValueError, "Semaphore value must be non-negative"),
        ({"value": 2**32}, ValueError, "at most 4294967295"),
        ({"value": "3"}, TypeError, "int"),
        ({"value": True}, TypeError, "int"),
        ({"key": ""}, ValueError, "name the semaphore"),
        ({"key": 7}, TypeError, "str"),
        ({"masters": [object()]}, TypeError, "cannot read a master"),
        ({"masters": 42}, TypeError, "iterable"),
        ({"masters": ["http://x"]}, ValueError, "master #1"),
        ({"lease": 0.001}, ValueError, r"^lease=0.001 is too short: the least is 0.01 seconds$"),
        ({"lease": 10**6}, ValueError, r"^lease=1e\+06 is too long: the most is 86400 seconds"),
        ({"lease": float("inf")}, ValueError, "finite"),
        ({"request_timeout": -1}, ValueError, "negative"),
        (
            {"lease": 1, "request_timeout": 0.6},
            ValueError,
            r"request_timeout=0.6 must be .* \(lease=1\)",
        ),
        ({"key": "k" * 1025}, ValueError, "at most 1024"),
    ],
)
def test_construction(server: Server, kwargs: dict[str, object], error: type, match: str) -> None:
    args: dict[str, object] = {"value": 1, "key": "bad", "masters": {server.url}}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        Semaphore(**args)  # type: ignore[arg-type]


def test_calls(server: Server, key: str) -> None:
    sem = Semaphore(value=2, key=key, masters={server.url})
    with pytest.raises(ValueError, match="non-blocking"):
        sem.acquire(blocking=False, timeout=1)
    with pytest.raises(ValueError, match="-1"):
        sem.acquire(timeout=-2)
    with pytest.raises(ValueError, match="-1"):
        sem.acquire(timeout=float("nan"))
    with pytest.raises(ValueError, match="n must be >= 1"):
        sem.release(0)
    with pytest.raises(TypeError):
        sem.release(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be >= 1"):
        sem.acquire_many(0)
    with pytest.raises(ValueError, match="could never end"):
        sem.try_acquire(3)


def test_a_key_of_another_type_is_left_alone(server: Server, key: str) -> None:
    server.client().set(f"semaphore:{{{key}}}:config", "mine")
    with pytest.raises(WrongTypeError):
        Semaphore(value=1, key=key, masters={server.url})
    assert server.client().get(f"semaphore:{{{key}}}:config") == b"mine"


def test_an_unreachable_master_is_an_error_not_a_hang(key: str) -> None:
    from conftest import free_port

    from redis_semaphore_rs import MasterError

    with pytest.raises(MasterError):
        Semaphore(
            value=1, key=key, masters={f"redis://127.0.0.1:{free_port()}"}, request_timeout=0.2
        )


class _Pool:
    def __init__(self, connection_class: type, **kwargs: object) -> None:
        self.connection_class = connection_class
        self.connection_kwargs = kwargs


class _Client:
    def __init__(self, pool: object) -> None:
        self.connection_pool = pool


def test_master_urls_from_clients() -> None:
    import redis
    import redis.asyncio

    assert master_url(redis.Redis(host="h", port=7, db=2)) == "redis://h:7/2"
    assert (
        master_url(redis.Redis(host="h", username="u", password="p@ss:w"))
        == "redis://u:p%40ss%3Aw@h:6379/0"
    )
    assert master_url(redis.Redis(password="pw")) == "redis://:pw@localhost:6379/0"
    assert master_url(redis.Redis(unix_socket_path="/tmp/r.sock", db=1)) == (
        "unix:///tmp/r.sock?db=1"
    )
    assert master_url(redis.Redis(host="h", ssl=True)) == "rediss://h:6379/0"
    assert master_url(redis.Redis(host="h", ssl=True, ssl_cert_reqs="none")) == (
        "rediss://h:6379/0#insecure"
    )

    async def aio_url(**kwargs: object) -> str:
        # Made in a running loop: on 3.9 redis.asyncio's pool binds the current loop.
        return master_url(redis.asyncio.Redis(**kwargs))  # type: ignore[arg-type]

    assert asyncio.run(aio_url(host="::1", port=9)) == "redis://[::1]:9/0"
    assert asyncio.run(aio_url(host="h", ssl=True)) == "rediss://h:6379/0"
    with pytest.raises(TypeError, match="private CA"):
        master_url(redis.Redis(host="h", ssl=True, ssl_ca_certs="/ca.pem"))

    class SentinelManagedConnection:
        pass

    with pytest.raises(TypeError, match="Sentinel"):
        master_url(_Client(_Pool(SentinelManagedConnection, host="h")))
    with pytest.raises(TypeError, match="cannot read"):
        master_url(_Client(object()))


def test_acquire_many_past_the_cap_is_refused_at_once(server: Server, key: str) -> None:
    # One call may ask for at most 1,000 permits (the Rust library's MAX_ACQUIRE_MANY): a
    # larger ask would be one script that stalls the whole server.
    sem = Semaphore(value=10_000, key=key, masters={server.url})
    with pytest.raises(ValueError, match="the most is 1000"):
        sem.acquire_many(1001)
    with pytest.raises(ValueError, match="the most is 1000"):
        sem.try_acquire(1_000_000)
    permit = sem.acquire_many(1000, timeout=5)
    assert permit is not None and permit.permits == 1000
    permit.release()
