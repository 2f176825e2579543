"""Keystone's error shape: {"error": {"code": 404, "message": "...", "title": "Not Found"}}."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from floe.api.errors import ErrorShape


def error_document(status: int, message: str, request_id: str = "", **_extra: Any) -> dict:
    """The body of a Keystone error (it carries no request id: that is in the response header)."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    return {"error": {"code": status, "message": message or title, "title": title}}


SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "title"],
            "properties": {"code": {"type": "integer"}, "message": {"type": "string"}, "title": {"type": "string"}},
        }
    },
}

KEYSTONE_ERRORS = ErrorShape("KeystoneError", error_document, SCHEMA)
