"""floe's extension: batch jobs on a Slurm cluster, across a chosen number of its compute nodes.

    POST   /v1/floe/clusters/{ident}/jobs               submit {"command": [...], "nodes": N, "image"?,
                                                        "shares"?, "name"?, "mpi"?}
    GET    /v1/floe/clusters/{ident}/jobs               the cluster's jobs, with Slurm's state now
    GET    /v1/floe/clusters/{ident}/jobs/{job}         one job (Slurm id or uuid), with its nodes
    DELETE /v1/floe/clusters/{ident}/jobs/{job}         cancel
    GET    /v1/floe/clusters/{ident}/jobs/{job}/output  its output as text, from ?offset= (bytes);
                                                        X-Floe-Output-Size and X-Floe-Job-State say how
                                                        much there is and whether more may come
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from floe.api.auth import CallerDep, RuntimeDep
from floe.services import jobs as svc

router = APIRouter(prefix="/v1/floe", tags=["floe"])


class JobSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: list[str] = Field(min_length=1, max_length=svc.MAX_ARGS, description="The program and its arguments.")
    nodes: int = Field(default=1, strict=True, ge=1, le=100_000,
                       description="Compute nodes; the command runs once on each.")
    image: str | None = Field(default=None, max_length=svc.MAX_IMAGE,
                              description="Run the command in this image (the node's dockerd).")
    shares: list[str] = Field(default_factory=list, max_length=svc.MAX_SHARES,
                              description="Shares attached to the cluster, mounted at /mnt/NAME in the container.")
    name: str | None = Field(default=None, max_length=svc.MAX_NAME, description="Slurm job name.")
    mpi: bool = Field(default=False, strict=True, description="Launch with srun --mpi=pmix.")


class JobOut(BaseModel):
    id: str  # the Slurm job id
    uuid: str
    name: str
    cluster_uuid: str
    cluster_name: str
    state: str
    state_reason: str
    exit_code: int | None
    nodes: int
    node_list: str
    node_names: list[str]
    image: str | None
    command: list[str]
    shares: list[str]
    mpi: bool
    submitted_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def job_out(view: svc.JobView) -> dict[str, Any]:
    j = view.job
    return JobOut(
        id=j.slurm_job_id, uuid=j.uuid, name=j.name, cluster_uuid=view.cluster.uuid, cluster_name=view.cluster.name,
        state=j.state, state_reason=j.state_reason or "", exit_code=j.exit_code, nodes=j.nodes,
        node_list=j.node_list or "", node_names=view.nodes, image=j.image, command=list(j.command or []),
        shares=list(j.shares or []), mpi=j.mpi, submitted_by=j.submitted_by, created_at=j.created_at,
        started_at=j.started_at, finished_at=j.finished_at,
    ).model_dump(mode="json")


@router.post("/clusters/{ident}/jobs", status_code=201)
def submit_job(runtime: RuntimeDep, caller: CallerDep, ident: str, body: JobSubmit) -> dict[str, Any]:
    """Submit a job to the cluster's Slurm (sbatch); it starts when its nodes are free."""
    return job_out(svc.submit(runtime, caller, ident, command=body.command, nodes=body.nodes, image=body.image,
                              shares=body.shares, name=body.name, mpi=body.mpi))


@router.get("/clusters/{ident}/jobs")
def list_jobs(runtime: RuntimeDep, caller: CallerDep, ident: str) -> dict[str, Any]:
    """The jobs submitted through floe to the cluster, oldest first."""
    return {"jobs": [job_out(v) for v in svc.list_jobs(runtime, caller, ident)]}


@router.get("/clusters/{ident}/jobs/{job}")
def get_job(runtime: RuntimeDep, caller: CallerDep, ident: str, job: str) -> dict[str, Any]:
    """One job, by Slurm id or uuid."""
    return job_out(svc.get_job(runtime, caller, ident, job))


@router.delete("/clusters/{ident}/jobs/{job}")
def cancel_job(runtime: RuntimeDep, caller: CallerDep, ident: str, job: str) -> dict[str, Any]:
    """Cancel a job (scancel); returns it as Slurm reports it just after."""
    return job_out(svc.cancel(runtime, caller, ident, job))


@router.get("/clusters/{ident}/jobs/{job}/output")
def job_output(
    runtime: RuntimeDep, caller: CallerDep, ident: str, job: str,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=svc.OUTPUT_LIMIT)] = svc.OUTPUT_LIMIT,
) -> Response:
    """The job's output (stdout and stderr of every node) from byte `offset`."""
    out = svc.output(runtime, caller, ident, job, offset, limit)
    return Response(out.data, media_type="text/plain; charset=utf-8", headers={
        "X-Floe-Output-Offset": str(out.offset), "X-Floe-Output-Size": str(out.size),
        "X-Floe-Job-State": out.state,
    })
