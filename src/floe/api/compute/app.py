"""The /v2.1 sub-application: the part of OpenStack Nova's compute API floe has, its flavors."""

from __future__ import annotations

import re

from fastapi import FastAPI

from floe import __version__
from floe.api.compute import flavors, versions
from floe.api.compute.errors import NOVA_FAULTS
from floe.api.compute.gate import ComputeGate
from floe.api.errors import install_error_handlers


def create_compute_app(parent: FastAPI) -> FastAPI:
    """The /v2.1 sub-application, sharing `parent`'s runtime and caches."""
    app = FastAPI(title="floe flavors (Nova v2.1)", version=__version__, redirect_slashes=False,
                  openapi_url=None, docs_url=None, redoc_url=None)
    app.state.runtime = parent.state.runtime
    app.state.caches = parent.state.caches
    install_error_handlers(app, NOVA_FAULTS)
    app.include_router(flavors.router)
    app.add_middleware(ComputeGate)
    return app


def install(app: FastAPI) -> None:
    """Serve Nova's flavors at /v2.1 of the floe app, and its version document at /v2.1 itself."""
    app.include_router(versions.root_router)
    app.mount("/v2.1", create_compute_app(app))
    # Starlette's mount pattern stops at a newline: /v2.1/flavors/%0A would fall through to the
    # Magnum app and get a Magnum-shaped 404.
    mount = app.routes[-1]
    mount.path_regex = re.compile(mount.path_regex.pattern, re.DOTALL)  # type: ignore[attr-defined]
