"""Request and response bodies of the Magnum-shaped API (Pydantic v2), and the ORM → body builders."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, field_validator

from floe.api.versions import resource_links
from floe.db.models import Cluster, ClusterTemplate, Node
from floe.services.clusters import MAX_NODES, ClusterSpec, ClusterView, labels_diff
from floe.services.templates import DRIVER, TemplateSpec


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


class NodeOut(BaseModel):
    uuid: str
    name: str
    role: str
    address: str | None
    state: str
    health_status: str
    health_reason: str
    swarm_node_id: str | None


class NodeList(BaseModel):
    nodes: list[NodeOut]


# ---------------------------------------------------------------------------
# Builders


def template_out(ct: ClusterTemplate, base: str) -> ClusterTemplateOut:
    return ClusterTemplateOut(
        uuid=ct.uuid,
        name=ct.name,
        coe=ct.coe,
        image_id=ct.image_id,
        flavor_id=ct.flavor_id,
        master_flavor_id=ct.master_flavor_id,
        dns_nameserver=ct.dns_nameserver,
        keypair_id=ct.keypair_id,
        external_network_id=ct.external_network_id,
        fixed_network=ct.fixed_network,
        fixed_subnet=ct.fixed_subnet,
        network_driver=ct.network_driver,
        volume_driver=ct.volume_driver,
        apiserver_port=ct.apiserver_port,
        docker_volume_size=ct.docker_volume_size,
        docker_storage_driver=ct.docker_storage_driver,
        cluster_distro=ct.cluster_distro,
        http_proxy=ct.http_proxy,
        https_proxy=ct.https_proxy,
        no_proxy=ct.no_proxy,
        insecure_registry=ct.insecure_registry,
        labels=dict(ct.labels or {}),
        tls_disabled=ct.tls_disabled,
        public=ct.public,
        hidden=ct.hidden,
        registry_enabled=ct.registry_enabled,
        master_lb_enabled=ct.master_lb_enabled,
        floating_ip_enabled=ct.floating_ip_enabled,
        server_type=ct.server_type,
        tags=ct.tags,
        driver=DRIVER,
        project_id=ct.project_id,
        user_id=ct.user_id,
        links=resource_links(base, "clustertemplates", ct.uuid),
        created_at=ct.created_at,
        updated_at=ct.updated_at,
    )


def _summary_fields(c: Cluster, base: str) -> dict[str, Any]:
    return {
        "uuid": c.uuid,
        "name": c.name,
        "cluster_template_id": c.cluster_template_id,
        "keypair": c.keypair,
        "docker_volume_size": c.docker_volume_size,
        "labels": dict(c.labels or {}),
        "node_count": c.node_count,
        "master_count": c.master_count,
        "status": c.status,
        "health_status": c.health_status,
        "master_flavor_id": c.master_flavor_id,
        "flavor_id": c.flavor_id,
        "create_timeout": c.create_timeout,
        "stack_id": c.stack_id,
        "links": resource_links(base, "clusters", c.uuid),
    }


def cluster_summary(view: ClusterView, base: str) -> ClusterSummary:
    return ClusterSummary(**_summary_fields(view.cluster, base))


def cluster_out(view: ClusterView, base: str) -> ClusterOut:
    c = view.cluster
    overridden, added, skipped = labels_diff(view.template_labels, dict(c.labels or {}))
    faults = {"cluster": c.status_reason or c.status} if c.status.endswith("FAILED") else {}
    return ClusterOut(
        **_summary_fields(c, base),
        status_reason=c.status_reason,
        health_status_reason=dict(c.health_status_reason or {}),
        discovery_url=c.discovery_url,
        api_address=c.api_address,
        master_addresses=list(c.master_addresses or []),
        node_addresses=list(c.node_addresses or []),
        coe_version=c.coe_version,
        container_version=c.container_version,
        project_id=c.project_id,
        user_id=c.user_id,
        faults=faults,
        fixed_network=c.fixed_network,
        fixed_subnet=c.fixed_subnet,
        floating_ip_enabled=c.floating_ip_enabled,
        master_lb_enabled=c.master_lb_enabled,
        labels_overridden=overridden,
        labels_added=added,
        labels_skipped=skipped,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


def node_out(n: Node) -> NodeOut:
    return NodeOut(
        uuid=n.uuid,
        name=n.name,
        role=n.role,
        address=n.address,
        state=n.state,
        health_status=n.health_status,
        health_reason=n.health_reason,
        swarm_node_id=n.swarm_node_id,
    )


def next_link(base: str, resource: str, limit: int, marker: str | None, sort_key: str, sort_dir: str) -> str | None:
    """Magnum's `next`: the same list from after `marker`."""
    if marker is None:
        return None
    return f"{base}/v1/{resource}?sort_key={sort_key}&sort_dir={sort_dir}&limit={limit}&marker={marker}"
