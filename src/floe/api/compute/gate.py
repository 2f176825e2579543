"""What stands in front of every /v2.1/… route: Nova's microversions, authentication (the same
project-scoped token gate as Magnum's and Manila's), and the optional project id in the path
(`/v2.1/{project_id}/flavors` is `/v2.1/flavors`; when given it must be the token's project)."""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from floe.api import auth
from floe.api.compute import versions
from floe.api.compute.errors import NOVA_FAULTS
from floe.api.http import header
from floe.api.microversions import VersionError
from floe.errors import NotAuthorized

_PROJECT_IN_PATH = re.compile(r"^/v2\.1/([0-9a-fA-F-]{32,36})(/.*)?$")


class ComputeGate:
    """Pure ASGI middleware of the /v2.1 sub-application."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        request_id = state.get("request_id", "")
        headers = state.setdefault("response_headers", {})
        try:
            version = versions.parse_version(header(scope, versions.HEADER.lower().encode()),
                                             header(scope, versions.LEGACY_HEADER.lower().encode()))
        except VersionError as exc:
            headers.update(versions.version_headers(versions.MIN_VERSION))
            await NOVA_FAULTS.response(exc.status, exc.detail, request_id)(scope, receive, send)
            return
        state["compute_version"] = version
        headers.update(versions.version_headers(version))
        try:
            caller = await auth.authenticate(scope)
        except NotAuthorized as exc:
            await NOVA_FAULTS.response(401, exc.detail, request_id)(scope, receive, send)
            return
        refusal = auth.authorize(scope, caller)
        if refusal is not None:
            await NOVA_FAULTS.response(403, refusal, request_id)(scope, receive, send)
            return
        m = _PROJECT_IN_PATH.match(scope["path"])
        if m:
            if m.group(1).lower() != caller.project_id.lower():
                await NOVA_FAULTS.response(
                    400, "Malformed request URL: URL's project_id does not match the token's project.", request_id
                )(scope, receive, send)
                return
            path = "/v2.1" + (m.group(2) or "")
            scope = dict(scope, path=path, raw_path=path.encode())
        await self.app(scope, receive, send)
