"""Signing in and out of the dashboard (a Keystone password login; the token kept in a cookie)."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from floe.errors import InvalidInput, NotAuthorized, NotFound
from floe.services import identity
from floe.services.identity import DEFAULT_DOMAIN_NAME, Scope
from floe.web import session
from floe.web.render import page

router = APIRouter(prefix="/dashboard")


def _safe_next(value: str | None) -> str:
    """Only a dashboard path of this site: never an open redirect."""
    if value and value.startswith("/dashboard/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/dashboard/"


def _login_form(request: Request, status: int = 200, message: str = "", **values: str) -> Response:
    token = session.new_login_csrf()
    response = page(request, "login.html", None, status=status, message=message, login_csrf=token,
                    next=_safe_next(request.query_params.get("next") or values.pop("next", None)),
                    domain=values.pop("domain", None) or DEFAULT_DOMAIN_NAME, **values)
    session.set_cookie(request, response, session.LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.get("/login", include_in_schema=False)
def login_form(request: Request) -> Response:
    return _login_form(request)


@router.post("/login", include_in_schema=False)
def login(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    project: str = Form(""),
    domain: str = Form(DEFAULT_DOMAIN_NAME),
    next: str = Form("/dashboard/"),
    csrf_token: str = Form(""),
) -> Response:
    values = {"username": username, "login_project": project, "domain": domain, "next": next}
    try:
        session.check_login_csrf(request, csrf_token)
    except session.CSRFError as exc:
        return _login_form(request, 403, str(exc), **values)
    if not username.strip() or not password:
        return _login_form(request, 400, "Give your user name and password.", **values)
    runtime = request.app.state.runtime
    domain = domain.strip() or DEFAULT_DOMAIN_NAME
    scope = Scope(project_name=project.strip(), project_domain_name=domain) if project.strip() else Scope()
    try:
        issued = identity.issue_for_password(
            runtime.db, password=password, scope=scope, lifetime=runtime.settings.token_expiration,
            name=username.strip(), domain_name=domain)
    except (NotAuthorized, InvalidInput):
        # Keystone says nothing more (which of user, password or project was wrong); nor does this.
        return _login_form(request, 401, "Sign-in failed: check the user name, password, project and domain.",
                           **values)
    response = RedirectResponse(_safe_next(next), status_code=303)
    expires = issued.info.expires_at
    max_age = int(runtime.settings.token_expiration) if expires is not None else None
    session.set_cookie(request, response, session.SESSION_COOKIE, issued.secret, max_age=max_age)
    session.clear_cookie(request, response, session.LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout", include_in_schema=False)
def logout(request: Request, csrf_token: str = Form("")) -> Response:
    session.check_csrf(request, csrf_token)
    secret = session.secret_of(request)
    if secret:
        try:
            identity.revoke_token(request.app.state.runtime.db, secret)
        except NotFound:
            pass  # already revoked or expired: signing out is done either way
    response = RedirectResponse("/dashboard/login", status_code=303)
    session.clear_cookie(request, response, session.SESSION_COOKIE)
    return response
