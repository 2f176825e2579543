"""Who a request acts as: one authentication for every API of floe.

Each API's gate (Magnum's for /v1, Manila's for /v2) authenticates a request before routing
it or reading its body, as keystonemiddleware does in front of Magnum and Manila: without a
valid token nothing else is revealed. `authenticate` finds the caller behind X-Auth-Token,
kept in the app's caches as keystonemiddleware caches Keystone's answers; routes get the
caller from request.state through the `CallerDep` dependency.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from floe.api.http import header
from floe.runtime import Runtime
from floe.services import identity
from floe.services.identity import Caller

__all__ = ["Caller", "CallerDep", "RuntimeDep", "authenticate", "authorize", "get_caller", "get_runtime"]

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def authenticate(scope: Scope) -> Caller:
    """The caller behind the request's X-Auth-Token, recorded in its state; NotAuthorized (401)
    if the token is missing, unknown, revoked or expired."""
    app_state: Any = scope["app"].state
    secret = header(scope, b"x-auth-token")
    caches = app_state.caches
    kept = caches.caller(secret) if secret else None
    if kept is not None and kept[1] is not None and kept[1] <= time.time():
        kept = None  # expired while kept: the database says so
    if kept is None:
        version = caches.callers.version()
        caller, until = await run_in_threadpool(identity.authenticate_until, app_state.runtime.db, secret)
        kept = (caller, until.timestamp() if until is not None else None)
        caches.callers.put(secret, kept, version)
    caller = kept[0]
    scope.setdefault("state", {})["caller"] = caller
    return caller


def authorize(scope: Scope, caller: Caller) -> str | None:
    """Why `caller` may not make this request to a project's resources (/v1, /v2), or None.

    Every such request needs a project-scoped token; readers only read, members and admins
    also create and change (what they may touch is the services' business: their project's).
    """
    if not caller.project_id:
        return "The token is not scoped to a project: get a project-scoped token for this API."
    if scope["method"] not in READ_METHODS and not caller.can_write:
        return (f"The reader role allows reading only: {scope['method']} needs the member role "
                "in the project.")
    return None


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_caller(
    request: Request,
    x_auth_token: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Caller:
    """The caller the API's gate authenticated (it runs before every route that needs one);
    authenticated here only for an app mounted without its gate."""
    caller = getattr(request.state, "caller", None)
    if caller is None:
        caller = identity.authenticate(get_runtime(request).db, x_auth_token)
        request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
