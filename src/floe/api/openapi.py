"""floe's OpenAPI documents, made truthful: the status codes and error bodies floe really answers.

- `GET /openapi.json`: Magnum's v1 API and floe's extensions (/v1/floe/...), plus the
  version documents at `/`, `/v1` and `/v2`.
- `GET /v2/openapi.json`: Manila's v2 API (the /v2 sub-application), paths given in full.

Both are public: they describe the API and reveal no data. FastAPI's own document says 422
for invalid input; floe answers 400 in the API's error shape (Magnum's `errors` list, or
Manila's fault), so this module replaces the 422s with the errors each route can give, and
adds the request bodies the Manila routes read by hand.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.routing import Mount

MUTATING = ("post", "put", "patch", "delete")
PUBLIC_PATHS = {"/", "/v1", "/v2"}
PHRASES = {
    400: "Bad request: invalid input, in the error shape of the API",
    401: "No valid token (X-Auth-Token)",
    403: "Not allowed for this caller (admin-only actions, quotas, another project's objects)",
    404: "No such object (or not visible to this project)",
    406: "The requested microversion is outside the supported range",
    409: "Conflicts with the object's state (in progress, in use, a name taken, an ambiguous name)",
    413: "The request body is too large",
}

MAGNUM_ERROR = {
    "type": "object",
    "description": "Magnum's error document; python-magnumclient reads title and detail of the first item.",
    "required": ["errors"],
    "properties": {
        "errors": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["request_id", "code", "status", "title", "detail", "links"],
                "properties": {
                    "request_id": {"type": "string"},
                    "code": {"type": "string", "enum": ["client", "server"]},
                    "status": {"type": "integer"},
                    "title": {"type": "string"},
                    "detail": {"type": "string"},
                    "links": {"type": "array"},
                    "max_version": {"type": "string"},
                    "min_version": {"type": "string"},
                },
            },
        }
    },
}

MANILA_FAULT = {
    "type": "object",
    "description": "Manila's fault: one key, the fault's name (badRequest, itemNotFound, ...).",
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "integer"},
            "message": {"type": "string"},
            "request_id": {"type": "string"},
        },
    },
}

_NULLABLE_STRING = {"type": ["string", "null"]}
_METADATA = {"type": ["object", "null"], "additionalProperties": {"type": "string"}}

# What the Manila routes accept (they read the raw body, so FastAPI cannot see it).
SHARE_CREATE = {
    "type": "object",
    "required": ["share"],
    "properties": {
        "share": {
            "type": "object",
            "required": ["share_proto", "size"],
            "properties": {
                "share_proto": {"type": "string", "enum": ["LOCALFS", "GLUSTERFS"],
                                "description": "The protocol of the share's type (see the share types)."},
                "size": {"type": "integer", "minimum": 1, "description": "GiB."},
                "name": _NULLABLE_STRING,
                "display_name": _NULLABLE_STRING,
                "description": _NULLABLE_STRING,
                "display_description": _NULLABLE_STRING,
                "share_type": _NULLABLE_STRING,
                "volume_type": _NULLABLE_STRING,
                "metadata": _METADATA,
                "snapshot_id": _NULLABLE_STRING,
                "share_network_id": _NULLABLE_STRING,
                "share_group_id": _NULLABLE_STRING,
                "availability_zone": _NULLABLE_STRING,
                "is_public": {"type": ["boolean", "null"]},
            },
        }
    },
}

SHARE_UPDATE = {
    "type": "object",
    "required": ["share"],
    "properties": {
        "share": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "name": _NULLABLE_STRING,
                "display_name": _NULLABLE_STRING,
                "description": _NULLABLE_STRING,
                "display_description": _NULLABLE_STRING,
                "is_public": {"type": ["boolean", "null"]},
            },
        }
    },
}


def _action(name: str, args: dict[str, Any] | None) -> dict[str, Any]:
    schema = {"type": "object", "required": [name], "additionalProperties": False,
              "properties": {name: args if args is not None else {"type": ["object", "null"]}}}
    return schema


_ACCESS = {
    "type": "object",
    "required": ["access_type", "access_to"],
    "properties": {
        "access_type": {"type": "string", "description": "floe's `cluster` (a cluster's uuid or name) or ip."},
        "access_to": {"type": "string"},
        "access_level": {"type": ["string", "null"], "enum": ["rw", "ro", None]},
        "metadata": _METADATA,
    },
}
_NEW_SIZE = {"type": "object", "required": ["new_size"], "properties": {"new_size": {"type": "integer", "minimum": 1}}}
SHARE_ACTION = {
    "description": "Exactly one action (each also with Manila's `os-` prefix).",
    "oneOf": [
        _action("allow_access", _ACCESS),
        _action("deny_access", {"type": "object", "required": ["access_id"],
                                "properties": {"access_id": {"type": "string"}}}),
        _action("access_list", None),
        _action("extend", _NEW_SIZE),
        _action("shrink", _NEW_SIZE),
        _action("force_delete", None),
        _action("reset_status", {"type": "object", "required": ["status"],
                                 "properties": {"status": {"type": "string"}}}),
    ],
}


def _query(name: str, schema: dict[str, Any], required: bool = False, description: str = "") -> dict[str, Any]:
    out = {"name": name, "in": "query", "required": required, "schema": schema}
    if description:
        out["description"] = description
    return out


_SHARE_LIST_QUERY = [
    _query("name", {"type": "string"}),
    _query("status", {"type": "string"}),
    _query("share_type_id", {"type": "string"}),
    _query("share_type", {"type": "string"}),
    _query("limit", {"type": "integer", "minimum": 0}),
    _query("offset", {"type": "integer", "minimum": 0}),
]
MANILA_QUERY = {
    ("/shares", "get"): _SHARE_LIST_QUERY,
    ("/shares/detail", "get"): _SHARE_LIST_QUERY,
    ("/share-access-rules", "get"): [
        _query("share_id", {"type": "string"}, required=True),
        _query("access_type", {"type": "string"}),
        _query("access_to", {"type": "string"}),
        _query("access_level", {"type": "string"}),
    ],
}
MANILA_BODIES = {
    ("/shares", "post"): SHARE_CREATE,
    ("/shares/{ident}", "put"): SHARE_UPDATE,
    ("/shares/{ident}/action", "post"): SHARE_ACTION,
}
# Success codes beyond what the route declares: actions answer 200 with a body (access rules)
# or 202 without one.
MANILA_EXTRA_SUCCESS = {("/shares/{ident}/action", "post"): {"202": {"description": "Accepted (no body)"}}}
_NO_BODY = {("/shares/{ident}", "delete")}

_VERSION_HEADERS = {
    "v1": {"name": "OpenStack-API-Version", "in": "header", "required": False,
           "description": "`container-infra 1.N` or `container-infra latest`; 400 if malformed, 406 if out of range.",
           "schema": {"type": "string", "pattern": r"^container-infra (latest|1\.[0-9]{1,2})$"}},
    "v2": {"name": "X-OpenStack-Manila-API-Version", "in": "header", "required": False,
           "description": "`2.N` or `latest`; 400 if malformed, 406 if out of range.",
           "schema": {"type": "string", "pattern": r"^(latest|2\.[0-9]{1,2})$"}},
}


def _error_codes(path: str, method: str, op: dict[str, Any]) -> list[int]:
    """The error statuses an authenticated operation can answer."""
    codes = [400, 401, 406]
    has_params = "{" in path
    names = {p["name"] for p in op.get("parameters", []) if p.get("in") == "query"}
    if has_params or method != "get" or names & {"marker", "share_id", "share_type"}:  # objects named in the query
        codes.append(404)  # a named object (or a cluster or share named in the body) that is not there
    if method in MUTATING or "/quota-sets/" in path or path.startswith("/v1/floe"):
        codes.append(403)
    if method in MUTATING or has_params:
        codes.append(409)  # also an ambiguous name on lookup
    if method in ("post", "put", "patch"):
        codes.append(413)
    return sorted(codes)


def _fix_operations(doc: dict[str, Any], error_ref: str, version_header: dict[str, Any], prefix: str = "") -> None:
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


def _constrain(prop: dict[str, Any], **constraints: Any) -> None:
    """Add constraints to a property's string schema (inside Pydantic's anyOf for optional fields)."""
    for schema in prop.get("anyOf", [prop]):
        if schema.get("type") in ("string", "boolean"):
            schema.update(constraints)


def _tighten_v1(doc: dict[str, Any]) -> None:
    """What the Pydantic validators check and the generated schemas do not say."""
    from floe.services import templates as t

    schemas = doc["components"]["schemas"]
    name = {"pattern": t.DNS_LABEL.pattern, "maxLength": 63}
    rules = {
        "TemplateSpec": {
            "coe": {"enum": list(t.SUPPORTED_COES)},
            "server_type": {"enum": list(t.SUPPORTED_SERVER_TYPES)},
            "network_driver": {"enum": list(t.SUPPORTED_NETWORK_DRIVERS)},
            "tls_disabled": {"enum": [False]},
            "driver": {"enum": ["", t.DRIVER]},
            "name": name,
        },
        "ClusterSpec": {"name": name},
    }
    for model, fields in rules.items():
        props = schemas.get(model, {}).get("properties", {})
        for field_name, constraints in fields.items():
            if field_name in props:
                _constrain(props[field_name], **constraints)


def _finish(doc: dict[str, Any], error_name: str, error_schema: dict[str, Any]) -> dict[str, Any]:
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas[error_name] = error_schema
    components["securitySchemes"] = {
        "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token",
                  "description": "A floe token (the admin's is in $FLOE_HOME/admin-token)."}
    }
    return doc


def v1_document(app: FastAPI) -> dict[str, Any]:
    """The document of /v1 (Magnum and floe's extensions) and the version roots."""
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        _fix_operations(doc, "#/components/schemas/MagnumError", _VERSION_HEADERS["v1"])
        _tighten_v1(doc)
        doc["info"]["description"] += (
            " Errors are Magnum's `errors` documents. Manila's v2 API (shares) is described at /v2/openapi.json."
        )
        app.openapi_schema = _finish(doc, "MagnumError", MAGNUM_ERROR)
    return app.openapi_schema


def manila_document(manila: FastAPI) -> dict[str, Any]:
    """The document of /v2 (Manila), with every path given in full (/v2/...)."""
    if manila.openapi_schema is None:
        doc = get_openapi(title=manila.title, version=manila.version, routes=manila.routes,
                          description="OpenStack Manila's v2 API for floe's shares. Every path may also be "
                                      "given with the token's project id after /v2 (/v2/{project_id}/shares). "
                                      "Errors are Manila faults.")
        for (path, method), params in MANILA_QUERY.items():
            doc["paths"][path][method].setdefault("parameters", []).extend(copy.deepcopy(params))
        for (path, method), schema in MANILA_BODIES.items():
            doc["paths"][path][method]["requestBody"] = {
                "required": True, "content": {"application/json": {"schema": schema}},
            }
        for (path, method), extra in MANILA_EXTRA_SUCCESS.items():
            doc["paths"][path][method]["responses"].update(extra)
        for path, method in _NO_BODY:
            for response in doc["paths"][path][method]["responses"].values():
                response.pop("content", None)
        _fix_operations(doc, "#/components/schemas/ManilaFault", _VERSION_HEADERS["v2"], prefix="/v2")
        doc["paths"] = {"/v2" + path: item for path, item in doc["paths"].items()}
        manila.openapi_schema = _finish(doc, "ManilaFault", MANILA_FAULT)
    return manila.openapi_schema


def manila_app(app: FastAPI) -> FastAPI:
    """The sub-application mounted at /v2."""
    for route in app.routes:
        if isinstance(route, Mount) and route.path == "/v2" and isinstance(route.app, FastAPI):
            return route.app
    raise LookupError("no Manila application is mounted at /v2")


def install(app: FastAPI) -> None:
    """Serve floe's documents (call before the /v2 mount, so that /v2/openapi.json is this app's)."""
    app.openapi = lambda: v1_document(app)  # type: ignore[method-assign]

    @app.get("/v2/openapi.json", include_in_schema=False)
    def manila_openapi(request: Request) -> JSONResponse:
        return JSONResponse(manila_document(manila_app(request.app)))
