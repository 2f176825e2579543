"""Magnum's microversions (OpenStack-API-Version: container-infra 1.x) and the discovery documents."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request

from floe.api.http import host_url, link
from floe.api.microversions import VersionError, fmt

SERVICE = "container-infra"
HEADER = "OpenStack-API-Version"
MIN_HEADER = "OpenStack-API-Minimum-Version"
MAX_HEADER = "OpenStack-API-Maximum-Version"
MIN_VERSION = (1, 1)
# What each microversion past 1.8 adds to what floe serves. Magnum's published history ends at
# 1.11; 1.12-1.14 are what python-magnumclient 5.0 expects of a newer server (it reads a
# cluster's `cluster_id` from 1.13, sends nodegroups' node labels and taints), as floe reads it.
NODEGROUPS = (1, 9)  # /v1/clusters/{id}/nodegroups
EMPTY_NODEGROUPS = (1, 10)  # nodegroups with node_count 0
# 1.11: bay and baymodel removed (floe never had them)
NODEGROUP_LABELS = (1, 12)  # nodegroups: merge_labels, labels_overridden/added/skipped
CLUSTER_ID = (1, 13)  # clusters: cluster_id
NODE_METADATA = (1, 14)  # nodegroups: node_labels, node_taints (create, show, patch)
MAX_VERSION = NODE_METADATA


def parse_version(header: str | None) -> tuple[int, int]:
    """The requested microversion; 1.1 (Magnum's default) when the header is absent.

    The header may list several services ("container-infra 1.5, compute 2.1");
    entries for other services are ignored.
    """
    if header is None or not header.strip():
        return MIN_VERSION
    for entry in header.split(","):
        words = entry.split()
        if len(words) != 2:
            raise VersionError(
                400, f"Invalid {HEADER} header {header!r}: expected '{SERVICE} <major>.<minor>' or '{SERVICE} latest'"
            )
        service, value = words
        if service.lower() != SERVICE:
            continue
        if value.lower() == "latest":
            return MAX_VERSION
        # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
        m = re.fullmatch(r"([0-9]+)\.([0-9]+)", value)
        if not m:
            raise VersionError(400, f"Invalid value {value!r} for {HEADER} header: expected <major>.<minor>")
        # Past 9 digits a part is beyond every version (and int() may refuse it).
        too_long = any(len(part) > 9 for part in m.groups())
        if too_long or not MIN_VERSION <= (version := (int(m.group(1)), int(m.group(2)))) <= MAX_VERSION:
            raise _unsupported(value if too_long else fmt(version))
        return version
    return MIN_VERSION


def _unsupported(requested: str) -> VersionError:
    """406, as Magnum's HTTPNotAcceptableAPIVersion (with the range in the error item too)."""
    return VersionError(
        406,
        f"Version {requested} was requested but is not supported by this service. "
        f"The supported version range is: [{SERVICE} {fmt(MIN_VERSION)}, {SERVICE} {fmt(MAX_VERSION)}].",
        max_version=fmt(MAX_VERSION), min_version=fmt(MIN_VERSION),
    )


def version_headers(version: tuple[int, int]) -> dict[str, str]:
    """The headers every /v1 response carries."""
    return {
        MIN_HEADER: f"{SERVICE} {fmt(MIN_VERSION)}",
        MAX_HEADER: f"{SERVICE} {fmt(MAX_VERSION)}",
        HEADER: f"{SERVICE} {fmt(version)}",
        "Vary": HEADER,
    }


def request_version(request: Request) -> tuple[int, int]:
    """The microversion negotiated for this request (set by the app's middleware)."""
    return getattr(request.state, "api_version", MIN_VERSION)


def resource_links(base: str, collection: str, ident: str) -> list[dict[str, str]]:
    """Magnum's self link (/v1/...) and bookmark link (unversioned)."""
    return [link("self", f"{base}/v1/{collection}/{ident}"), link("bookmark", f"{base}/{collection}/{ident}")]


def _collection_links(base: str, name: str) -> list[dict[str, str]]:
    return [link("self", f"{base}/v1/{name}/"), link("bookmark", f"{base}/{name}/")]


router = APIRouter()


@router.get("/", summary="API versions (no token needed)")
def root(request: Request) -> dict:
    base = host_url(request)
    return {
        "name": "OpenStack Magnum API",
        "description": (
            "Magnum is an OpenStack project which aims to provide container cluster management. "
            "This endpoint is served by floe."
        ),
        "versions": [
            {
                "id": "v1",
                "links": [link("self", f"{base}/v1/")],
                "status": "CURRENT",
                "max_version": fmt(MAX_VERSION),
                "min_version": fmt(MIN_VERSION),
            }
        ],
    }


@router.get("/v1", summary="The v1 API and its resources (no token needed)")
def v1(request: Request) -> dict:
    base = host_url(request)
    doc: dict = {
        "id": "v1",
        "links": [
            link("self", f"{base}/v1/"),
            link("describedby", "http://docs.openstack.org/developer/magnum/dev/api-spec-v1.html", "text/html"),
        ],
        "media_types": [{"base": "application/json", "type": "application/vnd.openstack.magnum.v1+json"}],
    }
    # Only the collections floe serves (Magnum also lists nodegroups, federations…).
    for name in ("clustertemplates", "clusters", "certificates", "mservices", "quotas", "stats"):
        doc[name] = _collection_links(base, name)
    return doc
