"""Share work on the engine's runner, on a real database and the real local backend: leases taken over from a dead
server, work queued mid-flight never lost, shares brought back online after a cleanup."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from floe.config import Settings
from floe.db.base import utcnow
from floe.db.models import Share
from floe.db.session import Database
from floe.engine import share_work
from floe.engine.runner import Lease
from floe.engine.share_work.kind import CHANGES
from floe.host import mounts
from floe.runtime import Runtime
from floe.services import identity, shares
from floe.storage.local import LocalBackend

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="loop devices and mounts need root"),
    pytest.mark.timeout(120),
]


@pytest.fixture
def setup(tmp_path: Path):
    settings = Settings(home=tmp_path / "home")
    settings.home.mkdir()
    db = Database(settings.db_url)
    db.migrate()
    identity.bootstrap_admin(db, settings.admin_token_file)
    runtime = Runtime(settings=settings, db=db)
    caller = identity.authenticate(db, settings.admin_token_file.read_text().strip())
    yield runtime, caller
    LocalBackend(settings.home / "storage").purge(delete_data=True)
    mounts.unmount_tree(settings.home)
    db.dispose()


def status(runtime: Runtime, uuid: str) -> str | None:
    with runtime.db.session() as s:
        return s.scalars(select(Share.status).where(Share.uuid == uuid)).first()


def test_a_dead_servers_lease_is_taken_over(setup) -> None:
    runtime, caller = setup
    share = shares.create_share(runtime, caller, shares.ShareSpec(share_proto="LOCALFS", size=1, name="a"))
    dead = f"{socket.gethostname()}:999999:deadbeef"  # no such pid: its server is gone
    with runtime.db.session() as s:
        s.execute(update(Share).where(Share.id == share.id)
                  .values(lease_owner=dead, lease_expires_at=utcnow() + timedelta(minutes=10)))
    runner, _ = share_work.standalone(runtime)
    runner.run_until_idle(60)
    assert status(runtime, share.uuid) == "available"


def test_a_delete_queued_during_a_create_is_not_lost(setup) -> None:
    runtime, caller = setup
    share = shares.create_share(runtime, caller, shares.ShareSpec(share_proto="LOCALFS", size=1, name="b"))
    runner, work = share_work.standalone(runtime)
    assert runner.lease(work, share.id, None)
    ctx = work.context(share.id, Lease(runner.owner, work.lease_seconds))
    assert ctx is not None
    snap = ctx.snap
    backend = work.backends.get("local")
    work.run_steps(ctx, CHANGES["creating"])  # the create finishes…
    shares.delete_share(runtime, caller, share.uuid)  # …while a delete arrives
    work.finish(ctx, snap.work_seq)  # the create's work is done, not the delete's
    runner.run_until_idle(60)
    assert status(runtime, share.uuid) is None
    assert not backend.image(share.uuid).exists()


def test_reconcile_brings_shares_back_after_a_cleanup(setup) -> None:
    runtime, caller = setup
    share = shares.create_share(runtime, caller, shares.ShareSpec(share_proto="LOCALFS", size=1, name="c"))
    runner, work = share_work.standalone(runtime)
    runner.run_until_idle(60)
    backend = work.backends.get("local")
    (backend.home(share.uuid) / "kept").write_text("data")
    backend.purge()  # `floe cleanup --all`: offline, data kept
    assert not mounts.is_mount_point(backend.home(share.uuid))
    work.reconcile()
    runner.run_until_idle(60)
    assert (backend.home(share.uuid) / "kept").read_text() == "data"
    assert status(runtime, share.uuid) == "available"


def test_a_request_racing_the_workers_own_bump_is_not_lost(setup) -> None:
    """Seen in CI: after a restart the worker re-queued every share (work_seq + 1) between a
    delete request's read of the share and its write; the request wrote back stale + 1, equal to
    the worker's seq, so the worker's finish cleared needs_work and the delete never ran."""
    runtime, caller = setup
    share = shares.create_share(runtime, caller, shares.ShareSpec(share_proto="LOCALFS", size=1, name="d"))
    runner, work = share_work.standalone(runtime)
    runner.run_until_idle(60)

    with runtime.db.session() as api:
        row = shares.find_share(api, caller, share.uuid)  # the request reads the share…
        assert row.work_seq is not None
        work.reconcile()  # …the worker re-queues it in its own transaction…
        ctx = work.context(share.id, Lease(runner.owner, work.lease_seconds))
        assert ctx is not None and runner.lease(work, share.id, None)
        snap = ctx.snap
        shares._queue(row)  # …and the request queues its work
        row.status = "deleting"
    work.finish(ctx, snap.work_seq)  # the worker's pass ends
    with runtime.db.session() as s:
        assert s.scalars(select(Share.needs_work).where(Share.id == share.id)).one() is True
    runner.run_until_idle(60)
    assert status(runtime, share.uuid) is None


def test_a_shares_steps_and_its_failure_are_events(setup, monkeypatch: pytest.MonkeyPatch) -> None:
    from floe.services import events

    runtime, caller = setup
    share = shares.create_share(runtime, caller, shares.ShareSpec(share_proto="LOCALFS", size=1, name="ev"))
    runner, work = share_work.standalone(runtime)
    runner.run_until_idle(60)
    told = [e for e in events.list_events(runtime, caller, limit=1000) if e["share_id"] == share.uuid]
    assert told and {e["kind"] for e in told} == {"share.step"}
    creating = [step.name for _, step, _ in CHANGES["creating"]]
    assert [e["step"] for e in told][:len(creating)] == creating  # then the usable share's own steps
    assert all(e["project_id"] == caller.project_id and e["message"].startswith("share ev: step ") for e in told)

    # A permanent failure of an extend is an error event with the reason.
    backend = work.backends.get("local")

    def broken(*args, **kwargs):
        from floe.storage.base import StorageError

        raise StorageError("the disk is full", temporary=False)

    monkeypatch.setattr(backend, "extend", broken)
    shares.extend_share(runtime, caller, share.uuid, 2)
    runner.run_until_idle(60)
    failed = [e for e in events.list_events(runtime, caller, limit=1000) if e["kind"] == "share.failed"]
    assert len(failed) == 1 and failed[0]["level"] == "error" and "the disk is full" in failed[0]["message"]
    assert failed[0]["share_id"] == share.uuid and failed[0]["data"] == {"status": status(runtime, share.uuid)}
