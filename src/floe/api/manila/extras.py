"""Manila resources that stock clients call for common commands and floe's backends lack or
only partly have: share networks and snapshots (always empty; creating a snapshot is a 400), the
scheduler's pools (one per share type floe knows; admin only, as in Manila) and a share's
metadata (read only: it is set when the share is created)."""

from __future__ import annotations

import socket
from typing import Annotated, Any

from fastapi import APIRouter, Body

from floe.api.auth import CallerDep, RuntimeDep
from floe.api.manila import views
from floe.errors import Forbidden, InvalidInput, NotFound
from floe.services import shares as svc

router = APIRouter(tags=["shares"])
_ADMIN_ONLY: dict[int | str, dict[str, Any]] = {403: {
    "description": "The caller is not an admin",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ManilaFault"}}},
}}


# -- share networks: floe's backends do not handle share servers -----------------------


@router.get("/share-networks")
@router.get("/share-networks/detail")
def list_share_networks(caller: CallerDep) -> dict[str, Any]:
    """No share networks: every floe share type has driver_handles_share_servers False."""
    return {"share_networks": []}


@router.get("/share-networks/{ident}")
def show_share_network(caller: CallerDep, ident: str) -> dict[str, Any]:
    raise NotFound(f"Share network {ident} could not be found: floe's share types use no share networks.")


# -- snapshots: no floe share type supports them ------------------------------------------


@router.get("/snapshots")
@router.get("/snapshots/detail")
def list_snapshots(caller: CallerDep) -> dict[str, Any]:
    return {"snapshots": []}


@router.get("/snapshots/{ident}")
def show_snapshot(caller: CallerDep, ident: str) -> dict[str, Any]:
    raise NotFound(f"Snapshot {ident} could not be found.")


@router.post("/snapshots", status_code=202)
def create_snapshot(runtime: RuntimeDep, caller: CallerDep, body: Annotated[Any, Body()] = None) -> dict[str, Any]:
    """Refused whatever the share: Manila's answer for a type with snapshot_support False."""
    types = ", ".join(t.name for t in svc.share_types(runtime))
    raise InvalidInput(
        f"Snapshots are not supported by any floe share type ({types}: snapshot_support is False). "
        "Copy the share's data to another share instead."
    )


# -- scheduler pools ---------------------------------------------------------------------


def _pools(runtime, caller, detail: bool) -> dict[str, Any]:
    if not caller.is_admin:
        raise Forbidden("Only an admin may list the scheduler's pools.")
    host = socket.gethostname()
    return {"pools": [views.pool_view(t, host, detail) for t in svc.share_types(runtime)]}


@router.get("/scheduler-stats/pools", responses=_ADMIN_ONLY)
def list_pools(runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    return _pools(runtime, caller, detail=False)


@router.get("/scheduler-stats/pools/detail", responses=_ADMIN_ONLY)
def list_pools_detail(runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    return _pools(runtime, caller, detail=True)


# -- share metadata (read; set at create time) ---------------------------------------------


@router.get("/shares/{ident}/metadata")
def share_metadata(runtime: RuntimeDep, caller: CallerDep, ident: str) -> dict[str, Any]:
    """What `openstack share show` and manilaclient's get_metadata read."""
    return {"metadata": dict(svc.get_share(runtime.db, caller, ident).metadata_ or {})}


@router.get("/shares/{ident}/metadata/{key}")
def share_metadata_item(runtime: RuntimeDep, caller: CallerDep, ident: str, key: str) -> dict[str, Any]:
    metadata = dict(svc.get_share(runtime.db, caller, ident).metadata_ or {})
    if key not in metadata:
        raise NotFound(f"Metadata item {key} was not found on share {ident}.")
    return {"meta": {key: metadata[key]}}
