"""floe's extension: project networks, and attaching them to clusters (extra interfaces in every node).

    POST   /v1/floe/networks                       create {"name": NAME, "cidr": "10.161.4.0/24"?}
    GET    /v1/floe/networks                       the project's networks
    GET    /v1/floe/networks/{ident}               one, by uuid or name
    DELETE /v1/floe/networks/{ident}               delete (refused while a cluster uses it)
    GET    /v1/floe/clusters/{ident}/networks      a cluster's networks, in interface order
    POST   /v1/floe/clusters/{ident}/networks      attach {"network": NAME_OR_UUID} to a running cluster
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from floe.api.auth import CallerDep, RuntimeDep
from floe.api.extensions.views import network_attachment_out, network_out
from floe.services import networks as svc

router = APIRouter(prefix="/v1/floe", tags=["floe"])


class NetworkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=svc.MAX_NAME, description="Unique in the project.")
    cidr: str | None = Field(
        default=None, max_length=43,
        description=f"An IPv4 network /{svc.MIN_PREFIX}../{svc.MAX_PREFIX} inside floe's range; "
                    f"default: a free /{svc.DEFAULT_PREFIX}.",
    )


class NetworkAttach(BaseModel):
    model_config = ConfigDict(extra="forbid")

    network: str = Field(min_length=1, max_length=svc.MAX_NAME, description="Network name or uuid.")


@router.post("/networks", status_code=201)
def create_network(runtime: RuntimeDep, caller: CallerDep, body: NetworkCreate) -> dict[str, Any]:
    """Create a project network (its host objects are made when a cluster first uses it)."""
    return network_out(svc.create_network(runtime, caller, body.name, body.cidr))


@router.get("/networks")
def list_networks(runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """The project's networks, oldest first."""
    return {"networks": [network_out(v) for v in svc.list_networks(runtime.db, caller)]}


@router.get("/networks/{ident}")
def get_network(runtime: RuntimeDep, caller: CallerDep, ident: str) -> dict[str, Any]:
    """One network of the project, by uuid or name."""
    return network_out(svc.get_network(runtime.db, caller, ident))


@router.delete("/networks/{ident}", status_code=204)
def delete_network(runtime: RuntimeDep, caller: CallerDep, ident: str) -> Response:
    """Delete a network no cluster uses; its addresses go back to floe's range."""
    svc.delete_network(runtime, caller, ident)
    return Response(status_code=204)


@router.get("/clusters/{ident}/networks")
def list_cluster_networks(runtime: RuntimeDep, caller: CallerDep, ident: str) -> dict[str, Any]:
    """The cluster's project networks, in interface order (eth1 first)."""
    return {"networks": [network_attachment_out(v) for v in svc.list_cluster_networks(runtime.db, caller, ident)]}


@router.post("/clusters/{ident}/networks", status_code=202)
def attach_network(runtime: RuntimeDep, caller: CallerDep, ident: str, body: NetworkAttach) -> dict[str, Any]:
    """Attach a network to a running cluster: every node gets the next interface on it (queued)."""
    return network_attachment_out(svc.attach_network(runtime, caller, ident, body.network))
