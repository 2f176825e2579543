"""The X-Auth-Token dependency: who the request acts as."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from floe.runtime import Runtime
from floe.services import identity
from floe.services.identity import Caller

__all__ = ["Caller", "CallerDep", "RuntimeDep", "get_caller", "get_runtime"]


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_caller(
    request: Request,
    x_auth_token: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Caller:
    """The caller behind X-Auth-Token; NotAuthorized (401) if it is missing or unknown.

    The app's middleware authenticates every /v1 request before routing and leaves
    the caller in request.state; this looks it up again only when it did not run.
    """
    caller = getattr(request.state, "caller", None)
    if caller is None:
        caller = identity.authenticate(get_runtime(request).db, x_auth_token)
        request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
