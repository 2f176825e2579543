"""The /v2 sub-application: OpenStack Manila's v2 API for floe's shares."""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from floe import __version__
from floe.api.errors import install_error_handlers
from floe.api.http import request_id_of
from floe.api.manila import extras, quotas, shares, versions
from floe.api.manila.errors import MANILA_FAULTS
from floe.api.manila.gate import ManilaGate
from floe.errors import QuotaExceeded


def create_manila_app(parent: FastAPI) -> FastAPI:
    """The /v2 sub-application, sharing `parent`'s runtime and caches."""
    app = FastAPI(title="floe shares (Manila v2)", version=__version__, redirect_slashes=False,
                  openapi_url=None, docs_url=None, redoc_url=None)
    app.state.runtime = parent.state.runtime
    app.state.caches = parent.state.caches
    install_error_handlers(app, MANILA_FAULTS)

    async def over_quota(request: Request, exc: Exception) -> JSONResponse:
        # Manila answers a quota error 413 (its QuotaError), where Magnum answers 403.
        assert isinstance(exc, QuotaExceeded)
        return MANILA_FAULTS.response(413, exc.detail, request_id_of(request))

    app.add_exception_handler(QuotaExceeded, over_quota)
    app.include_router(shares.router)
    app.include_router(quotas.router)
    app.include_router(extras.router)  # share networks, snapshots, pools: none or refused
    app.add_middleware(ManilaGate)
    return app


def install(app: FastAPI) -> None:
    """Serve Manila's v2 API at /v2 of the floe app, and its versions document at / and /v2."""
    app.include_router(versions.root_router)
    app.mount("/v2", create_manila_app(app))
    # Starlette's mount pattern (`^/v2/(?P<path>.*)$`) stops at a newline, so /v2/shares/%0A
    # would fall through to the Magnum app and get a Magnum-shaped 404.
    mount = app.routes[-1]
    mount.path_regex = re.compile(mount.path_regex.pattern, re.DOTALL)  # type: ignore[attr-defined]
