"""slurm.conf as floe writes it: names Slurm accepts for any floe name, partitions per nodegroup,
what the nodes really have, and the settings the local nodes need (checked by Slurm itself in
tests/e2e/test_slurm_cluster.py; here the text)."""

from __future__ import annotations

import re

import pytest

from floe.coe.slurm import config
from floe.coe.slurm.client import parse_record
from floe.coe.slurm.driver import _base


def _cluster(**kw) -> config.SlurmCluster:
    nodes = [
        config.SlurmNode("c-node-0", "10.1.0.3", 1, 512, "batch"),
        config.SlurmNode("c-node-1", "10.1.0.4", 2, 4096, "batch"),
        config.SlurmNode("c-gpu-0", "10.1.0.5", 4, 8192, "gpu"),
    ]
    return config.SlurmCluster(name="c_1234abcd", files="/f", controllers=[("c-master-0", "10.1.0.2")],
                               nodes=nodes, **kw)


@pytest.mark.parametrize("name", ["a", "Ünïcödé-cluster", "x" * 255, "--", "UPPER_case.name", "ÿ"])
def test_cluster_name_is_what_slurm_accepts(name):
    got = config.cluster_name(name, "0123abcd-ef01-2345-6789-abcdef012345")
    assert re.fullmatch(r"[a-z0-9_]{1,40}", got), got
    assert got.endswith("_0123abcd")


def test_cluster_names_differ_by_uuid():
    assert config.cluster_name("same", "aaaaaaaa-0000") != config.cluster_name("same", "bbbbbbbb-0000")


@pytest.mark.parametrize("group,want", [
    ("default-worker", "batch"), ("gpu", "gpu"), ("DEFAULT", "DEFAULT_"), ("default", "default_"),
    ("a,b c", "a_b_c"), ("ü" * 3, "_"), ("x" * 100, "x" * 64),
])
def test_partition_names(group, want):
    assert config.partition_name(group) == want


def test_render_nodes_partitions_and_local_settings():
    text = config.render(_cluster())
    lines = text.splitlines()
    assert "SlurmctldHost=c-master-0(10.1.0.2)" in lines
    assert "AuthInfo=socket=/f/munge/munge.socket.2" in lines
    assert "StateSaveLocation=/f/state" in lines  # shared by the controllers
    assert f"SrunPortRange={config.SRUN_PORTS[0]}-{config.SRUN_PORTS[1]}" in lines
    assert "ProctrackType=proctrack/linuxproc" in lines and "TaskPlugin=task/none" in lines
    assert "NodeName=c-node-1 NodeAddr=10.1.0.4 NodeHostname=c-node-1 CPUs=2 RealMemory=4096 State=UNKNOWN" in lines
    parts = [ln for ln in lines if ln.startswith("PartitionName=")]
    assert parts == [
        "PartitionName=batch Nodes=c-node-0,c-node-1 Default=YES MaxTime=INFINITE State=UP",
        "PartitionName=gpu Nodes=c-gpu-0 Default=NO MaxTime=INFINITE State=UP",
    ]
    assert "AccountingStorageType=accounting_storage/none" in lines
    assert not any(ln.startswith("PriorityType") for ln in lines)


def test_backup_controller_and_an_empty_default_partition():
    c = config.SlurmCluster(name="c", files="/f", controllers=[("m0", "10.0.0.2"), ("m1", "10.0.0.3")],
                            nodes=[config.SlurmNode("g-0", "10.0.0.4", 1, 100, "gpu")])
    lines = config.render(c).splitlines()
    assert [ln for ln in lines if ln.startswith("SlurmctldHost")] == ["SlurmctldHost=m0(10.0.0.2)",
                                                                      "SlurmctldHost=m1(10.0.0.3)"]
    # The default group scaled to nothing keeps its partition, down: jobs for it wait.
    assert 'PartitionName=batch Nodes="" Default=YES MaxTime=INFINITE State=DOWN' in lines


def test_accounting_turns_on_fair_share():
    lines = config.render(_cluster(accounting="10.1.0.2")).splitlines()
    assert "AccountingStorageType=accounting_storage/slurmdbd" in lines
    assert "AccountingStorageHost=10.1.0.2" in lines
    assert "PriorityType=priority/multifactor" in lines


def test_task_prolog_points_jobs_at_the_nodes_dockerd_and_mpi_at_the_cluster_network():
    text = config.task_prolog("10.1.0.0/24")
    assert 'echo "export DOCKER_HOST=unix:///run/docker.sock"' in text
    assert "OMPI_MCA_btl_tcp_if_include=10.1.0.0/24" in text
    assert text.rstrip().endswith("exit 0")


def test_parse_slurmd_c():
    out = "NodeName=n CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105\nUpTime=1\n"
    assert config.parse_slurmd_c(out) == (2, 24105)
    with pytest.raises(ValueError):
        config.parse_slurmd_c("slurmd: error: something")


def test_node_state_flags_and_records():
    assert _base("idle*") == "idle" and _base("drained~") == "drained" and _base("MIXED") == "mixed"
    rec = parse_record("JobId=12 JobName=x JobState=COMPLETED Reason=None ExitCode=0:0")
    assert rec["JobState"] == "COMPLETED" and rec["ExitCode"] == "0:0"
