"""Magnum's error shape: {"errors": [{request_id, code, status, title, detail, links}]}.

python-magnumclient reads `title` and `detail` from the first item to build its exceptions.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from floe.api.errors import ErrorShape


def error_document(status: int, detail: str, request_id: str = "", title: str | None = None, **extra: Any) -> dict:
    """The body of a Magnum error response."""
    item = {
        "request_id": request_id,
        "code": "server" if status >= 500 else "client",
        "status": status,
        # Like Magnum, the title carries the message: python-magnumclient and the openstack
        # CLI show only the title to users.
        "title": title or (detail.split("\n")[0] if status < 500 and detail else HTTPStatus(status).phrase),
        "detail": detail,
        "links": [],
    }
    item.update(extra)
    return {"errors": [item]}


SCHEMA = {
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

MAGNUM_ERRORS = ErrorShape("MagnumError", error_document, SCHEMA)
