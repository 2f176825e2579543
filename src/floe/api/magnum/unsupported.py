"""Magnum routes that stock clients call for common commands but floe has no feature behind:
`coe service list` (floe's engine is its one service) and `coe cluster upgrade` (refused with
a 400 naming what is supported, rather than a bare 404/405)."""

from __future__ import annotations

import socket
from typing import Any

from fastapi import APIRouter

from floe.api.auth import CallerDep, RuntimeDep
from floe.errors import Forbidden, InvalidInput
from floe.services import clusters

router = APIRouter(prefix="/v1", tags=["unsupported"])
_ADMIN_ONLY: dict[int | str, dict[str, Any]] = {403: {
    "description": "The caller is not an admin",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/MagnumError"}}},
}}


@router.get("/mservices", responses=_ADMIN_ONLY)
def list_mservices(runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """Magnum's services (admin only there too): floe has one, its engine, in this process."""
    if not caller.is_admin:
        raise Forbidden("Only an admin may list the services.")
    return {"mservices": [{
        "id": 1,
        "host": socket.gethostname(),
        "binary": "floe-engine",
        "state": "up" if runtime.engine is not None else "down",
        "disabled": False,
        "disabled_reason": None,
        "report_count": 0,
        "created_at": None,
        "updated_at": None,
    }]}


@router.post("/clusters/{ident}/actions/upgrade", status_code=202)
def upgrade_cluster(runtime: RuntimeDep, caller: CallerDep, ident: str) -> dict[str, Any]:
    """Refused: floe nodes run the host's own docker, so there is no image version to move to."""
    cluster = clusters.get_cluster(runtime.db, caller, ident).cluster  # 404 for others' clusters
    raise InvalidInput(
        f"Cluster upgrade is not supported by floe (cluster {cluster.uuid}): a floe cluster's nodes run "
        "the host's Docker. Supported cluster actions are resize (POST /v1/clusters/{id}/actions/resize) "
        "and update (PATCH /v1/clusters/{id})."
    )
