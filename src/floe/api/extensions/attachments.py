"""floe's extension: shares attached to clusters (Magnum has no such thing; Manila stops at export locations).

    GET    /v1/floe/clusters/{ident}/shares           the shares attached to a cluster
    POST   /v1/floe/clusters/{ident}/shares           attach {"share": ID_OR_NAME, "path": "/mnt/NAME", "read_only": …}
    DELETE /v1/floe/clusters/{ident}/shares/{share}   detach
    GET    /v1/floe/shares/{ident}/mounts             where a share is mounted
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from floe.api.auth import CallerDep, RuntimeDep
from floe.api.extensions.views import attachment_out
from floe.services import shares as svc

router = APIRouter(prefix="/v1/floe", tags=["floe"])


class AttachRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    share: str = Field(min_length=1, max_length=255, description="Share id or name.")
    path: str | None = Field(default=None, max_length=255, description="/mnt/NAME in every node.")
    read_only: bool = False


@router.get("/clusters/{ident}/shares")
def list_cluster_shares(runtime: RuntimeDep, caller: CallerDep, ident: str) -> dict[str, Any]:
    """The shares attached to a cluster, with their paths and states."""
    return {"shares": [attachment_out(v) for v in svc.cluster_attachments(runtime.db, caller, ident)]}


@router.post("/clusters/{ident}/shares", status_code=202)
def attach_share(runtime: RuntimeDep, caller: CallerDep, ident: str, body: AttachRequest) -> dict[str, Any]:
    """Queue the mount of a share at /mnt/NAME on every node of the cluster (new nodes too)."""
    return attachment_out(svc.attach(runtime, caller, ident, body.share, body.path, body.read_only))


@router.delete("/clusters/{ident}/shares/{share}", status_code=202)
def detach_share(runtime: RuntimeDep, caller: CallerDep, ident: str, share: str) -> dict[str, Any]:
    """Queue the unmount of a share from every node of the cluster."""
    return attachment_out(svc.detach(runtime, caller, ident, share))


@router.get("/shares/{ident}/mounts")
def share_mounts(runtime: RuntimeDep, caller: CallerDep, ident: str) -> dict[str, Any]:
    """Every cluster a share is attached to."""
    share, views = svc.share_attachments(runtime.db, caller, ident)
    return {"share_id": share.uuid, "mounts": [attachment_out(v) for v in views]}
