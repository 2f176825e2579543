"""slurm.conf of a floe cluster, written from the cluster's state (the same file on every node).

Every node of a local cluster sees the cluster's files directory at the same host path, so the
one file there is the configuration of slurmctld, every slurmd and the host's Slurm clients.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

CTLD_PORT = 6817
SLURMD_PORT = 6818
DBD_PORT = 6819  # slurmdbd (accounting), on the primary controller node
# Where srun (on the host) listens for its tasks' I/O: the nodes may reach the host there only.
SRUN_PORTS = (60001, 60999)
MUNGE_SOCKET = "munge/munge.socket.2"
# A node's own /run is a tmpfs of its mount namespace: pidfiles there are the node's alone.
SLURMD_PIDFILE = "/run/slurmd.pid"
CTLD_PIDFILE = "/run/slurmctld.pid"
SLURMD_SPOOL = "/run/slurmd"
# The task prolog runs as the job's user, who cannot read floe's home: each node has a copy.
TASK_PROLOG_PATH = "/run/floe-task-prolog"


@dataclass(frozen=True)
class SlurmNode:
    name: str
    address: str
    cpus: int
    memory_mb: int
    partition: str


@dataclass(frozen=True)
class SlurmCluster:
    name: str  # Slurm's ClusterName: lower case, see cluster_name()
    files: str  # the cluster's files directory, the same path on the host and every node
    controllers: list[tuple[str, str]]  # (node name, address): primary first, then the backup
    nodes: list[SlurmNode]
    default_partition: str = "batch"
    accounting: str | None = None  # slurmdbd host address when accounting is on


def cluster_name(name: str, uuid: str) -> str:
    """Slurm's ClusterName for a floe cluster: lower case letters, digits and '_' (it names
    accounting tables), at most 40 characters, unique by the uuid's start."""
    slug = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")[:24] or "cluster"
    return f"{slug}_{uuid.replace('-', '')[:8]}"


def partition_name(nodegroup: str) -> str:
    """A Slurm partition for a nodegroup: default-worker is `batch`; others keep their name, safe
    characters only (Slurm splits partition lists on ','; `DEFAULT` is its keyword for defaults)."""
    if nodegroup == "default-worker":
        return "batch"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodegroup)[:64] or "group"
    return f"{name}_" if name.lower() == "default" else name


