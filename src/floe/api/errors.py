"""One error-shaping mechanism for every API floe serves, given each API's error shape.

Every refusal starts as a request error of floe's one error model (`floe.errors`: a status
and a message), a request-validation error, or an HTTP error from routing. Each API names
its `ErrorShape` (Magnum's `{"errors": [...]}`, Manila's `{"itemNotFound": {...}}`) and
`install_error_handlers` maps all three to it; the app's outermost middleware uses the same
shapes for refusals it makes before routing (body too large) and for the 500 of last resort.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from floe.api.http import request_id_of
from floe.errors import ServiceError
from floe.services.templates import describe_validation_errors


@dataclass(frozen=True)
class ErrorShape:
    """How one API writes an error.

    `document(status, detail, request_id, **extra)` builds the body; `name` and `schema` describe
    it in the API's OpenAPI document.
    """

    name: str
    document: Callable[..., dict[str, Any]]
    schema: dict[str, Any] = field(hash=False, compare=False)

    def response(self, status: int, detail: str, request_id: str = "",
                 headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
        return JSONResponse(self.document(status, detail, request_id, **extra), status_code=status,
                            headers=headers or None)


def validation_detail(errors: list[dict[str, Any]]) -> str:
    """Readable text for FastAPI's request-validation errors, naming each field."""
    for err in errors:
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "")
            return f"The request body is not valid JSON{': ' + str(reason) if reason else ''}"
    described = []
    for err in errors:
        loc = list(err.get("loc", ()))
        if loc and loc[0] in ("query", "path", "header"):
            err = dict(err, loc=(f"{loc[1]} ({loc[0]} parameter)", *loc[2:]))
        described.append(err)
    return describe_validation_errors(described, skip=("body",))


def http_detail(request: Request, exc: StarletteHTTPException) -> str:
    """What routing's own refusals (no such path, wrong method) say, naming the path."""
    detail = str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        return f"The resource could not be found: {request.url.path}"
    if exc.status_code == 405:
        return f"The method {request.method} is not allowed for {request.url.path}"
    return detail


def install_error_handlers(app: FastAPI, shape: ErrorShape) -> None:
    """Answer request errors, validation errors and HTTP errors of `app` in `shape`."""

    async def request_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceError)
        return shape.response(exc.status, exc.detail, request_id_of(request))

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return shape.response(400, validation_detail(list(exc.errors())), request_id_of(request))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return shape.response(exc.status_code, http_detail(request, exc), request_id_of(request),
                              headers=getattr(exc, "headers", None))

    app.add_exception_handler(ServiceError, request_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


# --- the OpenStack fault, shared by Manila and Nova ----------------------------------------
# Fault names by status, as manila/api/openstack/wsgi.py and nova/api/openstack/wsgi.py both
# have them; any other status is a computeFault.
FAULT_NAMES = {
    400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound", 405: "badMethod",
    409: "conflictingRequest", 413: "overLimit", 415: "badMediaType", 429: "overLimit", 501: "notImplemented",
    503: "serviceUnavailable",
}


def fault_document(status: int, message: str, request_id: str = "", **_extra: Any) -> dict:
    """The body of an OpenStack fault: {"itemNotFound": {"code": 404, "message": ..., "request_id": ...}}."""
    name = FAULT_NAMES.get(status, "computeFault")
    body = {name: {"code": status, "message": message or HTTPStatus(status).phrase}}
    if request_id:
        body[name]["request_id"] = request_id
    return body


def fault_shape(name: str, service: str) -> ErrorShape:
    """The ErrorShape of an API answering OpenStack faults (`service` names it in the schema)."""
    return ErrorShape(name, fault_document, {
        "type": "object",
        "description": f"{service}'s fault: one key, the fault's name (badRequest, itemNotFound, ...).",
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
    })
