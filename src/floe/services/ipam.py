"""Address management: non-overlapping subnets carved out of floe's own range.

Layout of the range (default 10.160.0.0/12):
- the first /24 is floe's infra network (the image registry lives there);
- each cluster gets a /22 management network and a /20 pool for its swarm's overlay networks;
- each node gets a /23 for its dockerd: the first /24 is its bridge (bip), the second its address pools.
Allocations are rows with a unique CIDR, so concurrent allocators can never hand out the same block.
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Network

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from floe.db.models import AddressAllocation
from floe.services.errors import Conflict

CLUSTER_NET_PREFIX = 22
SWARM_POOL_PREFIX = 20
SWARM_POOL_SUBNET = 24
NODE_POOL_PREFIX = 23


def infra_subnet(address_range: IPv4Network) -> IPv4Network:
    return next(address_range.subnets(new_prefix=24))


def ensure_infra(session: Session, address_range: IPv4Network) -> IPv4Network:
    """Reserve the infra /24 (idempotent)."""
    net = infra_subnet(address_range)
    if session.scalar(select(AddressAllocation).where(AddressAllocation.cidr == str(net))) is None:
        session.add(AddressAllocation(cidr=str(net), purpose="infra", owner="floe"))
        session.flush()
    return net


def _free_blocks(taken: list[IPv4Network], address_range: IPv4Network, prefixlen: int, count: int):
    """The first `count` aligned /prefixlen blocks of the range that overlap nothing taken."""
    taken = sorted((n for n in taken if n.overlaps(address_range)), key=lambda n: int(n.network_address))
    size = 1 << (32 - prefixlen)
    cursor = int(address_range.network_address)
    end = int(address_range.broadcast_address)
    found: list[IPv4Network] = []
    i = 0
    while len(found) < count and cursor + size - 1 <= end:
        block_end = cursor + size - 1
        # Skip past every taken block that ends before this candidate.
        while i < len(taken) and int(taken[i].broadcast_address) < cursor:
            i += 1
        if i < len(taken) and int(taken[i].network_address) <= block_end:
            nxt = int(taken[i].broadcast_address) + 1
            cursor = (nxt + size - 1) // size * size  # realign after the taken block
            continue
        found.append(IPv4Network((cursor, prefixlen)))
        cursor += size
    return found


def allocate(
    session: Session, address_range: IPv4Network, prefixlen: int, purpose: str, owner: str, count: int = 1
) -> list[IPv4Network]:
    """Allocate `count` free /prefixlen blocks for `owner`; flushes, the caller commits."""
    if count <= 0:
        return []
    for _attempt in range(5):
        taken = [ipaddress.ip_network(c) for c in session.scalars(select(AddressAllocation.cidr))]
        blocks = _free_blocks(taken, address_range, prefixlen, count)
        if len(blocks) < count:
            raise Conflict(
                f"address range {address_range} is exhausted: cannot allocate {count} more /{prefixlen} "
                f"for {purpose}; delete clusters or set a larger FLOE_ADDRESS_RANGE"
            )
        try:
            with session.begin_nested():
                session.add_all(AddressAllocation(cidr=str(b), purpose=purpose, owner=owner) for b in blocks)
            return blocks
        except IntegrityError:  # another allocator won a block: look again
            continue
    raise Conflict(f"could not allocate addresses for {purpose}: too much contention, try again")


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
