"""Nova's microversions (`OpenStack-API-Version: compute 2.x`, or the older
`X-OpenStack-Nova-API-Version: 2.x`) and its v2.1 version document (public, at /v2.1)."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from floe.api.http import host_url, link
from floe.api.microversions import VersionError, fmt

SERVICE = "compute"
LEGACY_HEADER = "X-OpenStack-Nova-API-Version"
HEADER = "OpenStack-API-Version"
MIN_VERSION = (2, 1)
# Up to extra_specs in flavor answers (2.61): floe serves flavors only, and nothing later
# changes them but 2.75 (swap 0 instead of "") and 2.102 (rxtx_factor gone).
MAX_VERSION = (2, 61)
DESCRIPTION_VERSION = (2, 55)  # flavors have a description
EXTRA_SPECS_VERSION = (2, 61)  # flavor answers carry their extra_specs
UPDATED = "2013-07-23T11:33:21Z"  # Nova's, for v2.1
VARY = f"{HEADER}, {LEGACY_HEADER}"


def parse_version(standard: str | None, legacy: str | None) -> tuple[int, int]:
    """The microversion asked for: `OpenStack-API-Version: compute X` wins over Nova's own header;
    none means the minimum, "latest" the maximum."""
    value = None
    if standard:
        for entry in standard.split(","):
            words = entry.split()
            if len(words) == 2 and words[0].lower() == SERVICE:
                value = words[1]
    if value is None:
        value = legacy
    if value is None or not value.strip():
        return MIN_VERSION
    value = value.strip()
    if value.lower() == "latest":
        return MAX_VERSION
    # ASCII digits only (\d would take "١٢"), and few enough that int() takes them.
    m = re.fullmatch(r"([0-9]{1,9})\.([0-9]{1,9})", value)
    if not m:
        raise VersionError(
            400, f"API Version String {value[:64]} is of invalid format. Must be of format MajorNum.MinorNum."
        )
    version = (int(m.group(1)), int(m.group(2)))
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise VersionError(
            406, f"Version {fmt(version)} is not supported by the API. Minimum is {fmt(MIN_VERSION)} and maximum "
                 f"is {fmt(MAX_VERSION)}."
        )
    return version


def version_headers(version: tuple[int, int]) -> dict[str, str]:
    """The headers every answer of the compute API carries: the version it was answered in."""
    return {HEADER: f"{SERVICE} {fmt(version)}", LEGACY_HEADER: fmt(version), "Vary": VARY}


def request_version(request: Request) -> tuple[int, int]:
    """The microversion the compute gate negotiated for this request."""
    return getattr(request.state, "compute_version", MIN_VERSION)


def version_doc(base: str) -> dict:
    """Nova's description of its v2.1 API."""
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": fmt(MAX_VERSION),
        "min_version": fmt(MIN_VERSION),
        "updated": UPDATED,
        "links": [link("self", f"{base}/v2.1/"), link("describedby", "https://docs.openstack.org/", "text/html")],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}],
    }


root_router = APIRouter()


# Not in floe's OpenAPI document: it describes Magnum's API; this is Nova's public discovery.
@root_router.get("/v2.1", include_in_schema=False)
def v21_root(request: Request) -> JSONResponse:
    return JSONResponse({"version": version_doc(host_url(request))}, headers=version_headers(MIN_VERSION))
