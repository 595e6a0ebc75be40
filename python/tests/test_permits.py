"""Beyond pottery: permit objects, fencing, loss, holders, several masters."""

from __future__ import annotations

import time

import pytest
from conftest import Server, eventually

from redis_semaphore_rs import Permit, PermitLostError, Semaphore


def test_permit_objects(server: Server, key: str) -> None:
    sem = Semaphore(value=3, key=key, masters={server.url})
    one = sem.acquire_permit()
    assert isinstance(one, Permit) and one.slots == (0,) and one.permits == 1
    two = sem.acquire_many(2)
    assert two is not None and two.slots == (1, 2) and two.permits == 2
    assert two.fencing_token > one.fencing_token
    assert one.is_valid() and not one.lost.is_set()
    assert sem.try_acquire() is None
    assert sem.acquire_many(1, timeout=0.1) is None
    holders = sem.holders()
    assert [h.slots for h in holders] == [(0,), (1, 2)]
    assert holders[0].id == one.id and holders[0].fencing_token == one.fencing_token
    assert holders[0].masters[0].lease_left > 0
    one.release()
    one.release()  # a second release does nothing
    assert not one.is_valid() and not one.lost.is_set()
    with two:
        pass
    assert sem.value == 3
    with pytest.raises(ValueError, match="could never end"):
        sem.acquire_many(4)


def test_a_dropped_permit_is_released_in_the_background(server: Server, key: str) -> None:
    sem = Semaphore(value=1, key=key, masters={server.url})
    permit = sem.try_acquire()
    assert permit is not None
    del permit
    sem.flush()
    assert sem.value == 1


def test_leases_are_renewed_and_loss_is_seen(own_server: Server, key: str) -> None:
    sem = Semaphore(value=1, key=key, masters={own_server.url}, lease=1.5, request_timeout=0.3)
    permit = sem.acquire_permit()
    assert permit is not None
    time.sleep(3.5)  # more than two leases: renewed meanwhile
    assert permit.is_valid() and sem.value == 0
    own_server.pause()
    try:
        assert permit.lost.wait(10), "the loss is signalled"
        assert not permit.is_valid()
    finally:
        own_server.resume()
    with pytest.raises(PermitLostError):
        permit.release()


def test_several_masters(key: str) -> None:
    servers = [Server() for _ in range(3)]
    try:
        sem = Semaphore(value=2, key=key, masters=[s.url for s in servers], request_timeout=0.2)
        permit = sem.acquire_permit()
        assert permit is not None
        eventually("the grant is on every master", lambda: len(sem.holders()[0].masters) == 3)
        servers[0].stop()  # a minority lost: still a semaphore
        other = sem.acquire_permit(timeout=5)
        assert other is not None and other.slots != permit.slots
        assert sem.try_acquire() is None
        other.release()
        permit.release()
    finally:
        for s in servers:
            s.stop()
