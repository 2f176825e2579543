"""/v1/floe/clusters/{ident}/nodes: floe's extension listing a cluster's nodes and what they use."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from floe.api.auth import CallerDep, RuntimeDep
from floe.api.extensions.views import NodeList, node_out
from floe.services import clusters, node_stats

router = APIRouter(prefix="/v1/floe", tags=["floe"])


@router.get("/clusters/{ident}/nodes", response_model=NodeList)
def list_nodes(runtime: RuntimeDep, caller: CallerDep, ident: str) -> NodeList:
    """The cluster's nodes, managers first, each role by index."""
    return NodeList(nodes=[node_out(n) for n in clusters.list_nodes(runtime.db, caller, ident)])


class NodeStatsOut(BaseModel):
    """What a node uses now; every number is null while the node does not run. Counters only grow."""

    name: str
    role: str
    nodegroup: str
    health: str
    cpu_seconds: float | None
    cpu_limit_cores: float | None  # 0 = unlimited
    memory_bytes: int | None
    memory_limit_bytes: int | None  # 0 = unlimited
    disk_used_bytes: int | None
    disk_size_bytes: int | None
    rx_bytes: int | None  # every interface of the node
    tx_bytes: int | None
    time: float  # epoch seconds of the reading
    simulated: bool  # made-up numbers of the simulated provider


class NodeStatsList(BaseModel):
    nodes: list[NodeStatsOut]


@router.get("/clusters/{ident}/nodes/stats", response_model=NodeStatsList)
def list_node_stats(runtime: RuntimeDep, caller: CallerDep, ident: str) -> NodeStatsList:
    """What each node of the cluster uses now (CPU time, memory, disk, network bytes)."""
    return NodeStatsList(nodes=[NodeStatsOut(**n) for n in node_stats.cluster_node_stats(runtime, caller, ident)])
