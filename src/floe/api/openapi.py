"""floe's OpenAPI documents, made truthful: the status codes and error bodies floe really answers.

The machinery is here; each API's package says what its document adds (magnum/openapi.py,
manila/openapi.py) and app.py wires both in:

- `GET /openapi.json`: Magnum's v1 API and floe's extensions (/v1/floe/...), plus the
  version documents at `/`, `/v1` and `/v2`.
- `GET /v2/openapi.json`: Manila's v2 API (the /v2 sub-application), paths given in full.

Both are public: they describe the API and reveal no data. FastAPI's own document says 422
for invalid input; floe answers 400 in the API's error shape (Magnum's `errors` list, or
Manila's fault), so the 422s are replaced with the errors each route can give.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.routing import Mount

from floe.api.errors import ErrorShape

MUTATING = ("post", "put", "patch", "delete")
PUBLIC_PATHS = {"/", "/v1", "/v2", "/identity"}
PHRASES = {
    400: "Bad request: invalid input, in the error shape of the API",
    401: "No valid token (X-Auth-Token)",
    403: "Not allowed for this caller (admin-only actions, quotas, another project's objects)",
    404: "No such object (or not visible to this project)",
    406: "The requested microversion is outside the supported range",
    409: "Conflicts with the object's state (in progress, in use, a name taken, an ambiguous name)",
    413: "The request body is too large (Manila: or a quota is exceeded)",
}

def _error_codes(path: str, method: str, op: dict[str, Any]) -> list[int]:
    """The error statuses an authenticated operation can answer."""
    codes = [400, 401, 406]
    has_params = "{" in path
    names = {p["name"] for p in op.get("parameters", []) if p.get("in") == "query"}
    named = {"marker", "share_id", "share_type", "project_id", "cluster"}  # objects named in the query
    if has_params or method != "get" or names & named:
        codes.append(404)  # a named object (or a cluster or share named in the body) that is not there
    if method in MUTATING or "quota-sets/" in path or path.startswith(("/v1/floe", "/v1/quotas", "/v1/stats")):
        codes.append(403)
    if method in MUTATING or has_params:
        codes.append(409)  # also an ambiguous name on lookup
    if method in ("post", "put", "patch"):
        codes.append(413)
    return sorted(codes)


def fix_operations(doc: dict[str, Any], shape: ErrorShape, version_header: dict[str, Any], prefix: str = "") -> None:
    """No 422 (floe answers 400); every operation that needs a token says which errors it can
    answer, in `shape`, and takes the API's version header."""
    error_ref = f"#/components/schemas/{shape.name}"
    for path, item in doc.get("paths", {}).items():
        full = prefix + path
        for method, op in item.items():
            if method not in ("get", "put", "post", "patch", "delete", "head", "options"):
                continue
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            if full in PUBLIC_PATHS:
                continue
            op.setdefault("parameters", []).append(version_header)
            op["security"] = [{"token": []}]
            for code in _error_codes(full, method, op):
                responses.setdefault(str(code), {
                    "description": PHRASES[code],
                    "content": {"application/json": {"schema": {"$ref": error_ref}}},
                })


def constrain(prop: dict[str, Any], **constraints: Any) -> None:
    """Add constraints to a property's string schema (inside Pydantic's anyOf for optional fields)."""
    for schema in prop.get("anyOf", [prop]):
        if schema.get("type") in ("string", "boolean"):
            schema.update(constraints)


def finish(doc: dict[str, Any], shape: ErrorShape) -> dict[str, Any]:
    """The error shape's schema and the token's security scheme, FastAPI's unused schemas gone."""
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas[shape.name] = shape.schema
    components["securitySchemes"] = {
        "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token",
                  "description": "A floe token (the admin's is in $FLOE_HOME/admin-token)."}
    }
    return doc


def document(app: FastAPI, description: str | None = None) -> dict[str, Any]:
    """FastAPI's own document of `app` (to be completed, then fixed and finished)."""
    return get_openapi(title=app.title, version=app.version, routes=app.routes,
                       description=description if description is not None else app.description)


def manila_app(app: FastAPI) -> FastAPI:
    """The sub-application mounted at /v2."""
    for route in app.routes:
        if isinstance(route, Mount) and route.path == "/v2" and isinstance(route.app, FastAPI):
            return route.app
    raise LookupError("no Manila application is mounted at /v2")


def install(app: FastAPI, v1: Callable[[FastAPI], dict[str, Any]], v2: Callable[[FastAPI], dict[str, Any]]) -> None:
    """Serve `v1(app)` at /openapi.json and `v2(the /v2 sub-application)` at /v2/openapi.json
    (call before the /v2 mount, so that /v2/openapi.json is this app's route)."""

    def v1_document() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = v1(app)
        return app.openapi_schema

    app.openapi = v1_document  # type: ignore[method-assign]

    @app.get("/v2/openapi.json", include_in_schema=False)
    def manila_openapi(request: Request) -> JSONResponse:
        manila = manila_app(request.app)
        if manila.openapi_schema is None:
            manila.openapi_schema = v2(manila)
        return JSONResponse(manila.openapi_schema)
