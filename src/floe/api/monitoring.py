"""/monitoring: Prometheus's HTTP service discovery of the node targets, and the targets themselves.

Outside /v1 (no Magnum gate, no OpenStack token, not in the OpenAPI documents): only floe's own
monitoring scrapes here, with `Authorization: Bearer <scrape token>` (floe.monitoring.access);
anything else is a 401 (an OpenStack token too, an admin's included). Errors are in the shape
of floe's top-level API, as /metrics's: a target that exists but cannot be read now (its node
does not run) is a 503, which Prometheus records as the target being down.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from floe.errors import NotAuthorized
from floe.monitoring.access import scrape_allowed
from floe.runtime import Runtime
from floe.services import monitoring_metrics, monitoring_targets

router = APIRouter(include_in_schema=False)

# The classic text format generate_latest writes (and dockerd serves), which every Prometheus reads.
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
# What a wildcard bind address is reached at from this host (where floe's Prometheus runs).
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _check_token(request: Request) -> None:
    if not scrape_allowed(_runtime(request).settings.home, request.headers.get("authorization")):
        raise NotAuthorized("a scrape needs Authorization: Bearer with floe's scrape token")


def scrape_address(runtime: Runtime) -> str:
    """host:port at which Prometheus reaches this server (its bind address; loopback for a wildcard)."""
    host = runtime.settings.host
    host = _WILDCARDS.get(host, f"[{host}]" if ":" in host else host)
    return f"{host}:{runtime.settings.port}"


def _metrics(request: Request, build, ident: str) -> Response:
    _check_token(request)
    return Response(build(_runtime(request), ident), media_type=TEXT_FORMAT)


@router.get(monitoring_targets.SD_PATH)
def service_discovery(request: Request) -> Response:
    """Every node target of every cluster, as Prometheus's http_sd_configs reads them."""
    _check_token(request)
    runtime = _runtime(request)
    return JSONResponse(monitoring_targets.discovery(runtime, scrape_address(runtime)))


@router.get("/monitoring/nodes/{node_id}/node")
def node_target(request: Request, node_id: str) -> Response:
    """What the node uses: CPU, memory, disk, network, its containers."""
    return _metrics(request, monitoring_metrics.node_metrics, node_id)


@router.get("/monitoring/nodes/{node_id}/dockerd")
def dockerd_target(request: Request, node_id: str) -> Response:
    """The node's dockerd's own metrics (engine_daemon_*, swarm_*)."""
    return _metrics(request, monitoring_metrics.dockerd_metrics, node_id)


@router.get("/monitoring/clusters/{cluster_id}/slurm")
def slurm_target(request: Request, cluster_id: str) -> Response:
    """A Slurm cluster's nodes, jobs and CPUs as its controller counts them."""
    return _metrics(request, monitoring_metrics.slurm_metrics, cluster_id)
