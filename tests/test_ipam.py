"""Address management against a real SQLite database: no overlaps, exhaustion, release, races."""

from __future__ import annotations

import ipaddress
import threading

import pytest

from floe import ipam
from floe.db.session import Database
from floe.errors import Conflict

RANGE = ipaddress.ip_network("10.200.0.0/16")


@pytest.fixture()
def db(tmp_path):
    d = Database(f"sqlite:///{tmp_path / 'ipam.db'}")
    d.migrate()
    yield d
    d.dispose()


def all_blocks(db) -> list[ipaddress.IPv4Network]:
    from sqlalchemy import select

    from floe.db.models import AddressAllocation

    with db.session() as s:
        return [ipaddress.ip_network(c) for c in s.scalars(select(AddressAllocation.cidr))]


def test_blocks_never_overlap_and_are_aligned(db):
    with db.session() as s:
        infra = ipam.ensure_infra(s, RANGE)
        ipam.ensure_infra(s, RANGE)  # idempotent
        assert infra == ipaddress.ip_network("10.200.0.0/24")
        nets = ipam.allocate(s, RANGE, 22, "cluster-net", "c1")
        pools = ipam.allocate(s, RANGE, 23, "node-pool", "c1", count=5)
        swarm = ipam.allocate(s, RANGE, 20, "swarm-pool", "c1")
    blocks = all_blocks(db)
    assert len(blocks) == 1 + 1 + 5 + 1
    for i, a in enumerate(blocks):
        for b in blocks[i + 1 :]:
            assert not a.overlaps(b), (a, b)
    assert nets[0] == ipaddress.ip_network("10.200.4.0/22")  # after the infra /24, aligned
    assert all(p.prefixlen == 23 for p in pools)
    assert swarm[0].prefixlen == 20


def test_release_makes_room_again(db):
    with db.session() as s:
        (a,) = ipam.allocate(s, RANGE, 18, "x", "c1")
        ipam.allocate(s, RANGE, 18, "x", "c2", count=3)
        with pytest.raises(Conflict, match="exhausted"):
            ipam.allocate(s, RANGE, 18, "x", "c3")
        ipam.release_owner(s, "c1")
        (b,) = ipam.allocate(s, RANGE, 18, "x", "c3")
    assert a == b


def test_exhaustion_changes_nothing(db):
    with db.session() as s:
        ipam.allocate(s, RANGE, 17, "x", "c1")
    before = all_blocks(db)
    with pytest.raises(Conflict), db.session() as s:
        ipam.allocate(s, RANGE, 17, "x", "c2", count=2)
    assert all_blocks(db) == before


def test_concurrent_allocators_get_distinct_blocks(db):
    errors = []

    def worker(i: int) -> None:
        try:
            with db.session() as s:
                ipam.allocate(s, RANGE, 24, "node-pool", f"c{i}", count=4)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    blocks = all_blocks(db)
    assert len(blocks) == 32 and len(set(blocks)) == 32


def _reference_first_fit(taken: list[ipaddress.IPv4Network], prefixlen: int, count: int):
    """The plain definition: the lowest aligned blocks of RANGE that overlap nothing taken."""
    found = []
    for block in RANGE.subnets(new_prefix=prefixlen):
        if not any(block.overlaps(t) for t in taken):
            found.append(block)
            if len(found) == count:
                break
    return found


def test_allocator_matches_first_fit_through_allocations_and_releases(db):
    """Random allocations and releases (some in other sessions) give exactly the first-fit blocks."""
    import random

    rnd = random.Random(7)
    owners: list[str] = []
    for step in range(120):
        if owners and rnd.random() < 0.3:
            owner = owners.pop(rnd.randrange(len(owners)))
            with db.session() as s:
                ipam.release_owner(s, owner)
            continue
        prefixlen, count = rnd.choice([(20, 1), (22, 1), (23, 3), (24, 2), (26, 5)])
        expected = _reference_first_fit(all_blocks(db), prefixlen, count)
        owner = f"o{step}"
        if len(expected) < count:
            with pytest.raises(Conflict, match="exhausted"), db.session() as s:
                ipam.allocate(s, RANGE, prefixlen, "x", owner, count=count)
            continue
        with db.session() as s:
            got = ipam.allocate(s, RANGE, prefixlen, "x", owner, count=count)
        assert got == expected, (step, prefixlen, count)
        owners.append(owner)
    blocks = all_blocks(db)
    assert all(not a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1 :])


def test_rolled_back_allocation_is_forgotten(db):
    """Blocks of a transaction that rolled back are offered again (the free map is not trusted)."""
    # A write first, as the engine's sessions do (they renew their lease): on SQLite a savepoint
    # opened outside a transaction would commit on release.
    with pytest.raises(RuntimeError), db.session() as s:
        ipam.ensure_infra(s, RANGE)
        first = ipam.allocate(s, RANGE, 24, "x", "a", count=2)
        raise RuntimeError("step failed after allocating")
    assert all_blocks(db) == []
    with db.session() as s:
        ipam.ensure_infra(s, RANGE)
        assert ipam.allocate(s, RANGE, 24, "x", "b", count=2) == first
