"""Request and response bodies of Magnum's v1 API (Pydantic v2); views.py builds the responses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, field_validator

from floe.services.clusters import MAX_NODES, ClusterSpec
from floe.services.templates import TemplateSpec


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds")


# Magnum renders times as 2016-08-29T06:51:31+00:00.
Timestamp = Annotated[datetime | None, PlainSerializer(_iso, return_type=str | None)]
# Answers show labels as stored, unvalidated: a NaN an older floe let in is answered as null
# (pydantic's JSON for a non-finite float), never a 500. Requests are checked (LabelValue).
Labels = dict[str, str | int | bool | float]


class Link(BaseModel):
    href: str
    rel: str


# ---------------------------------------------------------------------------
# Requests

ClusterTemplateCreate = TemplateSpec
ClusterCreate = ClusterSpec


class PatchOp(BaseModel):
    """One JSON-patch operation (RFC 6902 add, replace or remove)."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["add", "replace", "remove"]
    path: str = Field(pattern=r"^(/[\w.-]+)+$")
    value: Any = None


class ResizeRequest(BaseModel):
    """POST /v1/clusters/{ident}/actions/resize."""

    model_config = ConfigDict(extra="forbid")

    node_count: int = Field(ge=0, le=MAX_NODES, strict=True)
    # openstacksdk's Cluster.resize sends `"nodes_to_remove": null` when none are named; Magnum
    # (WSME) reads null as "not given", so floe does too. node_count stays mandatory, as there.
    nodes_to_remove: list[str] | None = None
    nodegroup: str | None = Field(default=None, max_length=255)
    # floe's own (Magnum has none): a Slurm cluster requeues the jobs of the nodes that go
    # instead of waiting for them to finish.
    requeue_jobs: bool = False

    @field_validator("nodes_to_remove", mode="after")
    @classmethod
    def _none_is_empty(cls, v: list[str] | None) -> list[str]:
        return [] if v is None else v


class CertificateRequest(BaseModel):
    """POST /v1/certificates: a CSR to sign with the cluster's CA."""

    model_config = ConfigDict(extra="forbid")

    cluster_uuid: str = Field(min_length=1, max_length=255)
    csr: str = Field(min_length=1)
    ca_cert_type: str | None = None


def patch_ops(ops: list[PatchOp]) -> list[dict[str, Any]]:
    """Plain JSON-patch dicts; `value` only where the client sent one."""
    return [op.model_dump(exclude_unset=True) | {"op": op.op, "path": op.path} for op in ops]


# ---------------------------------------------------------------------------
# Responses


class UUIDResponse(BaseModel):
    uuid: str


class ClusterTemplateOut(BaseModel):
    uuid: str
    name: str
    coe: str
    image_id: str | None
    flavor_id: str | None
    master_flavor_id: str | None
    dns_nameserver: str | None
    keypair_id: str | None
    external_network_id: str | None
    fixed_network: str | None
    fixed_subnet: str | None
    network_driver: str | None
    volume_driver: str | None
    apiserver_port: int | None
    docker_volume_size: int | None
    docker_storage_driver: str | None
    cluster_distro: str | None
    http_proxy: str | None
    https_proxy: str | None
    no_proxy: str | None
    insecure_registry: str | None
    labels: Labels
    tls_disabled: bool
    public: bool
    hidden: bool
    registry_enabled: bool
    master_lb_enabled: bool
    floating_ip_enabled: bool
    server_type: str
    tags: str | None
    driver: str
    project_id: str
    user_id: str
    links: list[Link]
    created_at: Timestamp
    updated_at: Timestamp


class ClusterTemplateCollection(BaseModel):
    clustertemplates: list[ClusterTemplateOut]
    next: str | None = None


class ClusterSummary(BaseModel):
    """The fields Magnum lists for a cluster without /detail."""

    uuid: str
    name: str
    cluster_template_id: str
    keypair: str | None
    docker_volume_size: int | None
    labels: Labels
    node_count: int
    master_count: int
    status: str
    health_status: str
    master_flavor_id: str | None
    flavor_id: str | None
    create_timeout: int
    stack_id: str | None
    links: list[Link]
    # From microversion 1.13 (views set it only then): the driver's id of the cluster, stack_id's
    # newer name; floe has no stack, so like stack_id it is null.
    cluster_id: str | None = None


class ClusterOut(ClusterSummary):
    """Every field Magnum shows for a cluster."""

    status_reason: str | None
    health_status_reason: dict[str, Any]
    discovery_url: str | None
    api_address: str | None
    master_addresses: list[str]
    node_addresses: list[str]
    coe_version: str | None
    container_version: str | None
    project_id: str
    user_id: str
    faults: dict[str, str]
    fixed_network: str | None
    fixed_subnet: str | None
    floating_ip_enabled: bool
    master_lb_enabled: bool
    labels_overridden: Labels
    labels_added: Labels
    labels_skipped: Labels
    created_at: Timestamp
    updated_at: Timestamp


class ClusterCollection(BaseModel):
    clusters: list[ClusterSummary]
    next: str | None = None


class ClusterDetailCollection(BaseModel):
    clusters: list[ClusterOut]
    next: str | None = None


class CertificateOut(BaseModel):
    cluster_uuid: str
    pem: str
    csr: str | None = None
    links: list[Link]
