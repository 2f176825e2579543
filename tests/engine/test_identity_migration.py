"""A database from before identity (0004: projects and API tokens, the bootstrap admin token)
upgrades, and the server's bootstrap makes its admin a Keystone user: the old admin token and
a project's old token keep working with the roles they had, and the admin can sign in with a
password. On SQLite and (when available) PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import JSON, Boolean, DateTime, Integer, MetaData, Table, func, select

from floe.db.base import utcnow
from floe.db.migrate import alembic_config
from floe.db.models import Project, RoleAssignment, User
from floe.db.session import Database
from floe.services import identity
from floe.services.identity import Scope


def _upgrade(db: Database, revision: str) -> None:
    with db.engine.begin() as conn:
        cfg = alembic_config(db.engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def _insert(conn, table: Table, **values) -> int:
    """Insert a row, filling every other NOT NULL column without a default by its type."""
    for col in table.c:
        if col.name in values or col.nullable or col.server_default is not None or col.autoincrement is True:
            continue
        kind = col.type
        values[col.name] = (utcnow() if isinstance(kind, DateTime) else False if isinstance(kind, Boolean)
                            else 1 if isinstance(kind, Integer) else {} if isinstance(kind, JSON) else "x")
    return conn.execute(table.insert().values(**values)).inserted_primary_key[0]


def test_a_0004_database_keeps_its_tokens_and_gets_an_admin_user(tmp_path: Path, database_url: str,
                                                                   monkeypatch) -> None:
    db = Database(database_url or f"sqlite:///{tmp_path / 'floe.db'}")
    try:
        _upgrade(db, "0004")
        admin_secret, team_secret = "floe_old-admin-secret", "floe_old-team-secret"
        with db.engine.begin() as conn:
            meta = MetaData()
            projects = Table("projects", meta, autoload_with=conn)
            tokens = Table("tokens", meta, autoload_with=conn)
            assert "roles" not in tokens.c
            conn.execute(projects.insert().values(id="p-admin", name="admin", created_at=utcnow()))
            conn.execute(projects.insert().values(id="p-team", name="team", created_at=utcnow()))
            conn.execute(tokens.insert().values(
                id="t1", project_id="p-admin", token_sha256=identity.hash_token(admin_secret), user_id="admin",
                is_admin=True, description=identity.BOOTSTRAP_DESCRIPTION, created_at=utcnow()))
            conn.execute(tokens.insert().values(
                id="t2", project_id="p-team", token_sha256=identity.hash_token(team_secret), user_id="member",
                is_admin=False, description="ci", created_at=utcnow()))
            # A cluster with a node and an operation: no upgrade step may copy (drop) a parent table,
            # which would cascade-delete them or fail on the foreign key.
            _insert(conn, Table("cluster_templates", meta, autoload_with=conn), uuid="t-uuid",
                          project_id="p-team", name="tpl")
            cluster = _insert(conn, Table("clusters", meta, autoload_with=conn), uuid="c-uuid",
                              project_id="p-team", name="c", cluster_template_id="t-uuid")
            _insert(conn, Table("nodes", meta, autoload_with=conn), cluster_id=cluster, name="c-m0", role="manager")
            _insert(conn, Table("operations", meta, autoload_with=conn), cluster_id=cluster, kind="create")
        db.migrate()
        with db.engine.connect() as conn:
            for name in ("tokens", "projects", "cluster_templates", "clusters", "nodes", "operations"):
                table = Table(name, MetaData(), autoload_with=conn)
                assert conn.execute(select(func.count()).select_from(table)).scalar() == (
                    2 if name in ("tokens", "projects") else 1), name
            # 0008: the cluster has its two default nodegroups, and its node is in default-master.
            groups = Table("nodegroups", MetaData(), autoload_with=conn)
            rows = conn.execute(select(groups.c.id, groups.c.name, groups.c.is_default, groups.c.labels)).all()
            assert sorted((r.name, r.is_default) for r in rows) == [("default-master", True), ("default-worker", True)]
            nodes = Table("nodes", MetaData(), autoload_with=conn)
            master = next(r.id for r in rows if r.name == "default-master")
            assert conn.execute(select(nodes.c.nodegroup_id)).scalar() == master
            flavors = Table("flavors", MetaData(), autoload_with=conn)
            assert conn.execute(select(func.count()).select_from(flavors)).scalar() == 5
        token_file = tmp_path / "admin-token"
        token_file.write_text(admin_secret + "\n")
        monkeypatch.setenv("FLOE_ADMIN_PASSWORD", "bootstrap-pw")
        assert identity.bootstrap_admin(db, token_file) is None  # the token file is there: kept

        with db.session() as s:
            admin = s.scalars(select(User).where(User.name == "admin")).one()
            held = s.scalars(select(RoleAssignment).where(RoleAssignment.user_id == admin.id)).all()
            assert [(a.project_id) for a in held] == ["p-admin"]
            assert s.get(Project, "p-admin").domain_id == "default"
        old_admin = identity.authenticate(db, admin_secret)
        assert (old_admin.project_id, old_admin.user_id, old_admin.roles) == (
            "p-admin", admin.id, ("reader", "member", "admin"))
        old_team = identity.authenticate(db, team_secret)
        assert (old_team.project_id, old_team.roles, old_team.is_admin) == ("p-team", ("reader", "member"), False)
        issued = identity.issue_for_password(db, password="bootstrap-pw", name="admin", domain_id="default",
                                             scope=Scope(project_name="admin", project_domain_id="default"),
                                             lifetime=60)
        assert issued.info.project_id == "p-admin" and {n for _, n in issued.info.roles} == {
            "admin", "member", "reader"}
    finally:
        db.dispose()


def test_migration_0009_jobs_matches_the_model_goes_down_and_up_and_goes_with_its_cluster(
        tmp_path: Path, database_url: str) -> None:
    """0009 adds the jobs table as the model has it; a job row goes when its cluster is deleted."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import delete, inspect

    from floe.db.base import Base

    db = Database(database_url or f"sqlite:///{tmp_path / 'floe.db'}")
    try:
        _upgrade(db, "0008")
        assert "jobs" not in inspect(db.engine).get_table_names()
        db.migrate()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        mine = [d for d in diff if "jobs" in repr(d)]
        assert not mine, mine
        with db.engine.begin() as conn:
            meta = MetaData()
            conn.execute(Table("projects", meta, autoload_with=conn).insert().values(
                id="p1", name="p1", created_at=utcnow()))
            _insert(conn, Table("cluster_templates", meta, autoload_with=conn), uuid="t1", project_id="p1",
                    name="tpl")
            clusters = Table("clusters", meta, autoload_with=conn)
            cluster = _insert(conn, clusters, uuid="c1", project_id="p1", name="c", cluster_template_id="t1",
                              host_tag="abcd1234")
            jobs = Table("jobs", meta, autoload_with=conn)
            _insert(conn, jobs, uuid="j1", project_id="p1", cluster_id=cluster, slurm_job_id="1",
                    command=["hostname"], shares=[])
        with db.session() as s:  # the application's sessions enforce foreign keys (SQLite's pragma)
            s.execute(delete(Table("clusters", MetaData(), autoload_with=s.connection())))
        with db.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(Table("jobs", MetaData(),
                                                                         autoload_with=conn))).scalar() == 0
        with db.engine.begin() as conn:
            cfg = alembic_config(db.engine)
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0008")
        assert "jobs" not in inspect(db.engine).get_table_names()
        db.migrate()
        assert "jobs" in inspect(db.engine).get_table_names()
    finally:
        db.dispose()


def test_migration_0010_events_matches_the_model_goes_down_and_up(tmp_path: Path, database_url: str) -> None:
    """0010 adds the events table as the model has it (no foreign keys: events outlive clusters)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect

    from floe.db.base import Base

    db = Database(database_url or f"sqlite:///{tmp_path / 'floe.db'}")
    try:
        _upgrade(db, "0009")
        assert "events" not in inspect(db.engine).get_table_names()
        db.migrate()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        mine = [d for d in diff if "events" in repr(d)]
        assert not mine, mine
        assert inspect(db.engine).get_foreign_keys("events") == []
        with db.engine.begin() as conn:
            events = Table("events", MetaData(), autoload_with=conn)
            _insert(conn, events, project_id="p-gone", kind="cluster.deleted", level="info", message="m",
                    cluster_name="c", step="", data={})
        with db.engine.begin() as conn:
            cfg = alembic_config(db.engine)
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0009")
        assert "events" not in inspect(db.engine).get_table_names()
        db.migrate()
        assert "events" in inspect(db.engine).get_table_names()
    finally:
        db.dispose()
