"""The host's ARP table limit, which every network namespace shares (real /proc/sys).

A 64-node swarm is a full mesh of ~4,000 neighbour entries; with the kernel's default limit
(1,024 for the whole host) its joins failed with "no route to host" (seen in bench/lifecycle.py).
"""

from __future__ import annotations

from floe.host import neighbours


def _limits() -> tuple[int, int]:
    neigh = neighbours.NEIGH_DIR
    return int((neigh / "gc_thresh3").read_text()), int((neigh / "gc_thresh2").read_text())


def test_a_limit_large_enough_is_left_alone() -> None:
    before = _limits()
    assert neighbours.ensure_neighbour_capacity(before[0]) is None
    assert neighbours.ensure_neighbour_capacity(10) is None
    assert _limits() == before, "never lowered, never touched when large enough"


def test_a_limit_too_small_is_raised_with_headroom() -> None:
    hard, soft = _limits()
    try:
        _raise_past(hard)
    finally:  # the host keeps the limits it had before the test
        (neighbours.NEIGH_DIR / "gc_thresh2").write_text(f"{soft}\n")
        (neighbours.NEIGH_DIR / "gc_thresh3").write_text(f"{hard}\n")
    assert _limits() == (hard, soft)


def _raise_past(hard: int) -> None:
    raised = neighbours.ensure_neighbour_capacity(hard + 1)
    assert raised is not None and raised >= 2 * (hard + 1) - 1
    assert _limits()[0] == raised and _limits()[1] >= raised // 2
    assert neighbours.ensure_neighbour_capacity(hard + 1) is None, "idempotent"
