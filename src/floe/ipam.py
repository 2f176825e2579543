"""Address management: non-overlapping subnets carved out of floe's own range.

Layout of the range (default 10.160.0.0/12):
- the first /24 is floe's infra network (the image registry lives there);
- each cluster gets a /22 management network (larger for a cluster of more than 1,021 nodes)
  and a /20 pool for its swarm's overlay networks;
- each node gets a /23 for its dockerd: the first /24 is its bridge (bip), the second its address pools.
Allocations are rows with a unique CIDR, so concurrent allocators can never hand out the same block.
"""

from __future__ import annotations

import bisect
import threading
import weakref
from dataclasses import dataclass
from ipaddress import IPv4Network

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from floe.db.models import AddressAllocation
from floe.errors import Conflict

CLUSTER_NET_PREFIX = 22
SWARM_POOL_PREFIX = 20
SWARM_POOL_SUBNET = 24
NODE_POOL_PREFIX = 23


def cluster_net_prefix(nodes: int) -> int:
    """The management network's prefix for a cluster of `nodes`: /22, or the smallest that holds them."""
    prefix = CLUSTER_NET_PREFIX
    while prefix > 8 and (1 << (32 - prefix)) - 3 < nodes:  # network, broadcast and gateway are not nodes'
        prefix -= 1
    return prefix


def max_cluster_nodes(address_range: IPv4Network) -> int:
    """The most nodes one cluster could ever have in `address_range` (all of it free).

    Each node takes a /23 for its dockerd and an address in the cluster network; the cluster a
    /20 swarm pool and its network; the range's first /24 is floe's (it spoils that /23).
    Other clusters' allocations only lower this: the plan step checks what is really free.
    """
    total = address_range.num_addresses
    fixed = (1 << (32 - NODE_POOL_PREFIX)) + (1 << (32 - SWARM_POOL_PREFIX))
    nodes = max((total - fixed - (1 << (32 - CLUSTER_NET_PREFIX))) >> (32 - NODE_POOL_PREFIX), 0)
    while nodes > 0:
        net = 1 << (32 - cluster_net_prefix(nodes))
        if fixed + net + (nodes << (32 - NODE_POOL_PREFIX)) <= total:
            return nodes
        nodes -= 1
    return 0


def free_blocks(session: Session, address_range: IPv4Network, prefixlen: int, count: int) -> int:
    """How many free /prefixlen blocks the range has, counting no further than `count` (cheap, bounded)."""
    return len(_free_blocks(_free_map(session).gaps, address_range, prefixlen, count))


def infra_subnet(address_range: IPv4Network) -> IPv4Network:
    return next(address_range.subnets(new_prefix=24))


def ensure_infra(session: Session, address_range: IPv4Network) -> IPv4Network:
    """Reserve the infra /24 (idempotent)."""
    net = infra_subnet(address_range)
    if session.scalar(select(AddressAllocation).where(AddressAllocation.cidr == str(net))) is None:
        session.add(AddressAllocation(cidr=str(net), purpose="infra", owner="floe"))
        session.flush()
    return net


def _span(cidr: str) -> tuple[int, int]:
    """First and last address of a CIDR as integers (parsing IPv4Network is too slow for thousands)."""
    addr, _, plen = cidr.partition("/")
    a, b, c, d = addr.split(".")
    start = (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)
    return start, start + (1 << (32 - int(plen or 32))) - 1


