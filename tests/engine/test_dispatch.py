"""Dispatching: a wake-up starts as many operations as there are free workers, oldest first.

On the simulated provider (its COE steps take `sim_coe_delay`, so operations stay running
while the test looks); the engine, its leases and the database are real.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from floe.db.models import Cluster, Operation
from tests.engine.conftest import make_sim


def test_a_wake_up_fills_the_free_workers_with_the_oldest_operations(tmp_path: Path, database_url: str) -> None:
    sim = make_sim(tmp_path / "home", database_url, engine_workers=3, sim_coe_delay=0.5)
    engine = sim.runtime.engine
    try:
        names = [f"q{i:02d}" for i in range(12)]
        for name in names:
            sim.create(name, workers=1)
        assert engine.dispatch_once() == 3
        assert engine.dispatch_once() == 0, "no free worker: nothing more starts"
        with sim.db.session() as s:
            running = s.scalars(
                select(Cluster.name).join(Operation, Operation.cluster_id == Cluster.id)
                .where(Operation.lease_owner.is_not(None)).order_by(Cluster.name)
            ).all()
        assert running == names[:3], "the oldest operations go first"
        engine.start()
        sim.wait(set(names), "CREATE_COMPLETE", timeout=120)
        with sim.db.session() as s:
            ops = s.execute(select(Operation.state, Operation.steps_done, Operation.attempts)).all()
        assert {o.state for o in ops} == {"complete"}
        assert all(o.attempts == 1 for o in ops), "no operation was leased twice"
        assert all(o.steps_done[-1] == "finish" and len(o.steps_done) == len(set(o.steps_done)) for o in ops)
    finally:
        engine.stop(wait=True)
        sim.provider.close()
        sim.db.dispose()
