"""The `openstack` CLI (python-openstackclient + magnumclient's plugin) against the real server.

Without Keystone, the admin_token auth type points the CLI straight at floe:

    openstack --os-auth-type admin_token --os-endpoint http://HOST:9511/v1 --os-token TOKEN \\
        coe cluster list

`--os-endpoint` is the endpoint every service resolves to, so no service catalog is consulted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import delete

from floe.db.models import Cluster

from .conftest import Live

OPENSTACK = Path(sys.executable).parent / "openstack"

pytestmark = pytest.mark.skipif(not OPENSTACK.exists(), reason="python-openstackclient is not installed")


def openstack(live: Live, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [str(OPENSTACK), "--os-auth-type", "admin_token", "--os-endpoint", f"{live.url}/v1",
           "--os-token", live.env.admin_token, *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["SHELL"] = "/bin/bash"  # magnumclient's `cluster config` reads it
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_templates_and_clusters(live: Live, tmp_path: Path) -> None:
    openstack(live, "coe", "cluster", "template", "create", "--coe", "swarm-mode", "--image", "floe-node",
              "--external-network", "none", "--labels", "a=b", "cli-tpl")
    templates = json.loads(openstack(live, "coe", "cluster", "template", "list", "-f", "json").stdout)
    assert [t["name"] for t in templates if t["name"] == "cli-tpl"] == ["cli-tpl"]
    shown = json.loads(openstack(live, "coe", "cluster", "template", "show", "cli-tpl", "-f", "json").stdout)
    assert shown["coe"] == "swarm-mode" and shown["labels"] == {"a": "b"}

    out = openstack(live, "coe", "cluster", "create", "--cluster-template", "cli-tpl", "--node-count", "2",
                    "cli-cluster").stdout
    assert "accepted" in out
    clusters = json.loads(openstack(live, "coe", "cluster", "list", "-f", "json").stdout)
    (row,) = [c for c in clusters if c["name"] == "cli-cluster"]
    assert row["status"] == "CREATE_IN_PROGRESS" and row["node_count"] == 2
    shown = json.loads(openstack(live, "coe", "cluster", "show", "cli-cluster", "-f", "json").stdout)
    assert shown["uuid"] == row["uuid"] and shown["labels"] == {"a": "b"}

    # `coe cluster config`: CA from GET /v1/certificates, a client cert from POST /v1/certificates.
    live.env.give_ca(row["uuid"])
    live.env.finish_create(row["uuid"], api_address="tcp://10.160.4.2:2376")
    config = openstack(live, "coe", "cluster", "config", "cli-cluster", "--dir", str(tmp_path),
                       "--output-certs").stdout
    assert "export DOCKER_HOST=tcp://10.160.4.2:2376" in config
    assert "DOCKER_TLS_VERIFY=True" in config
    assert {p.name for p in tmp_path.iterdir()} == {"ca.pem", "cert.pem", "key.pem"}

    openstack(live, "coe", "cluster", "update", "cli-cluster", "--node-count", "3")
    assert live.env.operations(row["uuid"])[-1].params == {"node_count": 3}

    # Still used by cli-cluster (the plugin reports the failure but exits 0).
    failed = openstack(live, "coe", "cluster", "template", "delete", "cli-tpl", check=False)
    assert "HTTP 400" in failed.stdout + failed.stderr

    openstack(live, "coe", "cluster", "delete", "cli-cluster")
    assert live.env.cluster(row["uuid"]).status == "DELETE_IN_PROGRESS"
    with live.env.db.session() as s:  # what the engine does when the delete ends
        s.execute(delete(Cluster).where(Cluster.uuid == row["uuid"]))
    openstack(live, "coe", "cluster", "template", "delete", "cli-tpl")


def test_errors_reach_the_user(live: Live) -> None:
    proc = openstack(live, "coe", "cluster", "show", "no-such-cluster", check=False)
    assert proc.returncode != 0
    assert "HTTP 404" in proc.stderr and "Traceback" not in proc.stderr


def test_slurm_templates_and_controller_counts(live: Live) -> None:
    """`--coe slurm` with the stock client; a Slurm cluster takes 1 or 2 masters (a controller and
    its backup), where a Swarm one needs an odd count."""
    openstack(live, "coe", "cluster", "template", "create", "--coe", "slurm", "--image", "floe-node",
              "--external-network", "none", "--flavor", "m1.tiny", "slurm-tpl")
    shown = json.loads(openstack(live, "coe", "cluster", "template", "show", "slurm-tpl", "-f", "json").stdout)
    assert shown["coe"] == "slurm" and shown["flavor_id"] == "m1.tiny"
    out = openstack(live, "coe", "cluster", "create", "--cluster-template", "slurm-tpl", "--master-count", "2",
                    "--node-count", "3", "slurm-ha").stdout
    assert "accepted" in out
    row = json.loads(openstack(live, "coe", "cluster", "show", "slurm-ha", "-f", "json").stdout)
    assert row["master_count"] == 2 and row["node_count"] == 3
    bad = openstack(live, "coe", "cluster", "create", "--cluster-template", "slurm-tpl", "--master-count", "3",
                    "slurm-three", check=False)
    assert "at most one backup" in bad.stdout + bad.stderr
    openstack(live, "coe", "cluster", "template", "create", "--coe", "swarm-mode", "--image", "floe-node",
              "--external-network", "none", "swarm-tpl2")
    bad = openstack(live, "coe", "cluster", "create", "--cluster-template", "swarm-tpl2", "--master-count", "2",
                    "swarm-two", check=False)
    assert "is even" in bad.stdout + bad.stderr
    names = [c["name"] for c in json.loads(openstack(live, "coe", "cluster", "list", "-f", "json").stdout)]
    assert "slurm-three" not in names and "swarm-two" not in names
