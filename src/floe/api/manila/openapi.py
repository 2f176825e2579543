"""What Manila's OpenAPI document (/v2/openapi.json) adds to FastAPI's: the request bodies and
query parameters of the routes that read them by hand, and their real success codes."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI

from floe.api import openapi
from floe.api.manila.errors import MANILA_FAULTS

VERSION_HEADER = {
    "name": "X-OpenStack-Manila-API-Version", "in": "header", "required": False,
    "description": "`2.N` or `latest`; 400 if malformed, 406 if out of range.",
    "schema": {"type": "string", "pattern": r"^(latest|2\.[0-9]{1,2})$"},
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

_QUOTA = {"type": ["integer", "string", "null"], "description": "-1 (unlimited) or 0 to 2147483647."}
QUOTA_SET_UPDATE = {
    "type": "object",
    "required": ["quota_set"],
    "properties": {
        "quota_set": {
            "type": "object",
            "description": "floe's share quotas are shares and gigabytes; Manila's others may only be 0.",
            "properties": {
                "shares": _QUOTA, "gigabytes": _QUOTA, "tenant_id": _NULLABLE_STRING,
                "force": {"type": ["boolean", "string", "null"]},
            },
        }
    },
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
    ("/quota-sets/{project_id}", "put"): QUOTA_SET_UPDATE,
    ("/os-quota-sets/{project_id}", "put"): QUOTA_SET_UPDATE,
}
# Success codes beyond what the route declares: actions answer 200 with a body (access rules)
# or 202 without one.
MANILA_EXTRA_SUCCESS = {("/shares/{ident}/action", "post"): {"202": {"description": "Accepted (no body)"}}}
_NO_BODY = {("/shares/{ident}", "delete"), ("/quota-sets/{project_id}", "delete"),
            ("/os-quota-sets/{project_id}", "delete")}


def document(manila: FastAPI) -> dict[str, Any]:
    """The document of /v2 (Manila), with every path given in full (/v2/...)."""
    doc = openapi.document(
        manila,
        description="OpenStack Manila's v2 API for floe's shares. Every path may also be given with the token's "
                    "project id after /v2 (/v2/{project_id}/shares). Errors are Manila faults.",
    )
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
    openapi.fix_operations(doc, MANILA_FAULTS, VERSION_HEADER, prefix="/v2")
    doc["paths"] = {"/v2" + path: item for path, item in doc["paths"].items()}
    return openapi.finish(doc, MANILA_FAULTS)
