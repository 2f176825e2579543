"""Batch jobs on Slurm clusters: submit, list, show, cancel and read output.

A job is submitted to the cluster's Slurm at once (sbatch) and recorded in the jobs table. Its
state is Slurm's, read when the job is read (`scontrol show job`), and written back until it is
final, so the row keeps the outcome after Slurm forgets the job. Jobs are addressed by their
Slurm id (or the row's uuid) within a cluster of the caller's project.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from floe.coe.slurm import jobs as slurm_jobs
from floe.coe.slurm.client import SlurmTools
from floe.coe.slurm.config import partition_name
from floe.coe.slurm.jobs import JobSpec, JobStatus
from floe.db.models import Cluster, Job, Node, NodeGroup, Share, ShareAttachment
from floe.errors import Conflict, InvalidInput, NotFound, PermanentError, ServiceError, TemporaryError
from floe.providers.base import ProviderWithNodeProcesses
from floe.runtime import Runtime
from floe.services.clusters import find_cluster
from floe.services.identity import Caller
from floe.services.templates import is_uuid_like

SETTLED = ("CREATE_COMPLETE", "UPDATE_COMPLETE")
MAX_NAME = 64
# Slurm job names: scontrol prints them unquoted among `Key=Value` fields, so no space or '='.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_ARGS = 1024
MAX_COMMAND_BYTES = 64 * 1024
MAX_SHARES = 16
MAX_IMAGE = 255
# Docker's reference grammar (distribution/reference): [host[:port]/]path[:tag][@digest].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?/)"
IMAGE_RE = re.compile(
    rf"^{_DOMAIN}?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)
OUTPUT_LIMIT = 1024 * 1024  # the most bytes of output one read returns


class SlurmUnavailable(ServiceError):
    """The cluster's Slurm controller did not answer (it may be restarting): try again."""

    status = 503
    title = "Service Unavailable"


@dataclass(frozen=True)
class JobView:
    job: Job
    cluster: Cluster
    nodes: list[str] = field(default_factory=list)  # the node names, while Slurm still knows the job


@dataclass(frozen=True)
class Output:
    data: bytes
    offset: int  # where `data` starts
    size: int  # the output's size now
    state: str


@dataclass(frozen=True)
class _Target:
    """What a Slurm call needs of a cluster, read in one transaction and used after it."""

    cluster_id: int
    name: str
    files: Path
    slurm: SlurmTools


# ---------------------------------------------------------------------------
# Validation


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME or not NAME_RE.match(name) \
            or not name.isascii():
        raise InvalidInput(f"Invalid job name {str(name)[:80]!r}: use 1 to {MAX_NAME} letters, digits, '.', '_' "
                           "or '-', starting with a letter or digit.")
    return name


def check_command(command: Any) -> tuple[str, ...]:
    if not isinstance(command, list | tuple) or not command:
        raise InvalidInput("The job's command must not be empty.")
    if len(command) > MAX_ARGS:
        raise InvalidInput(f"The job's command has {len(command)} arguments; at most {MAX_ARGS} are allowed.")
    if not all(isinstance(a, str) for a in command) or not command[0]:
        raise InvalidInput("The job's command must be a list of strings, the first not empty.")
    if any("\0" in a for a in command):
        raise InvalidInput("The job's command must not contain NUL characters.")
    if sum(len(a.encode("utf-8", "surrogatepass")) + 1 for a in command) > MAX_COMMAND_BYTES:
        raise InvalidInput(f"The job's command is longer than {MAX_COMMAND_BYTES} bytes.")
    if any(unicodedata.category(c) == "Cs" for a in command for c in a):
        raise InvalidInput("The job's command must be valid UTF-8 text.")
    return tuple(command)


def check_image(image: Any) -> str:
    if not isinstance(image, str) or not image or len(image) > MAX_IMAGE or not IMAGE_RE.match(image):
        raise InvalidInput(f"Invalid image reference {str(image)[:80]!r}: expected NAME[:TAG][@DIGEST] such as "
                           "busybox, python:3.11 or <project id>/tool:1.0.")
    return image


def check_nodes(nodes: Any) -> int:
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise InvalidInput(f"Invalid node count {nodes!r}: a job needs at least 1 node.")
    return nodes


