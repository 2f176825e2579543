"""Small HTTP helpers every API of floe uses: headers of an ASGI scope, base URLs and links."""

from __future__ import annotations

from fastapi import Request
from starlette.types import Scope

REQUEST_ID_HEADER = "X-OpenStack-Request-Id"


def header(scope: Scope, name: bytes) -> str | None:
    """A request header from the ASGI scope (`name` in lower case); repeated ones joined by ", "."""
    values = [v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == name]
    return ", ".join(values) if values else None


def request_id_of(request: Request) -> str:
    """The request id the app's middleware gave this request (in X-OpenStack-Request-Id)."""
    return getattr(request.state, "request_id", "")


def host_url(request: Request) -> str:
    """scheme://host[:port][root_path], as Magnum's pecan.request.host_url."""
    return str(request.base_url).rstrip("/")


def link(rel: str, href: str, type_: str | None = None) -> dict[str, str]:
    out = {"href": href, "rel": rel}
    if type_:
        out["type"] = type_
    return out
