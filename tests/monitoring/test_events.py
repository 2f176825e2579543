"""Events on the simulated provider, with the real engine, health monitor, services and database:
every step transition, a failure, health changes, auto-healing, a resize and a delete are stored in
order; the stream delivers them as they are committed; projects see only their own.

A failing node start is injected by replacing the simulated provider's `start_node` (no real
machine to break here); the failure's path through the engine is the real one.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from floe.db.base import utcnow
from floe.db.models import Cluster, Event
from floe.engine.pipelines import PIPELINES
from floe.errors import InvalidInput, NotFound
from floe.host.errors import HostError
from floe.monitoring.health import HealthMonitor
from floe.services import clusters, events, identity
from floe.services.identity import Caller
from tests.engine.conftest import Sim


def _create(sim: Sim, name: str, workers: int, labels: dict | None = None) -> Cluster:
    spec = clusters.ClusterSpec(name=name, cluster_template_id=sim.template, node_count=workers, labels=labels)
    clusters.create_cluster(sim.runtime, sim.caller, spec)
    sim.runtime.engine.run_until_idle()  # type: ignore[union-attr]
    with sim.db.session() as s:
        c = s.scalars(select(Cluster).where(Cluster.name == name)).one()
        s.expunge(c)
        return c


def _kinds(evs: list[dict]) -> list[str]:
    return [e["kind"] for e in evs]


def test_a_create_tells_every_step_in_order_and_a_delete_outlives_its_cluster(sim: Sim) -> None:
    c = _create(sim, "ev", workers=2)
    got = events.list_events(sim.runtime, sim.caller, "ev", limit=1000)
    assert [e["id"] for e in got] == sorted(e["id"] for e in got)
    assert {e["cluster_id"] for e in got} == {c.uuid} and {e["cluster_name"] for e in got} == {"ev"}
    steps = [s.name for s in PIPELINES["create"](sim.runtime.engine.drivers["swarm"])]  # type: ignore[union-attr]
    # One event per commit the engine makes: the first step's also says the operation started;
    # each later step's names the one before and its time; the end names the last one.
    expected = ["operation.queued", "operation.started"] + ["step.started"] * (len(steps) - 1)
    expected.append("operation.complete")
    assert [k for k in _kinds(got) if k != "health.changed"] == expected
    # The create's last step makes the cluster HEALTHY, and says so (once).
    assert [(e["data"], e["step"]) for e in got if e["kind"] == "health.changed"] == [
        ({"old": "UNKNOWN", "new": "HEALTHY"}, steps[-1])]
    stepping = [e for e in got if e["kind"] in ("operation.started", "step.started")]
    assert [e["step"] for e in stepping] == steps
    assert [e["data"].get("previous") for e in stepping] == [None, *steps[:-1]]
    assert got[-1]["data"]["previous"] == steps[-1]
    assert all(e["data"]["previous_seconds"] >= 0 for e in stepping[1:] + [got[-1]])
    assert stepping[1]["message"].startswith(f"step {steps[1]}: ") and f"({steps[0]} took " in stepping[1]["message"]
    assert stepping[0]["message"].startswith(f"create started: step {steps[0]}: ")
    assert len({e["operation"] for e in got}) == 1 and got[0]["operation"] is not None
    assert got[-1]["message"] == "create complete" and got[-1]["data"]["kind"] == "create"

    # A resize is an event of its own, then its operation's.
    clusters.resize_cluster(sim.runtime, sim.caller, "ev", 3)
    sim.runtime.engine.run_until_idle()  # type: ignore[union-attr]
    after = events.list_events(sim.runtime, sim.caller, "ev", since=got[-1]["id"])
    assert after[0]["kind"] == "resize.requested"
    assert after[0]["message"] == "resize of the cluster to 3 node(s) requested"
    assert after[-1]["kind"] == "operation.complete" and after[-1]["data"]["kind"] == "update"

    clusters.delete_cluster(sim.runtime, sim.caller, "ev")
    sim.runtime.engine.run_until_idle()  # type: ignore[union-attr]
    # The cluster is gone; its events are not, by name or by uuid.
    by_name = events.list_events(sim.runtime, sim.caller, "ev", limit=3)
    assert by_name[-1]["kind"] == "cluster.deleted" and by_name[-1]["message"] == "cluster ev deleted"
    assert events.list_events(sim.runtime, sim.caller, c.uuid, limit=3) == by_name
    # `since` pages forward; `limit` keeps the newest.
    everything = events.list_events(sim.runtime, sim.caller, "ev", limit=1000)
    assert events.list_events(sim.runtime, sim.caller, "ev", since=everything[4]["id"], limit=2) == everything[5:7]
    with pytest.raises(InvalidInput):
        events.list_events(sim.runtime, sim.caller, "ev", limit=0)
    with pytest.raises(InvalidInput):
        events.list_events(sim.runtime, sim.caller, "ev", limit=1001)


def test_a_failure_is_an_error_event_naming_its_step(sim: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(spec):
        raise HostError("no room for the node", temporary=False)

    monkeypatch.setattr(sim.provider, "start_node", broken)
    c = _create(sim, "bad", workers=1)
    assert c.status == "CREATE_FAILED"
    last = events.list_events(sim.runtime, sim.caller, "bad")[-1]
    assert last["kind"] == "operation.failed" and last["level"] == "error"
    assert "no room for the node" in last["message"] and last["step"] == "nodes"
    assert last["data"] == {"kind": "create", "status": "CREATE_FAILED"}


def test_health_changes_and_auto_healing_are_events(sim: Sim) -> None:
    monitor = HealthMonitor(sim.runtime, sim.runtime.engine.drivers)  # type: ignore[union-attr]
    try:
        c = _create(sim, "ah", workers=2, labels={"auto_healing_enabled": "true"})
        assert c.health_status == "HEALTHY"  # the create's last step says so
        mark = events.list_events(sim.runtime, sim.caller, "ah")[-1]["id"]
        assert monitor.check_all() == 0  # nothing changed: nothing told
        assert events.list_events(sim.runtime, sim.caller, "ah", since=mark) == []
        first = [{"id": mark}]

        sim.provider.fail_node(c.host_tag, "ah-node-0")
        monitor.check_all()
        told = events.list_events(sim.runtime, sim.caller, "ah", since=first[-1]["id"])
        kinds = _kinds(told)
        assert kinds[:4] == ["health.changed", "node.health", "autoheal", "operation.queued"], kinds
        assert told[0]["level"] == "warning" and told[0]["data"] == {"old": "HEALTHY", "new": "UNHEALTHY"}
        assert told[1]["data"]["node"] == "ah-node-0" and told[1]["data"]["new"] == "UNHEALTHY"
        assert told[1]["message"].startswith("node ah-node-0 is UNHEALTHY: ")
        assert told[2]["message"] == "auto-healing ah-node-0" and told[2]["data"] == {"nodes": ["ah-node-0"]}
        assert told[3]["message"] == "repair queued: auto-healing ah-node-0"
        sim.runtime.engine.run_until_idle()  # type: ignore[union-attr]
        assert events.list_events(sim.runtime, sim.caller, "ah")[-1]["kind"] == "operation.complete"
        mark = events.list_events(sim.runtime, sim.caller, "ah")[-1]["id"]
        monitor.check_all()  # the repair told its own health change: the monitor finds nothing new
        assert events.list_events(sim.runtime, sim.caller, "ah", since=mark) == []
        repair = events.list_events(sim.runtime, sim.caller, "ah", since=told[3]["id"], limit=1000)
        back = [e for e in repair if e["kind"] == "health.changed"]
        assert [e["data"] for e in back] == [{"old": "UNHEALTHY", "new": "HEALTHY"}], repair
        assert back[0]["message"] == "cluster ah is HEALTHY (was UNHEALTHY): repair complete"
    finally:
        monitor.stop()


def test_projects_see_only_their_own_events(sim: Sim) -> None:
    _create(sim, "mine", workers=1)
    with sim.db.session() as s:
        other = identity.create_project(s, "other-project").id
    stranger = Caller(other, "someone")
    with pytest.raises(NotFound):
        events.list_events(sim.runtime, stranger, "mine")
    with sim.db.session() as s:
        uuid = s.scalar(select(Cluster.uuid).where(Cluster.name == "mine"))
    with pytest.raises(NotFound):
        events.list_events(sim.runtime, stranger, uuid)
    assert events.list_events(sim.runtime, stranger) == []
    with pytest.raises(NotFound):  # only admins look across projects
        events.list_events(sim.runtime, stranger, all_projects=True)
    assert events.list_events(sim.runtime, sim.caller, all_projects=True)  # sim.caller is an admin

    async def stranger_stream() -> None:
        await events.open_stream(sim.runtime, stranger, "mine")

    with pytest.raises(NotFound):
        asyncio.run(stranger_stream())


def test_the_stream_delivers_events_as_they_are_committed(sim: Sim) -> None:
    """Opened before a create, the stream yields the create's events in order and ends with its
    completion; a stream resumed after an id gives exactly what followed."""
    engine = sim.runtime.engine
    got: list[dict] = []

    async def follow() -> None:
        stream = await events.open_stream(sim.runtime, sim.caller, poll=5.0, heartbeat=60.0)
        threading.Thread(target=lambda: _create(sim, "live", workers=1), daemon=True).start()
        async for e in stream:
            got.append(e)
            if e and e["kind"] == "operation.complete":
                return

    asyncio.run(asyncio.wait_for(follow(), 60))
    assert got[0]["kind"] == "operation.queued" and got[-1]["kind"] == "operation.complete"
    # The bell woke the stream: it did not wait out the 5 s poll between commits.
    assert len(got) > 4
    assert got == events.list_events(sim.runtime, sim.caller, "live", limit=1000)

    async def resume(after: int) -> list[dict]:
        out = []
        stream = await events.open_stream(sim.runtime, sim.caller, "live", last_id=after, poll=0.1, heartbeat=0.2)
        async for e in stream:
            if e is None:  # a keep-alive: nothing more to come
                return out
            out.append(e)
        return out

    assert asyncio.run(resume(got[2]["id"])) == got[3:]
    assert engine is not None


def test_old_events_are_pruned(sim: Sim) -> None:
    _create(sim, "old", workers=1)
    with sim.db.session() as s:
        total = len(s.scalars(select(Event.id)).all())
        first = s.scalars(select(Event.id).order_by(Event.id).limit(3)).all()
        s.execute(update(Event).where(Event.id.in_(first)).values(created_at=utcnow() - timedelta(days=31)))
    assert events.prune(sim.db, 30) == 3
    with sim.db.session() as s:
        assert len(s.scalars(select(Event.id)).all()) == total - 3
    assert events.prune(sim.db, 30) == 0
