"""What stands in front of every /identity route: authentication, except where Keystone
needs none (the version documents, and `POST /v3/auth/tokens`, which is how one gets a token).

A 401 carries `WWW-Authenticate: Keystone uri="…"`, as Keystone's does, so clients know where
to authenticate.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from floe.api import auth
from floe.api.http import header
from floe.api.identity.errors import KEYSTONE_ERRORS
from floe.errors import NotAuthorized

PUBLIC = {("GET", "/identity"), ("GET", "/identity/v3"), ("HEAD", "/identity"), ("HEAD", "/identity/v3"),
          ("POST", "/identity/v3/auth/tokens")}


def _base(scope: Scope) -> str:
    host = header(scope, b"host") or "127.0.0.1"
    return f"{scope.get('scheme', 'http')}://{host}"


class IdentityGate:
    """Pure ASGI middleware of the /identity sub-application."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if (scope["method"], scope["path"].rstrip("/") or "/") not in PUBLIC:
            try:
                await auth.authenticate(scope)
            except NotAuthorized as exc:
                request_id = scope.get("state", {}).get("request_id", "")
                await KEYSTONE_ERRORS.response(
                    401, exc.detail, request_id,
                    headers={"WWW-Authenticate": f'Keystone uri="{_base(scope)}/identity"'})(scope, receive, send)
                return
        await self.app(scope, receive, send)
