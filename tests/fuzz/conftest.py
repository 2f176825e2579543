"""A real `floe server` on the simulated provider, seeded with objects the fuzzer can hit.

The simulated provider stands in for machines (floe's own feature for testing the control
plane); everything else is real: the server process, its engine, its SQLite database, and
its storage worker (as root, the seed share is a real loop-mounted ext4 image, which the
teardown takes offline and deletes).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.engine.conftest import FloeProcess

# A /16 bounds clusters to a few dozen simulated nodes (each node has a /23), so a fuzzed
# resize cannot keep the engine busy for the rest of the run.
ADDRESS_RANGE = "10.200.0.0/16"
# Tables the API writes, and the columns background loops change without any request.
TABLES = ("projects", "tokens", "cluster_templates", "clusters", "nodes", "operations", "address_allocations",
          "shares", "share_access_rules", "share_attachments")
VOLATILE = {"health_status", "health_status_reason", "health_reason", "lease_owner", "lease_expires_at",
            "heartbeat_at", "last_seen_at", "nodes_verified"}


@dataclass
class Seeds:
    """Objects that exist in the server, by the path parameter (or body field) that names them."""

    template: str = ""
    cluster: str = ""
    cluster_name: str = ""
    share: str = ""
    share_name: str = ""
    rule: str = ""
    location: str = ""
    project: str = ""
    by_param: dict[str, str] = field(default_factory=dict)


class FuzzServer(FloeProcess):
    """The fuzzed server, with seeding, idleness and database snapshots."""

    def __init__(self, home: Path):
        super().__init__(home, FLOE_ADDRESS_RANGE=ADDRESS_RANGE,
                         # Few and small shares: each is a real image file with a loop device.
                         FLOE_SHARE_QUOTA_SHARES="4", FLOE_SHARE_QUOTA_GB="6")
        self.seeds = Seeds()
        self.requests = 0
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.wedged = ""  # why the server stopped settling, once it has
        self.last = ""  # the latest fuzzed request

    @property
    def token(self) -> str:
        return (self.home / "admin-token").read_text().strip()

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, headers={"X-Auth-Token": self.token}, timeout=60, **kw)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.home / 'floe.db'}?mode=ro", uri=True, timeout=30)

    def snapshot(self) -> dict[str, str]:
        """A digest of every row of the tables the API writes (volatile columns left out)."""
        out = {}
        with self._connect() as c:
            for table in TABLES:
                cols = [r[1] for r in c.execute(f"PRAGMA table_info({table})") if r[1] not in VOLATILE]
                names = ", ".join(f'"{col}"' for col in cols)
                rows = c.execute(f"SELECT {names} FROM {table} ORDER BY rowid").fetchall()
                out[table] = f"{len(rows)} rows, " + hashlib.sha256(repr(rows).encode()).hexdigest()[:16]
        return out

    def rows(self, table: str) -> list[dict[str, Any]]:
        with self._connect() as c:
            c.row_factory = sqlite3.Row
            return [dict(r) for r in c.execute(f"SELECT * FROM {table} ORDER BY rowid")]

    def check_alive(self) -> None:
        """Fail at once, rather than wait on every later case, once the server is dead or wedged."""
        if self.wedged:
            pytest.fail(self.wedged)
        if self.proc is not None and self.proc.poll() is not None:
            log = (self.home / "server.log").read_text(errors="replace")
            pytest.fail(f"the floe server died (exit {self.proc.returncode}); its log ends:\n{log[-3000:]}")

    def active(self) -> list[tuple]:
        """What keeps the server busy: operations in progress and shares with work queued."""
        with self._connect() as c:
            ops = c.execute("SELECT cluster_id, kind, state, step, params FROM operations "
                            "WHERE state IN ('pending', 'running')").fetchall()
            shares = c.execute("SELECT uuid, status FROM shares WHERE needs_work").fetchall()
        return [*ops, *shares]

    def idle(self) -> bool:
        with self._connect() as c:
            ops = c.execute("SELECT count(*) FROM operations WHERE state IN ('pending', 'running')").fetchone()[0]
            work = c.execute("SELECT count(*) FROM shares WHERE needs_work").fetchone()[0]
        return ops == 0 and work == 0

    def wait_idle(self, timeout: float = 20) -> bool:
        end = time.monotonic() + timeout
        while not self.idle():
            if time.monotonic() > end:
                return False
            time.sleep(0.02)
        return True

    def _wait_status(self, path: str, key: str, want: str, timeout: float = 60) -> dict:
        end = time.monotonic() + timeout
        while True:
            body = self.call("GET", path).json()[key]
            if body["status"] == want:
                return body
            assert time.monotonic() < end and "FAILED" not in body["status"] and body["status"] != "error", body
            time.sleep(0.1)

    def seed(self) -> Seeds:
        """A template, a cluster, a share with an access rule, attached to the cluster (made again when gone)."""
        s = self.seeds
        clusters = {c["uuid"]: c for c in self.rows("clusters")}
        if not s.template or s.template not in {t["uuid"] for t in self.rows("cluster_templates")}:
            r = self.call("POST", "/v1/clustertemplates", json={"name": f"fuzz-ct-{time.monotonic_ns()}",
                                                                "coe": "swarm"})
            assert r.status_code == 201, r.text
            s.template = r.json()["uuid"]
        if not s.cluster or clusters.get(s.cluster, {}).get("status", "DELETE").startswith("DELETE"):
            # Another cluster the fuzzer made will do; else a new one.
            alive = [c for c in clusters.values() if c["status"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE")]
            if alive:
                s.cluster, s.cluster_name = alive[0]["uuid"], alive[0]["name"]
        if not s.cluster or clusters.get(s.cluster, {}).get("status", "DELETE").startswith("DELETE"):
            s.cluster_name = f"fuzz-c-{time.monotonic_ns() % 10**8}"
            r = self.call("POST", "/v1/clusters", json={"name": s.cluster_name, "cluster_template_id": s.template,
                                                        "master_count": 1, "node_count": 1})
            assert r.status_code == 202, r.text
            s.cluster = r.json()["uuid"]
        shares = {sh["uuid"]: sh for sh in self.rows("shares")}
        if not s.share or shares.get(s.share, {}).get("status", "deleting") in ("deleting", "error_deleting"):
            alive = [sh for sh in shares.values() if sh["status"] == "available"]
            if alive:
                s.share, s.share_name, s.rule, s.location = alive[0]["uuid"], alive[0]["name"], "", ""
        if not s.share or shares.get(s.share, {}).get("status", "deleting") in ("deleting", "error_deleting"):
            s.share_name = f"fuzz-s-{time.monotonic_ns() % 10**8}"
            r = self.call("POST", "/v2/shares", json={"share": {"share_proto": "LOCALFS", "size": 1,
                                                                "name": s.share_name}})
            assert r.status_code == 202, r.text
            s.share = r.json()["share"]["id"]
            s.rule = s.location = ""
        self.wait_idle(60)
        if not s.rule or s.rule not in {r["uuid"] for r in self.rows("share_access_rules")}:
            r = self.call("POST", f"/v2/shares/{s.share}/action",
                          json={"allow_access": {"access_type": "floe_cluster", "access_to": s.cluster}})
            if r.status_code == 200:
                s.rule = r.json()["access"]["id"]
        if not s.location:
            locations = self.call("GET", f"/v2/shares/{s.share}/export_locations").json().get("export_locations")
            s.location = locations[0]["id"] if locations else ""
        attached = {(a["share_id"], a["cluster_id"]) for a in self.rows("share_attachments")}
        ids = {sh["uuid"]: sh["id"] for sh in self.rows("shares")}
        cids = {c["uuid"]: c["id"] for c in self.rows("clusters")}
        if (ids.get(s.share), cids.get(s.cluster)) not in attached:
            self.call("POST", f"/v1/floe/clusters/{s.cluster}/shares", json={"share": s.share})
        if not s.project:
            s.project = self.rows("projects")[0]["id"]
        self.wait_idle(60)
        s.by_param = {"cluster_ident": s.cluster, "share": s.share, "rule_id": s.rule, "location_id": s.location,
                      "project_id": s.project}
        return s


@pytest.fixture(scope="session")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzServer]:
    """The server for the whole session; its log stays in pytest's temporary directory."""
    server = FuzzServer(tmp_path_factory.mktemp("fuzz") / "home")
    try:
        server.start()
        server.seed()
        yield server
    finally:
        server.stop()
        from floe import storage

        storage.purge_host(server.home, delete_data=True)  # the seed share's loop device and mounts
        for child in server.home.iterdir():
            if child.name != "server.log":
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()
        log = (server.home / "server.log").read_text(errors="replace")
        if os.environ.get("FLOE_FUZZ_LOG"):
            Path(os.environ["FLOE_FUZZ_LOG"]).write_text(log)
        print(f"\nfuzz server: {server.requests} fuzzed requests, {log.count('Traceback')} tracebacks in its log")
        if os.environ.get("FLOE_FUZZ_STATS"):
            for (label, status), count in sorted(server.statuses.items()):
                print(f"  {label}: {status} x {count}")
        for (where, error), count in _tracebacks(log).items():
            print(f"  {count} x {error}  ({where})")


