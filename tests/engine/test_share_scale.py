"""The share pipeline at scale, without root: hundreds of shares through every operation on the
`simulated` share backend (a directory per share, no mounts), on SQLite and PostgreSQL.

The backend is floe's own test double for storage, as the simulated provider is for nodes;
the engine (its runner, leases and share steps), the services and the database are the real
ones, so what this proves is the share engine's behaviour under many shares at once:
nothing lost, nothing stuck, every lease let go, and nothing of a deleted share left behind.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from floe.db.models import Share, ShareAccessRule
from floe.engine import share_work
from floe.services import shares
from floe.storage.base import GIB
from tests.engine.conftest import make_sim

COUNT = 200

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def sim(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FLOE_SHARE_QUOTA_SHARES", str(2 * COUNT))
    monkeypatch.setenv("FLOE_SHARE_QUOTA_GB", str(10 * COUNT))
    s = make_sim(tmp_path / "home", database_url, share_types=("simulated",))
    share_work.register(s.runtime.engine.runner, s.runtime)  # type: ignore[union-attr]
    s.runtime.engine.start()  # type: ignore[union-attr]
    yield s
    s.runtime.engine.stop(wait=True)  # type: ignore[union-attr]
    s.provider.close()
    s.db.dispose()


def wait_until(sim, done, what: str, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with sim.db.session() as s:
            if done(s):
                return
        time.sleep(0.1)
    with sim.db.session() as s:
        seen = dict(s.execute(select(Share.status, func.count()).group_by(Share.status)).all())
    raise AssertionError(f"{what}: shares by status {seen}")


def settled(s) -> bool:
    """No share waits for work and none is leased."""
    return s.scalar(select(func.count()).select_from(Share).where(
        (Share.needs_work.is_(True)) | (Share.lease_owner.is_not(None)))) == 0


def by_status(s) -> dict[str, int]:
    return dict(s.execute(select(Share.status, func.count()).group_by(Share.status)).all())


def test_hundreds_of_shares_through_every_operation(sim) -> None:
    backend_root = sim.runtime.settings.home / "storage" / "simulated"
    ids = [shares.create_share(sim.runtime, sim.caller, shares.ShareSpec(
        share_proto="LOCALFS", size=1, name=f"s{i:03d}")).uuid for i in range(COUNT)]
    wait_until(sim, lambda s: settled(s) and by_status(s) == {"available": COUNT}, "create")
    assert sorted(p.name for p in backend_root.iterdir()) == sorted(ids)
    page = shares.list_shares(sim.runtime, sim.caller, share_type="simulated", status="available", limit=10, offset=5)
    assert [s.name for s in page] == [f"s{i:03d}" for i in range(5, 15)]
    assert shares.usage(sim.db, sim.caller) == (COUNT, COUNT)

    # Half grow to 3 GiB, half grow to 2 and shrink back to 1, each with an access rule queued
    # in the same breath: every request is applied, none lost to another one's pass.
    for i, ident in enumerate(ids):
        shares.extend_share(sim.runtime, sim.caller, ident, 3 if i % 2 else 2)
        shares.allow_access(sim.runtime, sim.caller, ident, "floe_cluster", f"c{i % 8}", "rw", None)
    wait_until(sim, lambda s: settled(s) and by_status(s) == {"available": COUNT}, "extend")
    assert shares.usage(sim.db, sim.caller) == (COUNT // 2 * 3 + COUNT // 2 * 2, COUNT)
    for ident in ids[::2]:
        shares.shrink_share(sim.runtime, sim.caller, ident, 1)
    # And a second rule on each, withdrawn again from every other share.
    rules = [shares.allow_access(sim.runtime, sim.caller, ident, "floe_cluster", "extra", "ro", None).uuid
             for ident in ids]
    for ident, rule in list(zip(ids, rules, strict=True))[1::2]:
        shares.deny_access(sim.runtime, sim.caller, ident, rule)
    wait_until(sim, lambda s: settled(s) and by_status(s) == {"available": COUNT}, "shrink and rules")

    with sim.db.session() as s:
        sizes = dict(s.execute(select(Share.uuid, Share.size)).all())
        rule_states = s.execute(select(ShareAccessRule.state, func.count()).group_by(ShareAccessRule.state)).all()
    assert sizes == {ident: 3 if i % 2 else 1 for i, ident in enumerate(ids)}
    assert dict(rule_states) == {"active": COUNT + COUNT // 2}
    for i, ident in enumerate(ids):
        state = json.loads((backend_root / ident / "state.json").read_text())
        assert state["size_bytes"] == sizes[ident] * GIB
        extra = {} if i % 2 else {"floe_cluster:extra": "ro"}
        assert state["rules"] == {f"floe_cluster:c{i % 8}": "rw", **extra}

    for ident in ids:
        shares.delete_share(sim.runtime, sim.caller, ident)
    wait_until(sim, lambda s: s.scalar(select(func.count()).select_from(Share)) == 0, "delete")
    with sim.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ShareAccessRule)) == 0
    assert list(backend_root.iterdir()) == []


def test_a_share_type_this_server_does_not_offer_is_refused(sim) -> None:
    """Offered types are what FLOE_SHARE_TYPES names: here only `simulated` (and it is the default)."""
    assert [t.name for t in shares.share_types(sim.runtime)] == ["simulated"]
    share = shares.create_share(sim.runtime, sim.caller, shares.ShareSpec(share_proto="LOCALFS", size=1))
    assert share.share_type == "simulated"
    with pytest.raises(shares.InvalidInput, match="local"):
        shares.create_share(sim.runtime, sim.caller, shares.ShareSpec(share_proto="LOCALFS", size=1,
                                                                       share_type="local"))
