"""Nova's shapes of a flavor: the summary (`GET /flavors`) and the detail (everything else)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request

from floe.api.compute.versions import DESCRIPTION_VERSION, EXTRA_SPECS_VERSION, request_version
from floe.db.models import Flavor
from floe.services import flavors as svc


def origin(request: Request) -> str:
    """scheme://host[:port] the client reached floe at (a sub-application's base URL holds its mount)."""
    return f"{request.url.scheme}://{request.url.netloc}"


def _links(request: Request, flavor: Flavor) -> list[dict[str, str]]:
    href = f"{origin(request)}/v2.1/flavors/{flavor.id}"
    # Nova's bookmark is unversioned; floe serves flavors only under /v2.1, so both links are it.
    return [{"href": href, "rel": "self"}, {"href": href, "rel": "bookmark"}]


def summary(request: Request, flavor: Flavor) -> dict[str, Any]:
    out: dict[str, Any] = {"id": flavor.id, "name": flavor.name, "links": _links(request, flavor)}
    if request_version(request) >= DESCRIPTION_VERSION:
        out["description"] = flavor.description
    return out


def detail(request: Request, flavor: Flavor) -> dict[str, Any]:
    version = request_version(request)
    out: dict[str, Any] = {
        "id": flavor.id,
        "name": flavor.name,
        "ram": flavor.ram,
        "disk": flavor.disk,
        "swap": "",  # Nova's "no swap" before 2.75; floe's nodes have none
        "OS-FLV-EXT-DATA:ephemeral": 0,
        "OS-FLV-DISABLED:disabled": False,
        "vcpus": flavor.vcpus,
        "os-flavor-access:is_public": flavor.is_public,
        "rxtx_factor": 1.0,
        "links": _links(request, flavor),
    }
    if version >= DESCRIPTION_VERSION:
        out["description"] = flavor.description
    if version >= EXTRA_SPECS_VERSION:
        out["extra_specs"] = svc.extra_specs(flavor)
    return out


def next_link(request: Request, items: list[Flavor], limit: int | None) -> list[dict[str, str]] | None:
    """Nova's `flavors_links`: a next page whenever this one came back full."""
    if not items or limit is None or len(items) < limit:
        return None
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "marker"]
    params.append(("marker", items[-1].id))
    path = request.url.path
    return [{"href": f"{origin(request)}{path}?{urlencode(params)}", "rel": "next"}]