def default_name(command: tuple[str, ...]) -> str:
    """The command's base name, made a valid job name."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", command[0].rsplit("/", 1)[-1]).strip("._-")[:MAX_NAME]
    return base if base and NAME_RE.match(base) else "job"


# ---------------------------------------------------------------------------
# Clusters and jobs


def _check_runs_jobs(cluster: Cluster) -> None:
    """Conflict unless the cluster is a Slurm cluster that is not changing."""
    if cluster.coe != "slurm":
        raise Conflict(f"Cluster {cluster.name} runs {cluster.coe}, not Slurm: jobs need a cluster whose "
                       "template has --coe slurm.")
    if cluster.status not in SETTLED:
        raise Conflict(f"Cluster {cluster.name} is {cluster.status}: jobs can be submitted when it is "
                       f"{' or '.join(SETTLED)}.")


def _slurm_of(runtime: Runtime, cluster: Cluster) -> _Target:
    provider = runtime.provider
    if not isinstance(provider, ProviderWithNodeProcesses):
        which = f"The {provider.name} provider" if provider is not None else "This server has no provider that"
        raise Conflict(f"{which} runs no Slurm daemons: cluster {cluster.name} cannot run jobs.")
    files = provider.cluster_files_dir(cluster.host_tag, create=False)
    return _Target(cluster.id, cluster.name, files, SlurmTools(files / "slurm.conf"))


def _partitions(session: Session, cluster: Cluster) -> dict[str, int]:
    """Live workers per Slurm partition (one partition per worker nodegroup)."""
    rows = session.execute(
        select(NodeGroup.name, Node.id).join(NodeGroup, NodeGroup.id == Node.nodegroup_id, isouter=True)
        .where(Node.cluster_id == cluster.id, Node.role == "worker", Node.state != "removing")
    )
    out: dict[str, int] = {}
    for group, _ in rows:
        part = partition_name(group or "default-worker")
        out[part] = out.get(part, 0) + 1
    return out


def _shares(session: Session, cluster: Cluster, wanted: list[str]) -> tuple[str, ...]:
    """Mount names of the wanted shares (by share name, uuid or mount name), attached to the cluster."""
    if len(wanted) > MAX_SHARES:
        raise InvalidInput(f"A job can use at most {MAX_SHARES} shares.")
    rows = session.execute(
        select(ShareAttachment, Share).join(Share, Share.id == ShareAttachment.share_id)
        .where(ShareAttachment.cluster_id == cluster.id)
    ).all()
    out: list[str] = []
    for ident in wanted:
        if not isinstance(ident, str) or not ident:
            raise InvalidInput("A share must be given by its name or id.")
        match = next((a for a, s in rows if s.uuid == ident.lower() or s.name == ident), None) \
            or next((a for a, s in rows if a.mount_name == ident), None)
        if match is None:
            raise InvalidInput(f"Share {ident[:80]} is not attached to cluster {cluster.name}: attach it first "
                               f"(floe cluster share attach {cluster.name} {ident[:80]}).")
        if match.state != "attached":
            raise Conflict(f"Share {ident[:80]} is {match.state} on cluster {cluster.name}, not attached yet.")
        if match.mount_name not in out:
            out.append(match.mount_name)
    return tuple(out)


def _find_job(session: Session, cluster: Cluster, ident: str) -> Job:
    base = select(Job).where(Job.cluster_id == cluster.id)
    if is_uuid_like(ident):
        found = session.scalars(base.where(Job.uuid == ident.lower())).first()
    elif ident.isascii() and ident.isdigit() and len(ident) <= 18:
        found = session.scalars(base.where(Job.slurm_job_id == str(int(ident)))).first()
    else:
        found = None
    if found is None:
        raise NotFound(f"Job {ident[:80]} could not be found in cluster {cluster.name}.")
    return found


def _slurm_call(fn, *args):
    """A Slurm call, its errors as request errors."""
    try:
        return fn(*args)
    except TemporaryError as exc:
        raise SlurmUnavailable(f"The cluster's Slurm did not answer ({exc}); try again.") from None
    except PermanentError as exc:
        raise Conflict(f"Slurm refused: {exc}") from None


def _apply(job: Job, status: JobStatus | None) -> None:
    """Write what Slurm says of the job into its row (a job Slurm forgot unfinished is UNKNOWN)."""
    if status is None:
        job.state, job.state_reason = slurm_jobs.FORGOTTEN, "Slurm no longer knows the job"
        return
    job.state, job.state_reason = status.state, status.reason
    job.node_list = status.node_list or job.node_list
    job.started_at = status.started_at or job.started_at
    if status.final:
        job.exit_code = status.exit_code
        job.finished_at = status.finished_at


def _final(job: Job) -> bool:
    return job.state in slurm_jobs.FINAL_STATES or job.state == slurm_jobs.FORGOTTEN


def _refresh(runtime: Runtime, cluster_id: int, target: _Target | None, job_ids: list[int],
             one: bool) -> dict[int, list[str]]:
    """Bring the unfinished jobs' rows up to Slurm's state; returns the node names of each job.

    When Slurm does not answer, the rows keep their last state (a read never fails on it)."""
    if target is None or not job_ids:
        return {}
    with runtime.db.session() as session:
        wanted = {j.id: j.slurm_job_id for j in session.scalars(select(Job).where(Job.id.in_(job_ids)))}
    try:
        if one:
            ((row_id, slurm_id),) = wanted.items()
            found = {slurm_id: slurm_jobs.status(target.slurm, slurm_id)}
        else:
            found = slurm_jobs.statuses(target.slurm)
        nodes = {row: slurm_jobs.expand_hostlist(target.slurm, s.node_list)
                 for row, sid in wanted.items() if (s := found.get(sid)) is not None and one}
    except (TemporaryError, PermanentError):
        return {}
    with runtime.db.session() as session:
        for job in session.scalars(select(Job).where(Job.id.in_(list(wanted)), Job.cluster_id == cluster_id)):
            if not _final(job):
                _apply(job, found.get(job.slurm_job_id))
    return nodes


# ---------------------------------------------------------------------------
# Operations


def submit(runtime: Runtime, caller: Caller, cluster_ident: str, *, command: Any, nodes: Any = 1,
           image: Any = None, shares: list[str] | None = None, name: Any = None, mpi: bool = False) -> JobView:
    """Submit a job to the cluster's Slurm and record it."""
    command = check_command(command)
    nodes = check_nodes(nodes)
    name = check_name(name) if name is not None else default_name(command)
    image = check_image(image) if image is not None else None
    if image and mpi:
        raise InvalidInput("--mpi runs the command on the nodes themselves; it cannot be combined with an image.")
    with runtime.db.session() as session:
        cluster = find_cluster(session, caller, cluster_ident)
        _check_runs_jobs(cluster)
        per_partition = _partitions(session, cluster)
        most = max(per_partition.values(), default=0)
        if nodes > most:
            raise InvalidInput(f"Invalid node count {nodes}: cluster {cluster.name} has {most} compute node(s)"
                               + (" in its largest nodegroup." if len(per_partition) > 1 else "."))
        mounts = _shares(session, cluster, list(shares or []))
        target = _slurm_of(runtime, cluster)
    spec = JobSpec(name=name, nodes=nodes, command=command, image=image, shares=mounts, mpi=mpi,
                   partitions=tuple(sorted(p for p, n in per_partition.items() if n >= nodes)))
    slurm_id = _slurm_call(slurm_jobs.submit, target.slurm, target.files, spec)
    try:
        with runtime.db.session() as session:
            cluster = session.get(Cluster, target.cluster_id)
            if cluster is None:
                raise NotFound(f"Cluster {cluster_ident} could not be found.")
            job = Job(project_id=caller.project_id, cluster_id=cluster.id, slurm_job_id=slurm_id, name=name,
                      nodes=nodes, image=image, command=list(command), shares=list(mounts), mpi=mpi,
                      submitted_by=caller.user_id, state="PENDING")
            session.add(job)
            session.flush()
            view = JobView(job, cluster)
    except IntegrityError:
        # The cluster went away (its rows with it) between sbatch and here.
        raise NotFound(f"Cluster {cluster_ident} could not be found.") from None
    return view