def render(c: SlurmCluster) -> str:
    lines = [
        "# Written by floe from the cluster's state; floe rewrites it on every change.",
        f"ClusterName={c.name}",
        *(f"SlurmctldHost={name}({addr})" for name, addr in c.controllers),
        f"SlurmctldPort={CTLD_PORT}",
        f"SlurmdPort={SLURMD_PORT}",
        f"SrunPortRange={SRUN_PORTS[0]}-{SRUN_PORTS[1]}",
        "AuthType=auth/munge",
        f"AuthInfo=socket={c.files}/{MUNGE_SOCKET}",
        "CredType=cred/munge",
        "SlurmUser=root",
        "SlurmdUser=root",
        # On the cluster's files directory, which both controllers see: a backup that takes
        # over has every queued job.
        f"StateSaveLocation={c.files}/state",
        # The node's own /run: pmix finds its peers' step sockets there by the literal path.
        f"SlurmdSpoolDir={SLURMD_SPOOL}",
        f"SlurmctldPidFile={CTLD_PIDFILE}",
        f"SlurmdPidFile={SLURMD_PIDFILE}",
        # slurmd's and its job steps' log (slurmstepd has no stderr), readable from the host.
        f"SlurmdLogFile={c.files}/log/slurmd-%n.log",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        f"TaskProlog={TASK_PROLOG_PATH}",
        "ReturnToService=2",
        "SchedulerType=sched/backfill",
        # Batch jobs are scheduled when submitted (Slurm's default waits 3 s to batch them up).
        "SchedulerParameters=batch_sched_delay=0,sched_min_interval=100000",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",
        "MpiDefault=none",
        "PropagateResourceLimits=NONE",
        # slurmctld talks to every slurmd itself: no fan-out through nodes whose view of the
        # node list could lag a resize.
        "TreeWidth=65533",
        "SlurmctldTimeout=10",
        "SlurmdTimeout=30",
        "MessageTimeout=10",
        "InactiveLimit=0",
        "KillWait=10",
        "Waittime=0",
        "MinJobAge=3600",
        "JobCompType=jobcomp/none",
        "MailProg=/bin/true",
    ]
    if c.accounting:
        lines += [
            "JobAcctGatherType=jobacct_gather/linux",
            "JobAcctGatherFrequency=30",
            "AccountingStorageType=accounting_storage/slurmdbd",
            f"AccountingStorageHost={c.accounting}",
            f"AccountingStoragePort={DBD_PORT}",
            # Slurm's clients and slurmctld sign what they send slurmdbd with the munge socket
            # named here, not AuthInfo's (without it they look for /run/munge and fail).
            f"AccountingStoragePass={c.files}/{MUNGE_SOCKET}",
            "AccountingStorageEnforce=associations",
            "PriorityType=priority/multifactor",
            "PriorityWeightFairshare=100000",
            "PriorityWeightAge=100",
            "PriorityDecayHalfLife=1-0",
            "PriorityCalcPeriod=1",
        ]
    else:
        lines += ["AccountingStorageType=accounting_storage/none", "JobAcctGatherType=jobacct_gather/none"]
    lines.append("")
    for n in c.nodes:
        lines.append(
            f"NodeName={n.name} NodeAddr={n.address} NodeHostname={n.name} CPUs={n.cpus} "
            f"RealMemory={n.memory_mb} State=UNKNOWN"
        )
    partitions: dict[str, list[str]] = {}
    for n in c.nodes:
        partitions.setdefault(n.partition, []).append(n.name)
    partitions.setdefault(c.default_partition, [])
    for part, names in sorted(partitions.items(), key=lambda kv: (kv[0] != c.default_partition, kv[0])):
        default = "YES" if part == c.default_partition else "NO"
        # A partition with no node yet (a group scaled to 0) is kept, down, so jobs for it wait.
        nodes = ",".join(names) if names else '""'
        state = "UP" if names else "DOWN"
        lines.append(f"PartitionName={part} Nodes={nodes} Default={default} MaxTime=INFINITE State={state}")
    return "\n".join(lines) + "\n"


# mpi.conf beside slurm.conf: PMIx's per-step client directories on the node's own /run (its
# default, /tmp, is the host's, which every node shares: two nodes' steps would collide there).
MPI_CONF = f"""# Written by floe.
PMIxCliTmpDirBase={SLURMD_SPOOL}
"""


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def task_prolog(mpi_cidr: str) -> str:
    """Every task's environment: the node's own dockerd (a job runs containers on the node it is
    on), and MPI's TCP traffic on the cluster's network (`mpi_cidr`), never on a node's docker0."""
    return f"""#!/bin/sh
# Written by floe.
echo "export DOCKER_HOST=unix:///run/docker.sock"
echo "unset DOCKER_TLS_VERIFY"
echo "unset DOCKER_CERT_PATH"
echo "export OMPI_MCA_btl_tcp_if_include={mpi_cidr}"
echo "export OMPI_MCA_oob_tcp_if_include={mpi_cidr}"
echo "export UCX_NET_DEVICES=all"
exit 0
"""


def parse_slurmd_c(text: str) -> tuple[int, int]:
    """(CPUs, RealMemory MiB) from `slurmd -C`."""
    cpus = re.search(r"\bCPUs=(\d+)", text)
    mem = re.search(r"\bRealMemory=(\d+)", text)
    if not cpus or not mem:
        raise ValueError(f"cannot read slurmd -C: {text.strip()[:200]}")
    return int(cpus.group(1)), int(mem.group(1))
