"""What stands in front of every /v2 route: Manila's microversions, authentication, and the
optional project id in the path (`/v2/{project_id}/shares` is `/v2/shares`, as the service
catalog has it; when given it must be the token's project)."""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from floe.api import auth
from floe.api.http import header
from floe.api.manila import versions
from floe.api.manila.errors import MANILA_FAULTS
from floe.api.microversions import VersionError, fmt
from floe.errors import NotAuthorized

_PROJECT_IN_PATH = re.compile(r"^/v2/([0-9a-fA-F-]{32,36})(/.*)?$")


class ManilaGate:
    """Pure ASGI middleware of the /v2 sub-application."""

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
                                             header(scope, b"openstack-api-version"))
        except VersionError as exc:
            await MANILA_FAULTS.response(exc.status, exc.detail, request_id)(scope, receive, send)
            return
        state["manila_version"] = version
        headers.update({versions.HEADER: fmt(version), "Vary": versions.HEADER})
        try:
            caller = await auth.authenticate(scope)
        except NotAuthorized as exc:
            await MANILA_FAULTS.response(401, exc.detail, request_id)(scope, receive, send)
            return
        refusal = auth.authorize(scope, caller)
        if refusal is not None:
            await MANILA_FAULTS.response(403, refusal, request_id)(scope, receive, send)
            return
        m = _PROJECT_IN_PATH.match(scope["path"])
        if m:
            if m.group(1).lower() != caller.project_id.lower():
                await MANILA_FAULTS.response(
                    400, "Malformed request url: the project id in the URL is not the token's project.", request_id
                )(scope, receive, send)
                return
            path = "/v2" + (m.group(2) or "")
            scope = dict(scope, path=path, raw_path=path.encode())
        await self.app(scope, receive, send)
