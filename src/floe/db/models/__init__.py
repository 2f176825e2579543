"""All models, importable from one place (Alembic's autogenerate needs them registered)."""

from floe.db.models.clusters import Cluster, ClusterTemplate, Node
from floe.db.models.identity import Project, Token
from floe.db.models.ipam import AddressAllocation
from floe.db.models.operations import Operation
from floe.db.models.shares import Share, ShareAccessRule, ShareAttachment

__all__ = [
    "AddressAllocation", "Cluster", "ClusterTemplate", "Node", "Operation", "Project", "Share", "ShareAccessRule",
    "ShareAttachment", "Token",
]
