"""The COE-driver interface: what runs on the nodes (Docker Swarm first, Slurm later).

A driver contributes named, idempotent steps to the engine's pipelines and can judge
the health of a running cluster. It never touches HTTP and knows nothing of where
nodes come from: it gets docker SDK clients from the step context.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from floe.engine.context import StepContext
    from floe.engine.steps import NodeRef, Step
    from floe.providers.base import InfraProvider


#: The reason a driver gives for a node whose machine (process) is gone; auto-healing acts on it.
NOT_RUNNING = "node process is not running"


@dataclass(frozen=True)
class NodeHealth:
    name: str
    healthy: bool
    reason: str = ""


@dataclass(frozen=True)
class ClusterHealth:
    healthy: bool
    nodes: list[NodeHealth]
    reason: str = ""


class COEDriver(abc.ABC):
    name: str = "abstract"
    #: Values accepted in a template's `coe` field.
    coe_names: tuple[str, ...] = ()

    @abc.abstractmethod
    def create_steps(self) -> list[Step]:
        """Steps that turn started nodes into a working cluster (init, joins, wait-for-ready)."""

    @abc.abstractmethod
    def grow_steps(self) -> list[Step]:
        """Steps that bring newly started nodes into an existing cluster."""

    @abc.abstractmethod
    def remove_nodes(self, ctx: StepContext, nodes: list[NodeRef]) -> None:
        """Take nodes out of the cluster gracefully (drain, leave, forget) before they stop."""

    @abc.abstractmethod
    def health(self, provider: InfraProvider, cluster_tag: str, nodes: list[NodeRef]) -> ClusterHealth:
        """Ask the running cluster how every node is."""
