"""Quotas hold under concurrency, on SQLite and PostgreSQL: many clients creating and growing
clusters and shares at once never take a project past its quota together, and no request is
refused that would have fit (every refusal still exceeds the quota at the end).

The services and the database are the real ones (the engine is not started: what is checked is
what the API accepts); each client is a thread with its own session, released together.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from floe.config import QuotaDefaults
from floe.db.models import Cluster, Share
from floe.errors import Conflict, QuotaExceeded
from floe.services import clusters, quotas, shares
from tests.engine.conftest import Sim, make_sim

CLIENTS = 24

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def qsim(tmp_path: Path, database_url: str) -> Iterator[Sim]:
    limits = QuotaDefaults(clusters=6, nodes=30, cores=-1, ram=-1, shares=-1, gigabytes=40)
    s = make_sim(tmp_path / "home", database_url, share_types=("simulated",), quotas=limits)
    yield s
    s.runtime.engine.stop(wait=True)  # type: ignore[union-attr]
    s.provider.close()
    s.db.dispose()


def race(jobs: list[Callable[[], object]]) -> tuple[list[object], list[QuotaExceeded], list[BaseException]]:
    """Run every job in its own thread, all released at once: (results, quota refusals, other errors)."""
    gate = threading.Barrier(len(jobs))
    done: list[object] = []
    refused: list[QuotaExceeded] = []
    failed: list[BaseException] = []
    lock = threading.Lock()

    def run(job: Callable[[], object]) -> None:
        gate.wait()
        try:
            result = job()
        except QuotaExceeded as exc:
            with lock:
                refused.append(exc)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            with lock:
                failed.append(exc)
        else:
            with lock:
                done.append(result)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a client hung"
    return done, refused, failed


def test_concurrent_cluster_creates_never_pass_the_cluster_quota(qsim: Sim) -> None:
    done, refused, failed = race([lambda i=i: qsim.create(f"c{i}", 1) for i in range(CLIENTS)])
    assert not failed, failed
    assert len(done) == 6 and len(refused) == CLIENTS - 6  # exactly the quota, not one more or less
    assert {(e.resource, e.limit, e.used, e.requested) for e in refused} == {("clusters", 6, 6, 1)}
    with qsim.db.session() as s:
        assert s.scalar(select(func.count(Cluster.id))) == 6


def test_concurrent_creates_and_resizes_never_pass_the_node_quota(qsim: Sim) -> None:
    """Clients creating clusters of random sizes and growing existing ones, all at once."""
    with qsim.db.session() as s:
        quotas.lock(s, qsim.caller.project_id)  # the first lock row is made here, not under the race
    existing = [qsim.create(f"base{i}", 1) for i in range(3)]  # 6 nodes
    rnd = random.Random(7)

    def grow(uuid: str, workers: int) -> Callable[[], object]:
        return lambda: clusters.resize_cluster(qsim.runtime, qsim.caller, uuid, workers)

    jobs: list[Callable[[], object]] = []
    for i in range(CLIENTS):
        if i % 3 == 0:
            jobs.append(grow(existing[i % len(existing)], rnd.randint(2, 9)))
        else:
            jobs.append(lambda i=i, n=rnd.randint(0, 6): qsim.create(f"new{i}", n))
    done, refused, failed = race(jobs)
    # A second resize of one cluster while the first is queued is a 409, never a quota breach.
    assert all(isinstance(e, Conflict) for e in failed), failed
    assert refused, "the quota never refused anything: the test did not test it"
    with qsim.db.session() as s:
        used = quotas.cluster_usage(s, qsim.caller.project_id)
    assert used[quotas.CLUSTERS] <= 6 and used[quotas.NODES] <= 30, used
    # Nothing was refused that fits now: usage only grew after each refusal.
    for exc in refused:
        assert used[exc.resource] + exc.requested > exc.limit, (exc.detail, used)


def test_concurrent_share_creates_and_extends_never_pass_the_gigabytes_quota(qsim: Sim) -> None:
    first = [shares.create_share(qsim.runtime, qsim.caller, shares.ShareSpec(share_proto="LOCALFS", size=2)).uuid
             for _ in range(4)]  # 8 GiB
    with qsim.db.session() as s:
        for share in s.scalars(select(Share)):
            share.status = "available"  # as the share work leaves them
    rnd = random.Random(11)
    jobs: list[Callable[[], object]] = []
    for i in range(CLIENTS):
        if i < len(first):
            jobs.append(lambda u=first[i], n=rnd.randint(3, 12): shares.extend_share(qsim.runtime, qsim.caller, u, n))
        else:
            spec = shares.ShareSpec(share_proto="LOCALFS", size=rnd.randint(1, 5), name=f"s{i}")
            jobs.append(lambda spec=spec: shares.create_share(qsim.runtime, qsim.caller, spec))
    done, refused, failed = race(jobs)
    assert not failed, failed
    assert refused and len(done) > len(first)
    with qsim.db.session() as s:
        used = quotas.share_usage(s, qsim.caller.project_id)
    assert used[quotas.GIGABYTES] <= 40, used
    assert all(used[quotas.GIGABYTES] + e.requested > 40 for e in refused), (used, [e.detail for e in refused])


def test_migration_0006_matches_the_models_and_goes_down_and_up(tmp_path: Path, database_url: str) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect

    from floe.config import Settings
    from floe.db.base import Base
    from floe.db.migrate import alembic_config
    from floe.db.session import Database

    settings = Settings(home=tmp_path / "home", database_url=database_url)
    settings.home.mkdir()
    db = Database(settings.db_url)
    try:
        db.migrate()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        mine = [d for d in diff if "quota" in repr(d)]
        assert not mine, mine
        with db.engine.begin() as conn:
            cfg = alembic_config(db.engine)
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0005")
        assert not {"quotas", "quota_locks"} & set(inspect(db.engine).get_table_names())
        db.migrate()
        assert {"quotas", "quota_locks"} <= set(inspect(db.engine).get_table_names())
    finally:
        db.dispose()
