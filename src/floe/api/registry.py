"""The image registry's token realm (distribution's token auth), outside /v1 and its gate.

Clients (docker, skopeo, the nodes' dockerds) come here when the registry answers 401 with
`WWW-Authenticate: Bearer realm=…`, with HTTP Basic credentials or none, and ask for
`scope=repository:NAME:pull,push`. The realm is served on the API's address and, for nodes
(which reach only the infra network), by `token_app` on the address beside the registry.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from floe import registry_auth
from floe.errors import ServiceError
from floe.runtime import Runtime
from floe.services import registry

router = APIRouter(include_in_schema=False)

# distribution's error codes, which docker and skopeo print.
_CODES = {400: "DENIED", 401: "UNAUTHORIZED", 403: "DENIED", 404: "NAME_UNKNOWN"}


@router.get(registry_auth.TOKEN_PATH)
async def token(request: Request) -> JSONResponse:
    """A token for what the caller may do of the `scope`s it asks for."""
    runtime: Runtime = request.app.state.runtime
    keys = registry_auth.keys(runtime.settings.home)
    try:
        body = await run_in_threadpool(
            registry.issue_token, runtime.db, keys, request.headers.get("authorization"),
            request.query_params.get("service"), request.query_params.getlist("scope"),
        )
    except ServiceError as exc:
        headers = {"WWW-Authenticate": 'Basic realm="floe registry"'} if exc.status == 401 else None
        error = {"code": _CODES.get(exc.status, "UNKNOWN"), "message": exc.detail}
        return JSONResponse({"errors": [error]}, status_code=exc.status, headers=headers)
    return JSONResponse(body)


def token_app(runtime: Runtime) -> FastAPI:
    """An app serving the realm alone: what listens beside the registry, where nodes can reach it."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.runtime = runtime
    app.include_router(router)
    return app
