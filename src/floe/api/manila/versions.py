"""Manila's microversions (X-OpenStack-Manila-API-Version: 2.x) and its version documents.

`GET /` answers Magnum's document unless the request speaks Manila (its version header), so
both clients discover floe at the same root (`RootSwitch`); `GET /v2` is Manila's.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from floe.api.http import header, host_url, link
from floe.api.microversions import VersionError, fmt

HEADER = "X-OpenStack-Manila-API-Version"
SERVICE = "shared-file-system"
MIN_VERSION = (2, 0)
# Manila's microversions up to the scheduler hints (2.65): later ones add features floe
# does not have (soft delete, locks, backups…), so clients must not ask for them.
MAX_VERSION = (2, 65)
UPDATED = "2021-09-01T00:00:00Z"


def parse_version(legacy: str | None, standard: str | None) -> tuple[int, int]:
    """The requested microversion from Manila's header (or `OpenStack-API-Version: shared-file-system X`)."""
    value = legacy
    if value is None and standard:
        for entry in standard.split(","):
            words = entry.split()
            if len(words) == 2 and words[0].lower() in (SERVICE, "share", "sharev2"):
                value = words[1]
    if value is None or not value.strip():
        return MIN_VERSION
    value = value.strip()
    if value.lower() == "latest":
        return MAX_VERSION
    # ASCII digits only (\d would take "١٢"), and few enough that int() takes them.
    m = re.fullmatch(r"([0-9]{1,9})\.([0-9]{1,9})", value)
    if not m:
        raise VersionError(
            400, f"API Version String {value} is of invalid format. Must be of format MajorNum.MinorNum."
        )
    version = (int(m.group(1)), int(m.group(2)))
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise VersionError(
            406,
            f"Version {fmt(version)} is not supported by the API. Minimum is {fmt(MIN_VERSION)} and maximum is "
            f"{fmt(MAX_VERSION)}.",
        )
    return version


def request_version(request: Request) -> tuple[int, int]:
    """The microversion Manila's gate negotiated for this request (2.0 by default)."""
    return getattr(request.state, "manila_version", MIN_VERSION)


def speaks_manila(scope: Scope) -> bool:
    """Whether a request comes from a Manila client (for the shared root document)."""
    if header(scope, HEADER.lower().encode()) is not None:
        return True
    standard = header(scope, b"openstack-api-version") or ""
    return any(w in standard.lower() for w in (SERVICE, "sharev2"))


def version_doc(base: str) -> dict:
    """Manila's description of its v2 API."""
    return {
        "id": "v2.0",
        "status": "CURRENT",
        "version": fmt(MAX_VERSION),
        "min_version": fmt(MIN_VERSION),
        "updated": UPDATED,
        "links": [
            link("describedby", "https://docs.openstack.org/api-ref/shared-file-system/", "text/html"),
            link("self", f"{base}/v2/"),
        ],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.share+json;version=1"}],
    }


def versions_document(request: Request) -> dict:
    return {"versions": [version_doc(host_url(request))]}


root_router = APIRouter()


@root_router.get("/v2", summary="Manila's v2 API version (no token needed)")
def v2_root(request: Request) -> JSONResponse:
    doc = versions_document(request)
    return JSONResponse(doc, headers={HEADER: fmt(MIN_VERSION), "Vary": HEADER})


class RootSwitch:
    """At `GET /`, answer Manila's versions document to Manila clients and pass everything else on."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/" and scope["method"] in ("GET", "HEAD") \
                and speaks_manila(scope):
            request = Request(scope)
            await JSONResponse(versions_document(request))(scope, receive, send)
            return
        await self.app(scope, receive, send)
