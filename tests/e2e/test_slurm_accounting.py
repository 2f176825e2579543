"""Accounting and fair share on a real floe Slurm cluster (template label accounting=true).

ASSUMES the Slurm driver calls floe.coe.slurm.accounting (written before that integration):
  - with the label accounting=true, slurm.conf carries config.render's accounting lines
    (SlurmCluster.accounting = the primary controller's address), and start_accounting +
    register_cluster run on the primary controller before slurmctld starts;
  - after slurmctld, sync_associations(tools, cluster_name, accounts) runs with, at least for the
    cluster's own project, account_name(project name, project id) → the project's members' user
    names. A floe user named like a Unix user is that Slurm user.
Until the driver does this, the test fails at its first assertion (slurm.conf without slurmdbd).

Jobs run as two temporary Unix users (useradd, removed afterwards), submitted by root with
`sbatch --uid`. The heavy user fills both 1-CPU workers; once Slurm has charged that usage (the
decay thread runs every PriorityCalcPeriod, 1 minute), a job of the heavy user and then one of the
light user are queued: the light one, submitted later, must get the higher priority and the first
free node.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from floe.coe.slurm import accounting, config
from floe.coe.slurm.client import SlurmTools
from tests.e2e.conftest import FLOE, FloeServer, objects_of
from tests.e2e.test_swarm_cluster import _tag

PASSWORD = "fair-share-" + secrets.token_hex(6)


@pytest.fixture
def unix_users():
    """Two Unix users for the jobs (the nodes share the host's /etc/passwd), removed afterwards."""
    suffix = secrets.token_hex(3)
    names = [f"fsheavy{suffix}", f"fslight{suffix}"]
    made = []
    try:
        for n in names:
            subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", n], check=True, capture_output=True)
            made.append(n)
        yield names
    finally:
        for n in made:
            subprocess.run(["userdel", n], capture_output=True)


def _floe_stdin(server: FloeServer, stdin: str, *args: str) -> None:
    res = subprocess.run([FLOE, *args], env=server.env, input=stdin, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"floe {' '.join(args)}: {res.stdout}{res.stderr}"


def _token(server: FloeServer, user: str, project: str) -> str:
    body = {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": "Default"}, "password": PASSWORD}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}},
    }}
    resp = httpx.post(server.url + "/identity/v3/auth/tokens", json=body, timeout=30)
    assert resp.status_code == 201, resp.text
    return resp.headers["X-Subject-Token"]


def _sbatch(slurm: SlurmTools, user: str, account: str, name: str, seconds: int) -> str:
    return slurm.run("sbatch", "--parsable", f"--uid={user}", f"--account={account}", "-J", name,
                     "-o", "/dev/null", "--chdir=/", "--wrap", f"sleep {seconds}").stdout.strip().split(";")[0]


def _wait(predicate, timeout: float, what: str, poll: float = 0.5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"waited {timeout:.0f}s for {what}")


def _sshare(slurm: SlurmTools) -> dict[tuple[str, str], dict[str, str]]:
    out = slurm.run("sshare", "-a", "-n", "-P", "-o", "Account,User,RawUsage,FairShare").stdout
    rows = {}
    for line in out.splitlines():
        account, user, raw, fs = (line.split("|") + ["", "", "", ""])[:4]
        rows[(account.strip(), user.strip())] = {"raw": raw, "fairshare": fs}
    return rows


def test_fair_share_and_accounting(server: FloeServer, unix_users: list[str]):
    heavy, light = unix_users
    project = f"fairshare-{secrets.token_hex(3)}"
    server.floe("project", "create", project)
    for user in (heavy, light):
        _floe_stdin(server, PASSWORD + "\n", "user", "create", user, "--password-stdin", "--project", project)
        server.floe("role", "add", "member", "--project", project, "--user", user)
    project_id = json.loads(server.floe("project", "show", project, "-f", "json").stdout)["id"]
    account = accounting.account_name(project, project_id)

    # Everything below as a member of the project (the cluster is the project's).
    token = _token(server, heavy, project)

    def member_floe(*args: str, check: bool = True) -> str:
        res = subprocess.run([FLOE, *args], env={**server.env, "FLOE_TOKEN": token}, capture_output=True,
                             text=True, timeout=600)
        assert res.returncode == 0 or not check, f"floe {' '.join(args)}: {res.stdout}{res.stderr}"
        return res.stdout

    member_floe("template", "create", "slurm-acct", "--coe", "slurm", "--flavor", "m1.tiny",
                "--master-flavor", "m1.small", "--label", "accounting=true")
    t0 = time.monotonic()
    member_floe("cluster", "create", "acct", "--template", "slurm-acct", "--node-count", "2", "--wait")
    print(f"cluster with accounting created in {time.monotonic() - t0:.1f}s")
    tag = _tag(server, "acct")
    files = server.home / "nodes" / tag / ".cluster"
    try:
        conf = (files / "slurm.conf").read_text()
        assert "AccountingStorageType=accounting_storage/slurmdbd" in conf, "the driver did not turn accounting on"
        assert "PriorityType=priority/multifactor" in conf
        assert (files / accounting.DBD_CONF).stat().st_mode & 0o777 == 0o600  # it holds the database password
        cluster = json.loads(member_floe("cluster", "show", "acct", "-f", "json"))
        cluster_name = config.cluster_name("acct", cluster["uuid"])
        slurm = SlurmTools(files / "slurm.conf")

        # The host's sacctmgr reaches slurmdbd; the cluster is registered, its project is an account.
        assert accounting.registered(slurm, cluster_name)
        assoc = _wait(lambda: (a := accounting.associations(slurm, cluster_name)).get(account, set()) >= {heavy, light}
                      and a, 60, f"users {heavy} and {light} in account {account}")
        assert "root" in assoc

        # The heavy user fills both workers; wait until Slurm has charged the usage.
        fillers = [_sbatch(slurm, heavy, account, f"fill{i}", 600) for i in (1, 2)]
        _wait(lambda: all(slurm.show_job(j)["JobState"] == "RUNNING" for j in fillers), 60, "the fillers to run")
        t1 = time.monotonic()
        shares = _wait(lambda: (s := _sshare(slurm)).get((account, heavy), {}).get("raw", "0") not in ("", "0") and s,
                       150, f"{heavy}'s usage in sshare")
        print(f"usage charged after {time.monotonic() - t1:.1f}s: {shares}")
        assert float(shares[(account, heavy)]["fairshare"]) < float(shares[(account, light)]["fairshare"])

        # Queued in this order: heavy first, then light.
        late_heavy = _sbatch(slurm, heavy, account, "heavy2", 5)
        late_light = _sbatch(slurm, light, account, "light1", 5)
        prio = {j: int(slurm.show_job(j)["Priority"]) for j in (late_heavy, late_light)}
        print(f"priorities: heavy {prio[late_heavy]}, light {prio[late_light]}")
        assert prio[late_light] > prio[late_heavy]

        # One node frees: the light user's later job takes it; the heavy one keeps waiting.
        slurm.run("scancel", fillers[0])
        _wait(lambda: slurm.show_job(late_light)["JobState"] in ("RUNNING", "COMPLETED"), 60, "light1 to start")
        assert slurm.show_job(late_heavy)["JobState"] == "PENDING"
        slurm.run("scancel", fillers[1])
        _wait(lambda: all(slurm.show_job(j)["JobState"] == "COMPLETED" for j in (late_heavy, late_light)), 90,
              "both late jobs to finish")

        # sacct: the finished jobs, with their users and account (records reach slurmdbd shortly after).
        def finished():
            out = slurm.run("sacct", "-X", "-a", "-n", "-P", "-S", "now-1hour",
                            "-o", "JobID,User,Account,State,Start").stdout
            rows = {r.split("|")[0]: r.split("|") for r in out.splitlines()}
            return rows if {late_heavy, late_light} <= {j for j, r in rows.items() if r[3] == "COMPLETED"} else None
        rows = _wait(finished, 30, "sacct to list the finished jobs")
        assert rows[late_heavy][1:3] == [heavy, account] and rows[late_light][1:3] == [light, account]
        assert rows[late_light][4] <= rows[late_heavy][4]  # ISO times: light started first
    finally:
        member_floe("cluster", "delete", "acct", "--wait", check=False)

    # MariaDB and slurmdbd went with the controller node; the datadir with the cluster's files.
    assert not any(objects_of(server.home, tag).values()), objects_of(server.home, tag)
    assert not files.exists()
    assert not [p for p in Path("/proc").glob("[0-9]*") if _argv_mentions(p, str(files))]
    member_floe("template", "delete", "slurm-acct", check=False)


def _argv_mentions(proc: Path, text: str) -> bool:
    try:
        return text in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False


pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, useradd, sbatch --uid)")
