"""Nova's error shape, the fault: {"itemNotFound": {"code": 404, "message": "..."}}."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from floe.api.errors import ErrorShape

# Nova's fault names by status (nova/api/openstack/wsgi.py); others are computeFault.
FAULT_NAMES = {
    400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound", 405: "badMethod",
    409: "conflictingRequest", 413: "overLimit", 415: "badMediaType", 429: "overLimit", 501: "notImplemented",
    503: "serviceUnavailable",
}


def fault_document(status: int, message: str, request_id: str = "", **_extra: Any) -> dict:
    """The body of a Nova fault."""
    name = FAULT_NAMES.get(status, "computeFault")
    body = {name: {"code": status, "message": message or HTTPStatus(status).phrase}}
    if request_id:
        body[name]["request_id"] = request_id
    return body


SCHEMA = {
    "type": "object",
    "description": "Nova's fault: one key, the fault's name (badRequest, itemNotFound, conflictingRequest, ...).",
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

NOVA_FAULTS = ErrorShape("NovaFault", fault_document, SCHEMA)
