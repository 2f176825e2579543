"""`kill -9` of the server at every step of attaching and detaching a share (the steps that need
nodes receiving mounts, so the local provider), then a restart: the attachment ends attached and
verified in the node, or gone with no mount left; the share's other operations are crash-tested
on the simulated provider in tests/engine/test_share_crash.py.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.e2e.conftest import FloeServer
from tests.e2e.test_crash import crash_during
from tests.e2e.test_shares import floe_json, loops_of, mounts_of

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


@pytest.fixture(scope="module")
def template(server: FloeServer) -> str:
    server.floe("template", "create", "swarm-share-crash", "--coe", "swarm")
    return "swarm-share-crash"


def wait_mounts(server: FloeServer, cluster: str, want, timeout: float = 90) -> list:
    end = time.monotonic() + timeout
    found: list = []
    while time.monotonic() < end:
        found = floe_json(server, "cluster", "shares", cluster)
        if want(found):
            return found
        time.sleep(0.3)
    raise AssertionError(f"shares of {cluster}: {found}")


def test_crash_at_every_step_of_attach_and_detach(server: FloeServer, template: str) -> None:
    share = floe_json(server, "share", "create", "1", "--name", "crashed", "--wait")
    server.floe("share", "access", "allow", "crashed", "--cluster", "shc")
    server.floe("cluster", "create", "shc", "--template", template, "--node-count", "0", "--wait")
    for when in ("before", "after"):
        crash_during(server, f"share_attach:attach:{when}", "cluster", "attach", "shc", "--share", "crashed")
        (m,) = wait_mounts(server, "shc", lambda ms: [x["state"] for x in ms] == ["attached"])
        assert m["nodes"] == ["shc-master-0"], (when, m)  # verified in the node after the restart
        crash_during(server, f"share_detach:detach:{when}", "cluster", "detach", "shc", "--share", "crashed")
        wait_mounts(server, "shc", lambda ms: ms == [])
        assert [p for p in mounts_of(server.home) if p.endswith("/crashed")] == [], when
    server.floe("cluster", "delete", "shc", "--wait")
    server.floe("share", "delete", "crashed", "--wait")
    assert not (server.home / "storage/local/images" / f"{share['id']}.img").exists()
    assert [line for line in loops_of(server.home) if share["id"] in line] == []
    assert [p for p in mounts_of(server.home) if share["id"] in p or p.endswith("/crashed")] == []
