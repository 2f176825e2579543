"""Queueing share work cannot be lost to a pass that ends at the wrong moment.

A request (allow, deny, extend, shrink…) reads the share, then writes `needs_work` and bumps
`work_seq`. If a worker's pass ends in between, clearing `needs_work` for the seq it started
with, the request's write must still set `needs_work` again, even though the row it read
already said True (the ORM leaves attributes it thinks unchanged out of the UPDATE). Found by
`test_share_scale.py` about once in eight runs: an access rule left queued_to_apply forever. Here
the interleaving is forced, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from floe.db.models import Share, ShareAccessRule
from floe.services import shares
from tests.engine.conftest import make_sim


def test_a_pass_ending_between_read_and_write_does_not_lose_the_request(tmp_path: Path, database_url: str) -> None:
    sim = make_sim(tmp_path / "home", database_url, share_types=("simulated",))  # no engine running
    try:
        share = shares.create_share(sim.runtime, sim.caller, shares.ShareSpec(share_proto="LOCALFS", size=1,
                                                                               name="s"))
        with sim.db.session() as s:
            row = s.scalars(select(Share).where(Share.uuid == share.uuid)).one()
            assert row.needs_work and row.work_seq == 1  # queued by the create, not yet worked
        ended = []

        def worker_pass_ends(session: Session, _ctx, _instances) -> None:
            # The request has read the share (needs_work True) and is about to write: the
            # worker's pass for seq 1 ends now, in its own transaction, as ShareWork.finish does.
            if ended or not any(isinstance(o, Share) for o in session.dirty):
                return
            with sim.db.engine.begin() as conn:
                conn.execute(update(Share).where(Share.uuid == share.uuid, Share.work_seq == 1)
                             .values(needs_work=False))
            ended.append(True)

        event.listen(Session, "before_flush", worker_pass_ends)
        try:
            shares.allow_access(sim.runtime, sim.caller, share.uuid, "floe_cluster", "c1", "rw", None)
        finally:
            event.remove(Session, "before_flush", worker_pass_ends)
        assert ended
        with sim.db.session() as s:
            row = s.scalars(select(Share).where(Share.uuid == share.uuid)).one()
            rule = s.scalars(select(ShareAccessRule).where(ShareAccessRule.share_id == row.id)).one()
            assert rule.state == "queued_to_apply"
            assert (row.needs_work, row.work_seq) == (True, 2), "the allow was lost: nothing will apply it"
    finally:
        sim.provider.close()
        sim.db.dispose()
