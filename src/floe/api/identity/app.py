"""The /identity sub-application: a Keystone v3 subset served by floe."""

from __future__ import annotations

import re

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from floe import __version__
from floe.api.errors import install_error_handlers
from floe.api.identity import resources, tokens, views
from floe.api.identity.errors import KEYSTONE_ERRORS
from floe.api.identity.gate import IdentityGate

versions_router = APIRouter(tags=["identity"])
root_router = APIRouter(tags=["identity"])


@versions_router.get("/v3", summary="Keystone's v3 version document (no token needed)")
def v3(request: Request) -> dict:
    return {"version": views.version(request)}


@root_router.get("/identity", summary="Keystone's versions (no token needed)", status_code=300,
                 responses={300: {"description": "The identity API's versions (Keystone answers 300 Multiple "
                                                 "Choices here)"}})
def root(request: Request) -> JSONResponse:
    return JSONResponse({"versions": {"values": [views.version(request)]}}, status_code=300)


def create_identity_app(parent: FastAPI) -> FastAPI:
    """The /identity sub-application, sharing `parent`'s runtime and caches."""
    app = FastAPI(title="floe identity (Keystone v3)", version=__version__, redirect_slashes=False,
                  openapi_url=None, docs_url=None, redoc_url=None)
    app.state.runtime = parent.state.runtime
    app.state.caches = parent.state.caches
    install_error_handlers(app, KEYSTONE_ERRORS)
    app.include_router(versions_router)
    app.include_router(tokens.router)
    app.include_router(resources.router)
    app.add_middleware(IdentityGate)
    return app


def install(app: FastAPI) -> None:
    """Serve the identity API at /identity of the floe app."""
    app.include_router(root_router)
    app.mount("/identity", create_identity_app(app))
    mount = app.routes[-1]
    mount.path_regex = re.compile(mount.path_regex.pattern, re.DOTALL)  # type: ignore[attr-defined]