def list_jobs(runtime: Runtime, caller: Caller, cluster_ident: str) -> list[JobView]:
    """The cluster's jobs submitted through floe, oldest first, with Slurm's state now."""
    with runtime.db.session() as session:
        cluster = find_cluster(session, caller, cluster_ident)
        target = _optional_target(runtime, cluster)
        open_ids = [j.id for j in session.scalars(select(Job).where(Job.cluster_id == cluster.id))
                    if not _final(j)]
        cluster_id = cluster.id
    _refresh(runtime, cluster_id, target, open_ids, one=False)
    with runtime.db.session() as session:
        cluster = session.get(Cluster, cluster_id)
        if cluster is None:
            raise NotFound(f"Cluster {cluster_ident} could not be found.")
        return [JobView(j, cluster) for j in session.scalars(
            select(Job).where(Job.cluster_id == cluster_id).order_by(Job.id))]


def get_job(runtime: Runtime, caller: Caller, cluster_ident: str, job_ident: str) -> JobView:
    """One job, with Slurm's state now (and its node names while Slurm knows it)."""
    with runtime.db.session() as session:
        cluster = find_cluster(session, caller, cluster_ident)
        job = _find_job(session, cluster, job_ident)
        target = _optional_target(runtime, cluster)
        cluster_id, job_id, final = cluster.id, job.id, _final(job)
    nodes = _refresh(runtime, cluster_id, target, [job_id], one=True) if not final else {}
    if final and target is not None:
        with runtime.db.session() as session:
            node_list = session.get(Job, job_id).node_list  # type: ignore[union-attr]
        try:
            nodes = {job_id: slurm_jobs.expand_hostlist(target.slurm, node_list)}
        except (TemporaryError, PermanentError):
            nodes = {}
    with runtime.db.session() as session:
        job = session.get(Job, job_id)
        cluster = session.get(Cluster, cluster_id)
        if job is None or cluster is None:
            raise NotFound(f"Job {job_ident[:80]} could not be found in cluster {cluster_ident}.")
        return JobView(job, cluster, nodes.get(job_id, []))


