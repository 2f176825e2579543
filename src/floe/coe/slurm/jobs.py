"""Batch jobs on a Slurm cluster: the batch script floe writes, sbatch, the job's state, scancel and
where its output lands.

The script goes to sbatch on stdin and runs on the job's first node; `srun` inside it starts the
command once on every node of the allocation (in a container of the node's own dockerd when an
image is given). Its output goes to `<files>/jobs/<id>.out`, a directory every node writes to
directly. Errors: PermanentError when Slurm refuses something, TemporaryError when it does not
answer (the controller may be restarting).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from floe.coe.slurm.client import SlurmTools, parse_record
from floe.errors import PermanentError, TemporaryError

JOBS_DIR = "jobs"
# Slurm's job states (`scontrol show job`'s JobState) that never change again.
FINAL_STATES = frozenset({
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
    "PREEMPTED", "TIMEOUT", "SPECIAL_EXIT",
})
# What a job whose record Slurm dropped before floe saw it end is reported as.
FORGOTTEN = "UNKNOWN"
# Slurm's own variables a container of the job gets (`docker run -e NAME` copies them from srun's task).
SLURM_VARIABLES = ("SLURM_JOB_ID", "SLURM_JOB_NAME", "SLURM_JOB_NODELIST", "SLURM_JOB_NUM_NODES",
                   "SLURM_NODEID", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NTASKS", "SLURMD_NODENAME")


@dataclass(frozen=True)
class JobSpec:
    """What to run: `command` on each of `nodes` nodes, in `image` if given, with each share of
    `shares` (mount names) at /mnt/NAME; `mpi` launches it with PMIx."""

    name: str
    nodes: int
    command: tuple[str, ...]
    image: str | None = None
    shares: tuple[str, ...] = ()
    mpi: bool = False
    partitions: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobStatus:
    """One job as `scontrol show job -o` reports it."""

    state: str  # PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, …
    reason: str  # why it waits or failed ("None" from Slurm becomes "")
    exit_code: int | None  # the batch script's exit status; None until the job ends
    signal: int | None  # the signal that ended it, if one did
    node_list: str  # Slurm's host list, e.g. s1-node-[0-2]
    submitted_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


def jobs_dir(files: Path) -> Path:
    return files / JOBS_DIR


def output_path(files: Path, job_id: str) -> Path:
    """Where job `job_id` writes its stdout and stderr (`-o <files>/jobs/%j.out`)."""
    return jobs_dir(files) / f"{int(job_id)}.out"


def batch_script(spec: JobSpec) -> str:
    """The batch script: `srun` starts the command on every node of the allocation."""
    srun = ["srun"]
    if spec.mpi:
        srun.append("--mpi=pmix")
    if spec.image:
        # --init: the container's first process forwards the SIGTERM of a cancel (a bare `sleep`
        # as PID 1 would ignore it); the docker client passes it on (sig-proxy) and --rm cleans up.
        run = ["docker", "run", "--rm", "--init", "--quiet", "--network", "host"]
        for name in SLURM_VARIABLES:
            run += ["-e", name]
        for share in spec.shares:
            run += ["-v", f"/mnt/{share}:/mnt/{share}"]
        argv = [*srun, *run, spec.image, *spec.command]
    else:
        argv = [*srun, *spec.command]
    # exec: the script's exit status (the job's) is srun's, and a cancel signals srun directly.
    return "#!/bin/sh\n# Written by floe.\nexec " + shlex.join(argv) + "\n"


def submit(slurm: SlurmTools, files: Path, spec: JobSpec) -> str:
    """sbatch the job; returns its Slurm id."""
    jobs = jobs_dir(files)
    args = ["sbatch", "--parsable", "-N", str(spec.nodes), "-J", spec.name,
            "-o", str(jobs / "%j.out"), "--chdir", str(jobs)]
    if spec.partitions:
        args += ["-p", ",".join(spec.partitions)]
    proc = slurm.run(*args, input=batch_script(spec), check=False, timeout=30.0)
    if proc.returncode != 0:
        raise _refusal("sbatch", proc.stderr or proc.stdout)
    # --parsable prints "ID" or "ID;CLUSTER".
    job_id = proc.stdout.strip().split(";")[0]
    if not job_id.isascii() or not job_id.isdigit():
        raise TemporaryError(f"sbatch answered {proc.stdout.strip()[:200]!r}, not a job id")
    return job_id


def status(slurm: SlurmTools, job_id: str) -> JobStatus | None:
    """The job's state now; None once Slurm forgot it (MinJobAge after it ended)."""
    record = slurm.show_job(str(int(job_id)))
    return None if record is None else parse_status(record)


def statuses(slurm: SlurmTools) -> dict[str, JobStatus]:
    """Every job Slurm still knows, by id (one call for a whole list)."""
    proc = slurm.run("scontrol", "show", "job", "-o", check=False)
    if proc.returncode != 0:
        raise TemporaryError(f"scontrol show job failed: {(proc.stderr or proc.stdout).strip()[:300]}", delay=0.5)
    out: dict[str, JobStatus] = {}
    for line in proc.stdout.splitlines():
        record = parse_record(line)
        if record.get("JobId"):
            out[record["JobId"]] = parse_status(record)
    return out


def cancel(slurm: SlurmTools, job_id: str) -> None:
    """scancel the job (a job that already ended is left as it is)."""
    proc = slurm.run("scancel", str(int(job_id)), check=False)
    text = (proc.stderr or proc.stdout).strip()
    if proc.returncode != 0 and "already completing or completed" not in text and "Invalid job id" not in text:
        raise _refusal("scancel", text)


def parse_status(record: dict[str, str]) -> JobStatus:
    """A JobStatus from scontrol's `Key=Value` record."""
    # JobState may carry a flag list in some versions ("CANCELLED by 0" is in Reason, not here).
    state = record.get("JobState", "UNKNOWN").split()[0].upper() or "UNKNOWN"
    code, _, sig = record.get("ExitCode", "").partition(":")
    final = state in FINAL_STATES
    reason = record.get("Reason", "")
    return JobStatus(
        state=state,
        reason="" if reason in ("None", "(null)") else reason,
        exit_code=int(code) if final and code.isdigit() else None,
        signal=int(sig) if final and sig.isdigit() and int(sig) else None,
        node_list="" if record.get("NodeList") in (None, "(null)") else record["NodeList"],
        submitted_at=_time(record.get("SubmitTime")),
        started_at=_time(record.get("StartTime")) if state != "PENDING" else None,
        finished_at=_time(record.get("EndTime")) if final else None,
    )


def expand_hostlist(slurm: SlurmTools, node_list: str) -> list[str]:
    """Slurm's compressed host list (`s1-node-[0-2]`) as names."""
    if not node_list:
        return []
    proc = slurm.run("scontrol", "show", "hostnames", node_list, check=False)
    if proc.returncode != 0:
        return [node_list]
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def _time(value: str | None) -> datetime | None:
    """Slurm's times are the controller's local time without a zone; it runs on this host."""
    if not value or value in ("Unknown", "None", "N/A"):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S").astimezone().astimezone(UTC)
    except ValueError:
        return None


def _refusal(tool: str, text: str) -> Exception:
    detail = " ".join(text.split())[:500] or "no reason given"
    # The controller not answering is worth a retry; anything else is Slurm's answer to the request.
    if "Unable to contact slurm controller" in detail or "Socket timed out" in detail \
            or "Zero Bytes were transmitted" in detail:
        return TemporaryError(f"{tool}: {detail}", delay=1.0)
    return PermanentError(f"{tool}: {detail.removeprefix(f'{tool}: ').removeprefix('error: ')}")
