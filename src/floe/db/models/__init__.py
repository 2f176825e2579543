"""All models, importable from one place (Alembic's autogenerate needs them registered)."""

from floe.db.models.clusters import Cluster, ClusterTemplate, Node
from floe.db.models.events import Event
from floe.db.models.identity import (
    ApplicationCredential,
    Domain,
    Project,
    Role,
    RoleAssignment,
    Token,
    User,
)
from floe.db.models.ipam import AddressAllocation
from floe.db.models.jobs import Job
from floe.db.models.operations import Operation
from floe.db.models.quotas import Quota, QuotaLock
from floe.db.models.shape import ClusterNetwork, Flavor, GPUAllocation, Network, NodeGroup, NodeInterface
from floe.db.models.shares import Share, ShareAccessRule, ShareAttachment

__all__ = [
    "AddressAllocation", "ApplicationCredential", "Cluster", "ClusterNetwork", "ClusterTemplate", "Domain",
    "Event", "Flavor", "GPUAllocation", "Job", "Network", "Node", "NodeGroup", "NodeInterface", "Operation",
    "Project", "Quota", "QuotaLock", "Role", "RoleAssignment", "Share", "ShareAccessRule", "ShareAttachment",
    "Token", "User",
]
