"""/v1/floe/clusters/{ident}/nodes: floe's extension listing a cluster's nodes."""

from __future__ import annotations

from fastapi import APIRouter

from floe.api.auth import CallerDep, RuntimeDep
from floe.api.extensions.views import NodeList, node_out
from floe.services import clusters

router = APIRouter(prefix="/v1/floe", tags=["floe"])


@router.get("/clusters/{ident}/nodes", response_model=NodeList)
def list_nodes(runtime: RuntimeDep, caller: CallerDep, ident: str) -> NodeList:
    """The cluster's nodes, managers first, each role by index."""
    return NodeList(nodes=[node_out(n) for n in clusters.list_nodes(runtime.db, caller, ident)])
