"""What Magnum's OpenAPI document (/openapi.json, with floe's extensions) adds to FastAPI's."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from floe.api import openapi
from floe.api.magnum.errors import MAGNUM_ERRORS

VERSION_HEADER = {
    "name": "OpenStack-API-Version", "in": "header", "required": False,
    "description": "`container-infra 1.N` or `container-infra latest`; 400 if malformed, 406 if out of range.",
    "schema": {"type": "string", "pattern": r"^container-infra (latest|1\.[0-9]{1,2})$"},
}


def document(app: FastAPI) -> dict[str, Any]:
    """The document of /v1 (Magnum and floe's extensions) and the version roots."""
    doc = openapi.document(app)
    openapi.fix_operations(doc, MAGNUM_ERRORS, VERSION_HEADER)
    _tighten(doc)
    doc["info"]["description"] += (
        " Errors are Magnum's `errors` documents. Manila's v2 API (shares) is described at /v2/openapi.json."
    )
    return openapi.finish(doc, MAGNUM_ERRORS)


def _tighten(doc: dict[str, Any]) -> None:
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
                openapi.constrain(props[field_name], **constraints)


