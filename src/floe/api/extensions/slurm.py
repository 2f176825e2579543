"""/v1/floe/clusters/{ident}/slurm: what the host's Slurm clients need for a Slurm cluster."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from floe.api.auth import CallerDep, RuntimeDep
from floe.services import slurm

router = APIRouter(prefix="/v1/floe", tags=["floe"])


class SlurmClientConfig(BaseModel):
    slurm_conf: str
    cluster_files: str


@router.get("/clusters/{ident}/slurm", response_model=SlurmClientConfig)
def slurm_client_config(runtime: RuntimeDep, caller: CallerDep, ident: str) -> SlurmClientConfig:
    """The cluster's slurm.conf, for SLURM_CONF on the floe host (409 for a cluster that is not Slurm)."""
    return SlurmClientConfig(**slurm.slurm_client_config(runtime, caller, ident))
