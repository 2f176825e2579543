"""Debian's Slurm client tools (sinfo, scontrol, squeue, sbatch, scancel) on the host, pointed at
one cluster by SLURM_CONF; the cluster's munged on the host signs their requests."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from floe.errors import PermanentError, TemporaryError
from floe.host import commands

# Node states (sinfo %T, without its flag suffixes) of a node that can run jobs.
USABLE = {"idle", "allocated", "mixed", "completing", "planned", "reserved"}


@dataclass(frozen=True)
class SlurmTools:
    conf: Path  # the cluster's slurm.conf

    def env(self) -> dict[str, str]:
        return {**commands.clean_env(), "SLURM_CONF": str(self.conf)}

    def run(self, *args: str, timeout: float = 20.0, input: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """A Slurm command; TemporaryError when it fails (the controller may be restarting)."""
        tool = commands.which(args[0])
        if tool is None:
            raise PermanentError(f"{args[0]} is not installed on the floe host (Debian's slurm-client)")
        try:
            proc = subprocess.run([tool, *args[1:]], capture_output=True, text=True, timeout=timeout,
                                  env=self.env(), input=input, check=False)
        except subprocess.TimeoutExpired as exc:
            raise TemporaryError(f"{args[0]} did not answer within {timeout:.0f}s", delay=1.0) from exc
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise TemporaryError(f"{' '.join(args[:2])} failed: {detail[-1] if detail else proc.returncode}", delay=0.5)
        return proc

    def node_states(self) -> dict[str, tuple[str, str]]:
        """Node name → (state as sinfo prints it, e.g. 'idle', 'down*', 'drained'; reason)."""
        out = self.run("sinfo", "-N", "-h", "-o", "%N|%T|%E").stdout
        states: dict[str, tuple[str, str]] = {}
        for line in out.splitlines():
            name, _, rest = line.partition("|")
            state, _, reason = rest.partition("|")
            # A node in two partitions is listed twice with the same state.
            states[name.strip()] = (state.strip(), reason.strip() if reason.strip() != "none" else "")
        return states

    def ping(self) -> bool:
        proc = self.run("scontrol", "ping", check=False, timeout=15.0)
        return proc.returncode == 0 and "UP" in proc.stdout

    def jobs_on(self, nodes: list[str]) -> list[str]:
        """Ids of jobs running (or completing) on any of `nodes`."""
        if not nodes:
            return []
        out = self.run("squeue", "-h", "-w", ",".join(nodes), "-t", "RUNNING,COMPLETING,CONFIGURING",
                       "-o", "%i").stdout
        return sorted({line.strip() for line in out.splitlines() if line.strip()})

    def show_job(self, job_id: str) -> dict[str, str] | None:
        """`scontrol show job -o ID` as key → value, None once Slurm forgot the job."""
        proc = self.run("scontrol", "show", "job", "-o", str(job_id), check=False)
        if proc.returncode != 0:
            if "Invalid job id" in (proc.stderr + proc.stdout):
                return None
            raise TemporaryError(f"scontrol show job {job_id} failed: {proc.stderr.strip()}", delay=0.5)
        return parse_record(proc.stdout)


def parse_record(line: str) -> dict[str, str]:
    """`Key=Value Key=Value …` of scontrol's one-line output (values may hold spaces only in
    the last fields, which floe does not read)."""
    out: dict[str, str] = {}
    for part in line.split():
        key, sep, value = part.partition("=")
        if sep and key not in out:
            out[key] = value
    return out
