"""`kill -9` of a real `floe server` at every step of every share operation, then a restart: the
share work resumes and ends where it should (available, resized, rule applied or gone, share gone)
with nothing leaked on the host (no image, loop device or mount of a deleted share).

The server runs on the simulated provider with the real `local` share backend (loop-mounted
images, so root). The crash is a failpoint (FLOE_FAILPOINTS, see floe/engine/share_work):
`before` a step ran, or `after` its work is done (and, for a backend step, not yet recorded).
Attaching needs a provider whose nodes receive mounts (the local one): tests/e2e covers it.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from floe.host import mounts
from floe.storage.local import LocalBackend
from tests.engine.conftest import FloeProcess

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the local share backend needs root (loop devices, mounts)"),
    pytest.mark.timeout(600),
]

CREATE = ["create", "record"]
CHANGE = {"extend": ["extend", "record"], "shrink": ["shrink", "record"]}
DELETE = ["unmount", "deny", "destroy", "forget"]
ACCESS = ["allow", "revoke"]
H = {"X-OpenStack-Manila-API-Version": "2.65"}


class ShareServer(FloeProcess):
    def manila(self, method: str, path: str, **kw) -> httpx.Response:
        token = (self.home / "admin-token").read_text().strip()
        return httpx.request(method, self.url + "/v2" + path, headers={**H, "X-Auth-Token": token}, timeout=60, **kw)

    def share(self, ident: str) -> dict | None:
        r = self.manila("GET", f"/shares/{ident}")
        return None if r.status_code == 404 else r.json()["share"]

    def wait_share(self, ident: str, want: set[str], timeout: float = 60) -> dict | None:
        end = time.monotonic() + timeout
        share = None
        while time.monotonic() < end:
            share = self.share(ident)
            if (share is None and "gone" in want) or (share is not None and share["status"] in want):
                return share
            time.sleep(0.1)
        raise AssertionError(f"share {ident} did not become {want}: {share}")

    def rules(self, ident: str) -> list[dict]:
        return self.manila("POST", f"/shares/{ident}/action", json={"access_list": None}).json()["access_list"]

    def crash_during(self, point: str, request) -> httpx.Response | None:
        """Restart armed with one failpoint, make the request, wait for the crash, restart."""
        self.stop()
        self.start(FLOE_FAILPOINTS=point)
        try:
            resp = request()
        except httpx.HTTPError:
            resp = None  # the server may die before the client has read its answer
        assert self.wait_exit() == -9, f"the server did not crash at {point}"
        self.start()
        return resp


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ShareServer]:
    srv = ShareServer(tmp_path / "home")
    srv.start()
    yield srv
    srv.stop()
    LocalBackend(srv.home / "storage").purge(delete_data=True)
    mounts.unmount_tree(srv.home)


def create(server: ShareServer, name: str, size: int = 1) -> httpx.Response:
    return server.manila("POST", "/shares", json={"share": {"share_proto": "LOCALFS", "size": size, "name": name}})


def leaked(server: ShareServer, share_id: str) -> list[str]:
    """What of a deleted share is still on the host."""
    backend = LocalBackend(server.home / "storage")
    found = [f"image {backend.image(share_id)}"] if backend.image(share_id).exists() else []
    loops = subprocess.run(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"],
                           capture_output=True, text=True).stdout
    found += [line for line in loops.splitlines() if share_id in line]
    found += [m for m in mounts.mounts_under(server.home) if share_id in m]
    return found


def test_crash_at_every_step_of_create(server: ShareServer) -> None:
    for i, step in enumerate(s for s in CREATE for _ in (0, 1)):
        when = ("before", "after")[i % 2]
        server.crash_during(f"share_create:{step}:{when}", lambda n=f"c{i}": create(server, n))
        share = server.wait_share(f"c{i}", {"available", "error"})
        assert share is not None and share["status"] == "available", (step, when, share)
        locations = server.manila("GET", f"/shares/{share['id']}/export_locations").json()["export_locations"]
        assert [loc["path"] for loc in locations] == [str(LocalBackend(server.home / "storage").home(share["id"]))]


@pytest.mark.parametrize("op", ["extend", "shrink"])
def test_crash_at_every_step_of_a_resize(server: ShareServer, op: str) -> None:
    assert create(server, "r", size=5).status_code == 202
    size = server.wait_share("r", {"available"})["size"]
    for i, step in enumerate(s for s in CHANGE[op] for _ in (0, 1)):
        when = ("before", "after")[i % 2]
        size += 1 if op == "extend" else -1
        server.crash_during(f"share_{op}:{step}:{when}", lambda s=size: server.manila(
            "POST", "/shares/r/action", json={op: {"new_size": s}}))
        share = server.wait_share("r", {"available", f"{op}ing_error"})
        assert (share["status"], share["size"]) == ("available", size), (step, when, share)


def test_crash_at_every_step_of_delete(server: ShareServer) -> None:
    for i, step in enumerate(s for s in DELETE for _ in (0, 1)):
        when = ("before", "after")[i % 2]
        name = f"d{i}"
        assert create(server, name).status_code == 202
        share = server.wait_share(name, {"available"})
        # A rule, so the delete's `deny` has something to withdraw.
        server.manila("POST", f"/shares/{name}/action",
                      json={"allow_access": {"access_type": "floe_cluster", "access_to": "c1", "access_level": "rw"}})
        server.crash_during(f"share_delete:{step}:{when}", lambda n=name: server.manila("DELETE", f"/shares/{n}"))
        assert server.wait_share(share["id"], {"gone", "error_deleting"}) is None, (step, when)
        assert leaked(server, share["id"]) == [], (step, when)


def test_crash_at_every_step_of_allow_and_deny(server: ShareServer) -> None:
    assert create(server, "a").status_code == 202
    server.wait_share("a", {"available"})
    for i, when in enumerate(("before", "after")):
        to = f"c{i}"
        server.crash_during(f"share_access:allow:{when}", lambda t=to: server.manila(
            "POST", "/shares/a/action",
            json={"allow_access": {"access_type": "floe_cluster", "access_to": t, "access_level": "rw"}}))
        end = time.monotonic() + 30
        while not any(r["access_to"] == to and r["state"] == "active" for r in server.rules("a")):
            assert time.monotonic() < end, (when, server.rules("a"))
            time.sleep(0.1)
    for when in ("before", "after"):
        rule = server.rules("a")[0]
        server.crash_during(f"share_access:revoke:{when}", lambda r=rule: server.manila(
            "POST", "/shares/a/action", json={"deny_access": {"access_id": r["id"]}}))
        end = time.monotonic() + 30
        while any(r["id"] == rule["id"] for r in server.rules("a")):
            assert time.monotonic() < end, (when, server.rules("a"))
            time.sleep(0.1)
    assert server.rules("a") == []


@pytest.mark.parametrize("when", ["before", "after"])
def test_crash_bringing_a_share_online(server: ShareServer, when: str) -> None:
    """`ensure` runs on every pass of a usable share: a crash there (the first pass after the
    create) leaves the share available, and the restarted server brings it online."""
    server.crash_during(f"share_online:ensure:{when}", lambda: create(server, "o"))
    share = server.wait_share("o", {"available"})
    backend = LocalBackend(server.home / "storage")
    end = time.monotonic() + 30
    while not mounts.is_mount_point(backend.home(share["id"])):
        assert time.monotonic() < end, "the share is not online again"
        time.sleep(0.1)
