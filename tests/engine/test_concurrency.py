"""Many clients creating, resizing and deleting the same and different clusters at once, over HTTP.

A real `floe server` on the simulated provider (which stands in for real machines on purpose:
operations take a few tenths of a second, so requests really overlap) and 12 client threads.
Afterwards the database must be consistent with the machines, every conflicting request must
have had a 409 that says why, and no accepted operation may be lost.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from floe.db.models import Cluster, Operation
from tests.engine.conftest import FloeProcess, assert_consistent

SHARED = [f"s{i}" for i in range(4)]  # exist from the start; everyone resizes them
CONTESTED = [f"x{i}" for i in range(4)]  # everyone tries to create and delete these
CLIENTS = 12
ACTIONS = 14


@dataclass
class Result:
    client: int
    action: str
    cluster: str
    status: int
    detail: str
    at: float
    node_count: int | None = None


def _detail(r) -> str:
    try:
        return r.json()["errors"][0]["detail"]
    except (ValueError, KeyError, IndexError):
        return ""


def _client(server: FloeProcess, template: str, n: int, out: list[Result], lock: threading.Lock) -> None:
    rnd = random.Random(n)
    mine: list[str] = []
    for k in range(ACTIONS):
        roll = rnd.random()
        count = None
        if roll < 0.4:
            name, action, count = rnd.choice(SHARED), "resize", rnd.randint(1, 6)
            r = server.api("POST", f"/v1/clusters/{name}/actions/resize", json={"node_count": count})
        elif roll < 0.6:
            name, action = rnd.choice(CONTESTED), "create"
            r = server.api("POST", "/v1/clusters", json={"name": name, "cluster_template_id": template,
                                                         "node_count": rnd.randint(1, 4)})
        elif roll < 0.75:
            name, action = rnd.choice(CONTESTED), "delete"
            r = server.api("DELETE", f"/v1/clusters/{name}")
        elif roll < 0.9 or not mine:
            name, action = f"own{n}-{k}", "create"
            r = server.api("POST", "/v1/clusters", json={"name": name, "cluster_template_id": template,
                                                         "node_count": rnd.randint(0, 5)})
            mine.append(name)
        else:
            name, action = mine.pop(rnd.randrange(len(mine))), "delete"
            r = server.api("DELETE", f"/v1/clusters/{name}")
        with lock:
            out.append(Result(n, action, name, r.status_code, _detail(r), time.monotonic(), count))
        time.sleep(rnd.uniform(0, 0.05))


def test_many_clients_at_once_leave_a_consistent_database(tmp_path: Path, database_url: str) -> None:
    server = FloeProcess(tmp_path / "home", database_url, FLOE_SIM_BOOT_DELAY="0.05", FLOE_SIM_COE_DELAY="0.05")
    server.start()
    try:
        template = server.template()
        for name in SHARED:
            assert server.api("POST", "/v1/clusters", json={"name": name, "cluster_template_id": template,
                                                            "node_count": 2}).status_code == 202
        server.wait_settled()
        results: list[Result] = []
        lock = threading.Lock()
        threads = [threading.Thread(target=_client, args=(server, template, n, results, lock))
                   for n in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        final = server.wait_settled()
    finally:
        server.stop()

    # Every answer is one a client can act on; every refusal says why.
    unexpected = [r for r in results if r.status not in (202, 204, 404, 409)]
    assert not unexpected, unexpected
    conflicts = [r for r in results if r.status == 409]
    assert conflicts, "the clients never collided: the test did not test concurrency"
    for r in conflicts:
        assert "operation in progress" in r.detail or "already exists" in r.detail, r
    assert all("could not be found" in r.detail for r in results if r.status == 404)
    assert all(s in ("CREATE_COMPLETE", "UPDATE_COMPLETE") for s in final.values()), final

    db, provider = server.db(), server.provider()
    try:
        assert_consistent(db, provider)
        with db.session() as s:
            for name in SHARED:
                # Accepted resizes never overlap (a second one gets 409), so the last one accepted
                # is the size the cluster has, and each left a completed operation: none was lost.
                accepted = sorted((r for r in results if r.cluster == name and r.action == "resize"
                                   and r.status == 202), key=lambda r: r.at)
                c = s.scalars(select(Cluster).where(Cluster.name == name)).one()
                if accepted:
                    assert c.node_count == accepted[-1].node_count, (name, accepted[-1])
                updates = s.scalars(select(Operation.state).where(
                    Operation.cluster_id == c.id, Operation.kind == "update")).all()
                assert updates == ["complete"] * len(accepted), (name, updates, len(accepted))
            existing = set(s.scalars(select(Cluster.name)))
        # A cluster exists at the end exactly when its last accepted create/delete was a create.
        for name in {r.cluster for r in results if r.action in ("create", "delete")}:
            last = [r for r in results if r.cluster == name and r.action in ("create", "delete")
                    and r.status in (202, 204)]
            last.sort(key=lambda r: r.at)
            expect = bool(last) and last[-1].action == "create"
            assert (name in existing) == expect, (name, last[-1:] if last else None)
    finally:
        provider.close()
        db.dispose()
