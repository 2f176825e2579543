"""python-manilaclient (and `openstack share …`) against floe: a real uvicorn server with the real
storage worker and the local backend (loop devices, mkfs, mounts), so shares really become
available and really go away."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from manilaclient import client as manila_client
from manilaclient import exceptions

from floe.engine import share_work
from floe.host import mounts
from floe.storage.local import LocalBackend

from .conftest import Live, free_port, make_env

OPENSTACK = Path(sys.executable).parent / "openstack"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the local share backend needs root (loop devices, mounts)"),
    pytest.mark.timeout(180),
]


@pytest.fixture(scope="module")
def shares_live(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path) -> Iterator[Live]:
    """The app under uvicorn with a running storage worker (no infra provider: no clusters)."""
    env = make_env(tmp_path_factory.mktemp("manila-home"), migrated_db)
    worker, _ = share_work.standalone(env.runtime, poll=0.1)
    worker.start()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(env.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    try:
        yield Live(url=f"http://127.0.0.1:{port}", env=env)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        worker.stop()
        env.runtime.engine.stop(wait=False)  # type: ignore[union-attr]
        env.db.dispose()
        home = env.runtime.settings.home
        LocalBackend(home / "storage").purge(delete_data=True)
        mounts.unmount_tree(home)
        assert mounts.mounts_under(home) == []


@pytest.fixture(params=["2.0", "2.45", "2.65"])
def mc(shares_live: Live, request: pytest.FixtureRequest):
    return manila_client.Client(request.param, input_auth_token=shares_live.env.admin_token,
                                service_catalog_url=shares_live.url + "/v2")


def wait_status(mc, share_id: str, want: str, timeout: float = 20) -> object:
    end = time.monotonic() + timeout
    share = None
    while time.monotonic() < end:
        try:
            share = mc.shares.get(share_id)
        except exceptions.NotFound:
            if want == "deleted":
                return None
            raise
        if share.status == want:
            return share
        assert "error" not in share.status, share._info
        time.sleep(0.05)
    raise AssertionError(f"share {share_id} did not become {want}: {share and share._info}")


def rules_of(mc, share) -> list:
    """Access rules the way this microversion lists them (an action before 2.45, a resource since)."""
    if mc.api_version >= mc.api_version.__class__("2.45"):
        return mc.share_access_rules.access_list(share)
    return share.access_list()


def test_share_lifecycle(mc, shares_live: Live) -> None:
    version = mc.api_version.get_string()
    name = f"mc-{version.replace('.', '-')}"
    started = time.monotonic()
    share = mc.shares.create("LOCALFS", 1, name=name, description="from manilaclient", metadata={"k": "v"},
                             share_type="local")
    assert share.status == "creating" and share.size == 1 and share.name == name
    share = wait_status(mc, share.id, "available")
    print(f"\nshare create to available: {time.monotonic() - started:.3f}s (api {version})")
    assert share.share_proto == "LOCALFS" and share.metadata == {"k": "v"}
    assert [s.id for s in mc.shares.list() if s.name == name] == [share.id]
    assert mc.shares.get(name).id == share.id if version != "2.0" else True

    if mc.api_version >= mc.api_version.__class__("2.9"):
        (loc,) = mc.share_export_locations.list(share.id)
        assert loc.path.endswith(f"/storage/local/mnt/{share.id}") and loc.preferred
        assert mounts.is_mount_point(loc.path)
    else:
        assert share.export_locations and share.export_location.endswith(share.id)

    # Access rules: manilaclient allows only Manila's types, so a cluster is named as `user`.
    rule = share.allow("user", "clu1", "ro")
    assert rule["access_to"] == "clu1" and rule["access_level"] == "ro"
    end = time.monotonic() + 10
    while True:
        rules = rules_of(mc, share)
        if rules and rules[0].state == "active" or time.monotonic() > end:
            break
        time.sleep(0.05)
    assert [(r.access_to, r.state) for r in rules] == [("clu1", "active")]
    assert [r.id for r in rules] == [rule["id"]]
    with pytest.raises(exceptions.BadRequest):
        share.allow("user", "clu1", "rw")  # the same cluster twice
    share.deny(rule["id"])
    end = time.monotonic() + 10
    while rules_of(mc, share) and time.monotonic() < end:
        time.sleep(0.05)
    assert rules_of(mc, share) == []

    mc.shares.update(share.id, display_name=f"{name}-renamed")
    assert mc.shares.get(share.id).name == f"{name}-renamed"
    share.extend(2)
    assert wait_status(mc, share.id, "available").size == 2
    share.shrink(1)
    assert wait_status(mc, share.id, "available").size == 1

    share.delete()
    assert wait_status(mc, share.id, "deleted") is None
    assert not Path(shares_live.env.runtime.settings.home / "storage/local/images" / f"{share.id}.img").exists()


def test_share_types(mc) -> None:
    types = {t.name: t for t in mc.share_types.list()}
    assert "local" in types
    assert types["local"].get_keys()["storage_protocol"] == "LOCALFS"
    assert mc.share_types.get("default").name == "local" if mc.api_version.get_string() != "2.0" else True


def test_errors_change_nothing(mc, shares_live: Live) -> None:
    before = len(mc.shares.list())
    with pytest.raises(exceptions.BadRequest, match="whole number"):
        mc.shares.create("LOCALFS", 0)
    with pytest.raises(exceptions.BadRequest, match="protocol"):
        mc.shares.create("NFS", 1)
    with pytest.raises(exceptions.BadRequest, match="not found"):
        mc.shares.create("LOCALFS", 1, share_type="ceph")
    with pytest.raises(exceptions.RequestEntityTooLarge, match="Quota exceeded for gigabytes"):
        mc.shares.create("LOCALFS", 100000)
    with pytest.raises(exceptions.NotFound):
        mc.shares.get("no-such-share")
    assert len(mc.shares.list()) == before


def test_openstack_share_cli(shares_live: Live) -> None:
    """`openstack share …` commands, run in one interactive openstack session (its start-up is slow)."""
    if not OPENSTACK.exists():
        pytest.skip("python-openstackclient is not installed")
    cmd = [str(OPENSTACK), "--os-auth-type", "admin_token", "--os-endpoint", f"{shares_live.url}/v2",
           "--os-token", shares_live.env.admin_token]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    script = "\n".join([
        "share create LOCALFS 1 --name osc-share -f json",
        "share access create osc-share user some-cluster -f json",
        "share list -f json",
        "share show osc-share -f json",
        "share export location list osc-share -f json",
        "share delete osc-share",
        "share list -f json",
    ]) + "\n"
    # Interactive mode (commands on stdin) exits 1 at the end of its input: judge the outputs.
    proc = subprocess.run(cmd, input=script, capture_output=True, text=True, timeout=120, env=env)
    docs = [json.loads(d) for d in _json_documents(proc.stdout)]
    assert len(docs) == 6, (proc.stdout, proc.stderr)
    created, rule, listed, shown, locations, after = docs
    assert created["status"] == "creating" and created["share_type_name"] == "local"
    assert rule["access_to"] == "some-cluster" and rule["access_type"] == "user"
    assert "osc-share" in [s["Name"] for s in listed]
    assert shown["status"] == "available" and shown["id"] == created["id"]
    assert locations[0]["Path"].endswith(created["id"])
    assert [s["Status"] for s in after if s["Name"] == "osc-share"] in ([], ["deleting"])


def _json_documents(text: str) -> list[str]:
    """The JSON documents printed one after another (an interactive session's outputs)."""
    decoder = json.JSONDecoder()
    docs, i = [], 0
    while True:
        start = min((p for p in (text.find("{", i), text.find("[", i)) if p >= 0), default=-1)
        if start < 0:
            return docs
        obj, end = decoder.raw_decode(text, start)
        docs.append(json.dumps(obj))
        i = end
