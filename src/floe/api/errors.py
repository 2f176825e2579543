"""Every error in Magnum's shape: {"errors": [{request_id, code, status, title, detail, links}]}.

python-magnumclient reads `title` and `detail` from the first item to build its exceptions.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from floe.services.errors import ServiceError
from floe.services.templates import describe_validation_errors


def error_document(status: int, detail: str, request_id: str = "", title: str | None = None, **extra: Any) -> dict:
    """The body of an error response."""
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


def error_response(
    status: int,
    detail: str,
    request_id: str = "",
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(error_document(status, detail, request_id, title, **extra), status_code=status, headers=headers)


def request_id_of(request: Request) -> str:
    return getattr(request.state, "request_id", "")


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


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(exc.status, exc.detail, request_id_of(request))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(400, validation_detail(list(exc.errors())), request_id_of(request))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    detail = str(exc.detail)
    if status == 404 and detail == "Not Found":
        detail = f"The resource could not be found: {request.url.path}"
    elif status == 405:
        detail = f"The method {request.method} is not allowed for {request.url.path}"
    return error_response(status, detail, request_id_of(request), headers=getattr(exc, "headers", None))


def install_error_handlers(app: FastAPI) -> None:
    """Map service errors, validation errors and HTTP errors to Magnum's error shape."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
