"""The dashboard's sign-in session and its CSRF tokens.

A session is a Keystone token (issued by `identity.issue_for_password`, as `POST
/identity/v3/auth/tokens` issues one) kept in a cookie: HttpOnly (no script reads it),
SameSite=Strict (no other site's page sends it), Path=/, Secure when the request came over
https. Signing out revokes the token. Every form carries a CSRF token: an HMAC of a fixed label
keyed by the session's token, so only a page served to that session knows it and no state is
kept server-side. The sign-in form, which has no session yet, uses a double-submit cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request
from fastapi.responses import Response

from floe.errors import NotAuthorized
from floe.services import identity
from floe.services.identity import Caller

SESSION_COOKIE = "floe_session"
LOGIN_CSRF_COOKIE = "floe_login_csrf"
CSRF_FIELD = "csrf_token"
_CSRF_LABEL = b"floe-dashboard-csrf-v1"


class LoginRequired(Exception):
    """No valid session: the page answers with a redirect to the sign-in form."""

    def __init__(self, next_path: str = "/dashboard/"):
        super().__init__(next_path)
        self.next_path = next_path


class CSRFError(Exception):
    """A form came without the CSRF token of its session (403)."""


def secret_of(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or None


def caller_of(request: Request) -> Caller:
    """The signed-in caller; LoginRequired without a valid session (expired or revoked included)."""
    secret = secret_of(request)
    if not secret:
        raise LoginRequired(_next_path(request))
    try:
        return identity.authenticate(request.app.state.runtime.db, secret)
    except NotAuthorized:
        raise LoginRequired(_next_path(request)) from None


def _next_path(request: Request) -> str:
    path = request.url.path
    return path if path.startswith("/dashboard/") and request.method == "GET" else "/dashboard/"


def csrf_token(request: Request) -> str:
    """The CSRF token of this request's session (empty without one)."""
    secret = secret_of(request)
    if not secret:
        return ""
    return hmac.new(secret.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()


def check_csrf(request: Request, sent: object) -> None:
    """CSRFError unless `sent` is this session's CSRF token."""
    expected = csrf_token(request)
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(expected, sent):
        raise CSRFError("The form's security token is missing or wrong: reload the page and try again.")


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def check_login_csrf(request: Request, sent: object) -> None:
    """The sign-in form's double-submit check: the field must equal the cookie set with the form."""
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    if not cookie or not isinstance(sent, str) or not hmac.compare_digest(cookie, sent):
        raise CSRFError("The sign-in form expired or came from elsewhere: reload the page and try again.")


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="strict",
                        secure=_secure(request))


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="strict", secure=_secure(request))