def cancel(runtime: Runtime, caller: Caller, cluster_ident: str, job_ident: str) -> JobView:
    """Cancel a job (scancel); a job that already ended is left as it is."""
    with runtime.db.session() as session:
        cluster = find_cluster(session, caller, cluster_ident)
        job = _find_job(session, cluster, job_ident)
        target, slurm_id = None, job.slurm_job_id
        if not _final(job):
            if cluster.coe != "slurm":
                raise Conflict(f"Cluster {cluster.name} runs {cluster.coe}, not Slurm.")
            target = _slurm_of(runtime, cluster)
    if target is not None:
        _slurm_call(slurm_jobs.cancel, target.slurm, slurm_id)
    return get_job(runtime, caller, cluster_ident, job_ident)


def output(runtime: Runtime, caller: Caller, cluster_ident: str, job_ident: str, offset: int = 0,
           limit: int = OUTPUT_LIMIT) -> Output:
    """Up to `limit` bytes of the job's output (stdout and stderr) from `offset`."""
    if offset < 0 or limit < 1:
        raise InvalidInput("offset must be 0 or more and limit 1 or more.")
    view = get_job(runtime, caller, cluster_ident, job_ident)
    with runtime.db.session() as session:
        cluster = session.get(Cluster, view.cluster.id)
        if cluster is None:
            raise NotFound(f"Cluster {cluster_ident} could not be found.")
        target = _optional_target(runtime, cluster)
    if target is None:
        return Output(b"", offset, 0, view.job.state)
    path = slurm_jobs.output_path(target.files, view.job.slurm_job_id)
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(min(offset, size))
            data = f.read(min(limit, OUTPUT_LIMIT))
    except FileNotFoundError:  # not started yet
        return Output(b"", offset, 0, view.job.state)
    return Output(data, min(offset, size), size, view.job.state)


def _optional_target(runtime: Runtime, cluster: Cluster) -> _Target | None:
    """The cluster's Slurm to read from, or None (not Slurm, no such provider): rows are shown as stored."""
    if cluster.coe != "slurm" or not isinstance(runtime.provider, ProviderWithNodeProcesses):
        return None
    return _slurm_of(runtime, cluster)
