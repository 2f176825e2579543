"""A database of the previous schema (0003) holding a share mid-work upgrades to the shared lease
shape (0004) and the share finishes: the lease of the server that died is taken over, the work
queued before the upgrade is done. On SQLite and (when available) PostgreSQL."""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import MetaData, Table, inspect, select

from floe.config import Settings
from floe.db.base import utcnow
from floe.db.migrate import alembic_config
from floe.db.models import Share
from floe.db.session import Database
from floe.engine import share_work
from floe.host import mounts
from floe.runtime import Runtime
from floe.storage.local import LocalBackend

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="loop devices and mounts need root"),
    pytest.mark.timeout(120),
]


def _upgrade(db: Database, revision: str) -> None:
    with db.engine.begin() as conn:
        cfg = alembic_config(db.engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def test_a_share_mid_work_in_a_0003_database_finishes_after_the_upgrade(tmp_path: Path, database_url: str) -> None:
    settings = Settings(home=tmp_path / "home", database_url=database_url)
    settings.home.mkdir()
    db = Database(settings.db_url)
    try:
        _upgrade(db, "0003")
        share_uuid = str(uuid.uuid4())
        dead = f"{socket.gethostname()}:999999:deadbeef"  # the old server, killed mid-create
        with db.engine.begin() as conn:
            meta = MetaData()
            projects = Table("projects", meta, autoload_with=conn)
            shares = Table("shares", meta, autoload_with=conn)
            assert "interruptions" not in shares.c and "step" not in shares.c
            conn.execute(projects.insert().values(id="p1", name="p1", created_at=utcnow()))
            conn.execute(shares.insert().values(
                uuid=share_uuid, project_id="p1", user_id="u", name="old", share_type="local",
                share_proto="LOCALFS", size=1, status="creating", force_delete=False, metadata={},
                export_locations=[], backend_state={}, needs_work=True, work_seq=1, attempts=0,
                lease_owner=dead, lease_expires_at=utcnow() + timedelta(minutes=10), created_at=utcnow(),
            ))
        db.migrate()
        columns = {c["name"] for c in inspect(db.engine).get_columns("shares")}
        assert {"step", "interrupted_step", "interruptions", "retry_at", "lease_owner"} <= columns
        assert "retry_at" in {c["name"] for c in inspect(db.engine).get_columns("operations")}

        runtime = Runtime(settings=settings, db=db)
        runner, _ = share_work.standalone(runtime)
        runner.run_until_idle(60)
        with db.session() as s:
            share = s.scalars(select(Share).where(Share.uuid == share_uuid)).one()
            assert (share.status, share.needs_work, share.lease_owner) == ("available", False, None)
            assert share.export_locations and share.step == "" and share.interruptions == 0
        runner.stop()
    finally:
        LocalBackend(settings.home / "storage").purge(delete_data=True)
        mounts.unmount_tree(settings.home)
        db.dispose()
