"""`openstack coe quotas …`, `openstack coe stats list` and `openstack share quota …` (the real
installed clients) against a real server.

The coe commands use the admin_token auth type (every service at one endpoint, as in
test_openstack_cli.py). `share quota` first looks the project up in Keystone, so it signs in to
floe's Keystone API (/identity/v3) as the admin user and finds /v2 in the service catalog.
"""

from __future__ import annotations

import json
import os
import subprocess

import httpx
import pytest
from sqlalchemy import select

from floe.db.models import Project

from .conftest import Live
from .test_openstack_cli import OPENSTACK, openstack

pytestmark = pytest.mark.skipif(not OPENSTACK.exists(), reason="python-openstackclient is not installed")


def _project(live: Live, name: str) -> str:
    with live.env.db.session() as s:
        found = s.scalars(select(Project.id).where(Project.name == name)).first()
    if found is None:
        live.env.new_project(name)
        return _project(live, name)
    return found


def _table(text: str) -> dict[str, str]:
    """magnumclient's Property/Value table as a dict."""
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and line.startswith("|") and cells[0] != "Property":
            out[cells[0]] = cells[1]
    return out


def test_openstack_coe_quotas_and_stats(live: Live) -> None:
    pid = _project(live, "cli-quota")
    made = _table(openstack(live, "coe", "quotas", "create", "--project-id", pid, "--resource", "Cluster",
                            "--hard-limit", "1").stdout)
    assert made["resource"] == "Cluster" and made["hard_limit"] == "1" and made["project_id"] == pid
    listed = openstack(live, "coe", "quotas", "list", "--all-tenants").stdout
    assert pid in listed and "Cluster" in listed
    shown = _table(openstack(live, "coe", "quotas", "show", "--project-id", pid, "--resource", "Cluster").stdout)
    assert shown["id"] == made["id"]
    updated = _table(openstack(live, "coe", "quotas", "update", "--project-id", pid, "--resource", "Cluster",
                               "--hard-limit", "2").stdout)
    assert updated["hard_limit"] == "2"
    # Refused: the plugin prints the error (and exits 0); nothing changes.
    out = openstack(live, "coe", "quotas", "create", "--project-id", pid, "--resource", "Volume").stdout
    assert "failed" in out and "Invalid resource" in out
    out = openstack(live, "coe", "quotas", "update", "--project-id", pid, "--resource", "Cluster",
                    "--hard-limit", "-7").stdout
    assert "failed" in out and "hard_limit" in out
    assert _table(openstack(live, "coe", "quotas", "show", "--project-id", pid, "--resource", "Cluster").stdout)[
        "hard_limit"] == "2"

    # Stats: clusters and nodes of the project (a cluster made in it by its own token).
    token = live.env.new_project("cli-stats")
    sid = _project(live, "cli-stats")
    headers = {"X-Auth-Token": token}
    httpx.post(f"{live.url}/v1/clustertemplates", headers=headers,
               json={"coe": "swarm", "name": "st"}).raise_for_status()
    httpx.post(f"{live.url}/v1/clusters", headers=headers,
               json={"cluster_template_id": "st", "name": "s1", "node_count": 2}).raise_for_status()
    stats = _table(openstack(live, "coe", "stats", "list", sid).stdout)
    assert stats == {"clusters": "1", "nodes": "3"}

    openstack(live, "coe", "quotas", "delete", "--project-id", pid, "--resource", "Cluster")
    shown = _table(openstack(live, "coe", "quotas", "show", "--project-id", pid, "--resource", "Cluster").stdout)
    assert shown["id"] == "-" and shown["hard_limit"] == "-1"  # the default again (no id)


def _keystone(live: Live, *args: str) -> subprocess.CompletedProcess:
    password_file = live.env.runtime.settings.home / "admin-password"
    if not password_file.exists() or httpx.get(f"{live.url}/identity/v3").status_code != 200:
        pytest.skip("this floe has no Keystone API to look projects up in")
    cmd = [str(OPENSTACK), "--os-auth-url", f"{live.url}/identity/v3", "--os-identity-api-version", "3",
           "--os-username", "admin", "--os-password", password_file.read_text().strip(),
           "--os-project-name", "admin", "--os-user-domain-name", "Default", "--os-project-domain-name", "Default",
           *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


def test_openstack_share_quota_show_and_set(live: Live) -> None:
    pid = _project(live, "cli-share-quota")

    def show(*extra: str) -> dict:
        proc = _keystone(live, "--os-share-api-version", "2.65", "share", "quota", "show", "cli-share-quota",
                         "-f", "json", *extra)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    assert (show()["shares"], show()["gigabytes"]) == (50, 1000)
    proc = _keystone(live, "share", "quota", "set", "cli-share-quota", "--shares", "7", "--gigabytes", "9")
    assert proc.returncode == 0, proc.stderr
    shown = show()
    assert (shown["id"], shown["shares"], shown["gigabytes"]) == (pid, 7, 9)
    assert "limit = 9" in show("--detail")["gigabytes"]
    assert show("--defaults")["gigabytes"] == 1000
    proc = _keystone(live, "share", "quota", "set", "cli-share-quota", "--shares", "-4")
    assert proc.returncode != 0 and "-1 (unlimited)" in proc.stderr
    proc = _keystone(live, "share", "quota", "set", "cli-share-quota", "--snapshots", "4")
    assert proc.returncode != 0 and "snapshots quota cannot be set" in proc.stderr
    assert show()["shares"] == 7
    proc = _keystone(live, "share", "quota", "delete", "cli-share-quota")
    assert proc.returncode == 0, proc.stderr
    assert show()["shares"] == 50
