"""Magnum's views: the bodies of its answers, built from rows and service views."""

from __future__ import annotations

from typing import Any

from fastapi import Response
from pydantic import BaseModel

from floe.api.magnum.schemas import ClusterOut, ClusterSummary, ClusterTemplateOut
from floe.api.magnum.versions import CLUSTER_ID, MIN_VERSION, resource_links
from floe.db.models import Cluster, ClusterTemplate
from floe.services.clusters import ClusterView, labels_diff
from floe.services.templates import DRIVER


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


def _summary_fields(c: Cluster, base: str, version: tuple[int, int] = MIN_VERSION) -> dict[str, Any]:
    since = {"cluster_id": c.stack_id} if version >= CLUSTER_ID else {}
    return since | {
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


def cluster_summary(view: ClusterView, base: str, version: tuple[int, int] = MIN_VERSION) -> ClusterSummary:
    return ClusterSummary(**_summary_fields(view.cluster, base, version))


def cluster_out(view: ClusterView, base: str, version: tuple[int, int] = MIN_VERSION) -> ClusterOut:
    """Every field of a cluster; fields of later microversions only from those (send exclude_unset)."""
    c = view.cluster
    overridden, added, skipped = labels_diff(view.template_labels, dict(c.labels or {}))
    faults = {"cluster": c.status_reason or c.status} if c.status.endswith("FAILED") else {}
    return ClusterOut(
        **_summary_fields(c, base, version),
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


def json_response(body: BaseModel, status: int = 200, exclude_unset: bool = False) -> Response:
    """The body encoded by pydantic in one pass (what FastAPI would send for the route's
    response_model, without validating our own output again and encoding it twice)."""
    return Response(body.model_dump_json(exclude_unset=exclude_unset), status_code=status,
                    media_type="application/json")


def next_link(base: str, resource: str, limit: int, marker: str | None, sort_key: str, sort_dir: str) -> str | None:
    """Magnum's `next`: the same list from after `marker`."""
    if marker is None:
        return None
    return f"{base}/v1/{resource}?sort_key={sort_key}&sort_dir={sort_dir}&limit={limit}&marker={marker}"