def _tracebacks(log: str) -> dict[tuple[str, str], int]:
    """(innermost floe frame, exception) of every traceback in a server log, counted."""
    found: dict[tuple[str, str], int] = {}
    for block in log.split("Traceback (most recent call last):")[1:]:
        lines = block.strip("\n").splitlines()
        frames = [line.strip() for line in lines if line.strip().startswith('File "') and "/floe/" in line]
        error = next((line for line in lines if line and not line.startswith(" ")), "?")
        key = (frames[-1] if frames else "?", error[:300])
        found[key] = found.get(key, 0) + 1
    return found


def documents() -> tuple[dict[str, Any], dict[str, Any]]:
    """floe's two OpenAPI documents as its app builds them (no database or server needed),
    for collection time; test_served_documents checks the server serves the same."""
    from floe.api import openapi
    from floe.api.app import create_app
    from floe.api.manila import openapi as manila_openapi
    from floe.config import Settings
    from floe.db.session import Database
    from floe.runtime import Runtime

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp))
        db = Database(settings.db_url)
        try:
            app = create_app(Runtime(settings=settings, db=db, provider=None, engine=None))
            return app.openapi(), manila_openapi.document(openapi.manila_app(app))
        finally:
            db.dispose()


def dump(obj: Any) -> str:
    return json.dumps(obj, default=str)[:2000]