def _gaps_between(spans: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """The free stretches of the IPv4 space around sorted, non-overlapping spans."""
    gaps = []
    cursor = 0
    for start, end in spans:
        if start > cursor:
            gaps.append((cursor, start - 1))
        cursor = max(cursor, end + 1)
    if cursor <= _LAST:
        gaps.append((cursor, _LAST))
    return tuple(gaps)


_LAST = (1 << 32) - 1


@dataclass(frozen=True)
class _FreeMap:
    """What was free when the table had fingerprint `fp`: the gaps between every allocation."""

    fp: tuple[int, int, int]  # (rows, highest id, sum of ids): changes with every insert or delete
    gaps: tuple[tuple[int, int], ...]


# Per database (SQLAlchemy engine): the free map as of its fingerprint. Reading and sorting every
# allocation on each request made planning O(allocations) in Python, O(N^2) over N clusters; now a
# request costs one aggregate query, plus a rebuild only when someone else changed the table.
_free_maps: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_free_maps_lock = threading.Lock()


def _fingerprint(session: Session) -> tuple[int, int, int]:
    rows, top, total = session.execute(
        select(func.count(), func.max(AddressAllocation.id), func.sum(AddressAllocation.id))
    ).one()
    return int(rows), int(top or 0), int(total or 0)


def _free_map(session: Session) -> _FreeMap:
    """The free map for this session's view of the table, rebuilt only if the table changed."""
    fp = _fingerprint(session)
    key = session.get_bind()
    with _free_maps_lock:
        cached = _free_maps.get(key)
    if cached is not None and cached.fp == fp:
        return cached
    spans = sorted(_span(c) for c in session.scalars(select(AddressAllocation.cidr)))
    fresh = _FreeMap(fp, _gaps_between(spans))
    with _free_maps_lock:
        _free_maps[key] = fresh
    return fresh


def _free_blocks(gaps: tuple[tuple[int, int], ...], address_range: IPv4Network, prefixlen: int, count: int):
    """The first `count` aligned /prefixlen blocks of the range that lie wholly in a gap."""
    size = 1 << (32 - prefixlen)
    lo, hi = int(address_range.network_address), int(address_range.broadcast_address)
    found: list[tuple[int, int]] = []
    i = bisect.bisect_left(gaps, (lo, lo))
    if i > 0 and gaps[i - 1][1] >= lo:
        i -= 1  # the gap that holds the range's start
    while i < len(gaps) and len(found) < count:
        start, end = max(gaps[i][0], lo), min(gaps[i][1], hi)
        if start > hi:
            break
        cursor = (start + size - 1) // size * size  # aligned
        while cursor + size - 1 <= end and len(found) < count:
            found.append((cursor, cursor + size - 1))
            cursor += size
        i += 1
    return found


def _carve(gaps: tuple[tuple[int, int], ...], blocks: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """The gaps once `blocks` (sorted, each inside one gap) are taken."""
    out: list[tuple[int, int]] = []
    j = 0
    for start, end in gaps:
        cursor = start
        while j < len(blocks) and blocks[j][0] <= end:
            if blocks[j][0] > cursor:
                out.append((cursor, blocks[j][0] - 1))
            cursor = blocks[j][1] + 1
            j += 1
        if cursor <= end:
            out.append((cursor, end))
    return tuple(out)


def allocate(
    session: Session, address_range: IPv4Network, prefixlen: int, purpose: str, owner: str, count: int = 1
) -> list[IPv4Network]:
    """Allocate `count` free /prefixlen blocks for `owner` (the lowest free ones); flushes, the caller commits."""
    if count <= 0:
        return []
    # One allocator at a time per range (see _lock_range), holding the lock until it commits:
    # concurrent transactions would otherwise all pick the same lowest free block (and fail
    # after a few tries) or, with different sizes, overlapping ones.
    _lock_range(session, address_range)
    for _attempt in range(5):
        free = _free_map(session)
        spans = _free_blocks(free.gaps, address_range, prefixlen, count)
        if len(spans) < count:
            raise Conflict(
                f"address range {address_range} is exhausted: cannot allocate {count} more /{prefixlen} "
                f"for {purpose}; delete clusters or set a larger FLOE_ADDRESS_RANGE"
            )
        blocks = [IPv4Network((start, prefixlen)) for start, _ in spans]
        rows = [AddressAllocation(cidr=str(b), purpose=purpose, owner=owner) for b in blocks]
        try:
            with session.begin_nested():
                session.add_all(rows)
        except IntegrityError:  # another allocator won a block: look again, from the table
            with _free_maps_lock:
                _free_maps.pop(session.get_bind(), None)
            continue
        ids = [r.id for r in rows]
        rows_n, top, total = free.fp
        after = _FreeMap((rows_n + len(ids), max(top, *ids), total + sum(ids)), _carve(free.gaps, spans))
        with _free_maps_lock:
            # A rollback later leaves the table with another fingerprint, so this entry is never
            # trusted for a state that did not commit.
            _free_maps[session.get_bind()] = after
        return blocks
    raise Conflict(f"could not allocate addresses for {purpose}: too much contention, try again")


def _lock_range(session: Session, address_range: IPv4Network) -> None:
    """Take the range's allocator lock (see allocate) until the transaction ends.

    PostgreSQL: the infra block's row lock. SQLite ignores FOR UPDATE, and two transactions that
    both read the free map before either writes would both find the same gap (two reserves of
    overlapping blocks of different sizes were seen to win together): there a write that changes
    nothing takes the database's write lock before anything is read.
    """
    infra = str(infra_subnet(address_range))
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            update(AddressAllocation).where(AddressAllocation.cidr == infra).values(cidr=AddressAllocation.cidr)
            .execution_options(synchronize_session=False)
        )
        return
    session.execute(select(AddressAllocation.id).where(AddressAllocation.cidr == infra).with_for_update()).first()


def reserve(
    session: Session, cidr: IPv4Network | str, purpose: str, owner: str, address_range: IPv4Network | None = None
) -> IPv4Network:
    """Reserve exactly `cidr` for `owner` (a block the caller chose); flushes, the caller commits.

    Conflict if it overlaps any allocation (named in the message). With `address_range`, the
    range's allocator lock is held first, so a concurrent allocate() cannot hand out an
    overlapping block (different sizes are not caught by the unique CIDR alone).
    """
    net = IPv4Network(cidr)
    if address_range is not None:
        _lock_range(session, address_range)
    for _attempt in range(5):
        free = _free_map(session)
        start, end = int(net.network_address), int(net.broadcast_address)
        i = bisect.bisect_right(free.gaps, (start, _LAST)) - 1
        if i < 0 or free.gaps[i][1] < end:
            raise Conflict(f"{net} is not free: it overlaps {_overlapping(session, net)}")
        row = AddressAllocation(cidr=str(net), purpose=purpose, owner=owner)
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:  # the same block taken meanwhile: look again, from the table
            with _free_maps_lock:
                _free_maps.pop(session.get_bind(), None)
            continue
        rows_n, top, total = free.fp
        after = _FreeMap((rows_n + 1, max(top, row.id), total + row.id), _carve(free.gaps, [(start, end)]))
        with _free_maps_lock:
            _free_maps[session.get_bind()] = after
        return net
    raise Conflict(f"could not reserve {net} for {purpose}: too much contention, try again")


def _overlapping(session: Session, net: IPv4Network) -> str:
    """What of the table overlaps `net`, for an error message (the first few)."""
    start, end = int(net.network_address), int(net.broadcast_address)
    found = []
    for cidr, purpose in session.execute(select(AddressAllocation.cidr, AddressAllocation.purpose)):
        lo, hi = _span(cidr)
        if lo <= end and start <= hi:
            found.append(f"{cidr} ({purpose})")
    found.sort()
    more = f" and {len(found) - 3} more" if len(found) > 3 else ""
    return ", ".join(found[:3]) + more if found else "an allocation made meanwhile"


def release_owner(session: Session, owner: str) -> None:
    session.execute(delete(AddressAllocation).where(AddressAllocation.owner == owner))


def release(session: Session, cidrs: list[str]) -> None:
    if cidrs:
        session.execute(delete(AddressAllocation).where(AddressAllocation.cidr.in_(cidrs)))


def host_addresses(subnet: IPv4Network, skip: int = 1):
    """Usable addresses of a subnet after the first `skip` (the gateway)."""
    hosts = subnet.hosts()
    for _ in range(skip):
        next(hosts)
    return hosts
