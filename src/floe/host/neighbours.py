"""The host's ARP (neighbour) table size, raised for big swarms."""

from __future__ import annotations

import threading
from pathlib import Path

from floe.host.errors import HostError

# The kernel's ARP table is one table for every network namespace, with one limit
# (gc_thresh3, 1024 by default): past it no new neighbour can be resolved anywhere and
# connections fail with "no route to host". A swarm is a full mesh (every node gossips with
# every other), so a cluster of N nodes needs about N² entries: 64 nodes need ~4,000.
NEIGH_DIR = Path("/proc/sys/net/ipv4/neigh/default")


_neigh_lock = threading.Lock()


def ensure_neighbour_capacity(entries: int) -> int | None:
    """Raise the host's ARP table limits so that `entries` fit (never lowers them).

    Returns the new gc_thresh3 if it was raised, None if it was already large enough.
    """
    with _neigh_lock:
        current = int((NEIGH_DIR / "gc_thresh3").read_text())
        if entries <= current:
            return None
        # Headroom (the host's own neighbours, containers): powers of two, so the value is stable.
        thresh3 = 1 << (entries * 2 - 1).bit_length()
        try:
            # gc_thresh2 is the soft limit (entries past it are reclaimed after 5 s): half the hard one.
            for name, value in (("gc_thresh3", thresh3), ("gc_thresh2", thresh3 // 2)):
                old = int((NEIGH_DIR / name).read_text())
                if value > old:
                    (NEIGH_DIR / name).write_text(f"{value}\n")
        except OSError as exc:
            raise HostError(
                f"the host's ARP table holds {current} entries and these clusters need about {entries}; "
                f"raising net.ipv4.neigh.default.gc_thresh3 failed: {exc}"
            ) from None
        return thresh3
