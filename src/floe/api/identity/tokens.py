"""Keystone's /v3/auth: issuing tokens (password, token, application credential), validating
and revoking them, and what a token may see of the catalog, projects and domains."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from floe.api.auth import CallerDep, RuntimeDep
from floe.api.identity import views
from floe.errors import InvalidInput, NotAuthorized, NotFound
from floe.services import accounts, identity
from floe.services.identity import Scope

router = APIRouter(prefix="/v3/auth", tags=["identity"])


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"Invalid input for field '{what}': it must be an object.")
    return value


def _str(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"Invalid input for field '{what}': it must be a string.")
    return value


def _domain_ref(parent: dict[str, Any], what: str) -> tuple[str | None, str | None]:
    if parent.get("domain") is None:
        return None, None
    d = _obj(parent["domain"], f"{what}.domain")
    return _str(d.get("id"), f"{what}.domain.id"), _str(d.get("name"), f"{what}.domain.name")


def _scope(auth: dict[str, Any]) -> Scope:
    raw = auth.get("scope")
    if raw == "unscoped":
        return Scope(unscoped=True)
    if raw is None:
        return Scope()
    raw = _obj(raw, "auth.scope")
    if "system" in raw:
        raise NotAuthorized("floe has no system scope: scope the token to a project.")
    if raw.get("project") is not None:
        p = _obj(raw["project"], "auth.scope.project")
        pid, pname = _str(p.get("id"), "auth.scope.project.id"), _str(p.get("name"), "auth.scope.project.name")
        did, dname = _domain_ref(p, "auth.scope.project")
        if not pid and not (pname and (did or dname)):
            raise InvalidInput("A project scope needs an id, or a name and a domain.")
        return Scope(project_id=pid, project_name=pname, project_domain_id=did, project_domain_name=dname)
    if raw.get("domain") is not None:
        did, dname = _domain_ref(raw, "auth.scope")
        if not (did or dname):
            raise InvalidInput("A domain scope needs an id or a name.")
        return Scope(domain_id=did, domain_name=dname)
    if raw:
        raise InvalidInput("The scope must name a project or a domain.")
    return Scope()


def _lifetime(request: Request) -> float:
    return float(request.app.state.runtime.settings.token_expiration)


async def _issue(request: Request, runtime, body: Any, caller_token: str | None) -> identity.Issued:
    auth = _obj(_obj(body, "body").get("auth"), "auth")
    ident = _obj(auth.get("identity"), "auth.identity")
    methods = ident.get("methods")
    if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
        raise InvalidInput("Invalid input for field 'identity.methods': a non-empty list of method names.")
    method = methods[0]
    db = runtime.db
    if method == "password":
        pw = _obj(ident.get("password"), "auth.identity.password")
        user = _obj(pw.get("user"), "auth.identity.password.user")
        password = _str(user.get("password"), "password.user.password")
        if not password:
            raise NotAuthorized("The request you have made requires authentication.")
        did, dname = _domain_ref(user, "password.user")
        scope = _scope(auth)
        return await run_in_threadpool(
            identity.issue_for_password, db, password=password, scope=scope, lifetime=_lifetime(request),
            user_id=_str(user.get("id"), "password.user.id"), name=_str(user.get("name"), "password.user.name"),
            domain_id=did, domain_name=dname)
    if method == "token":
        tok = _obj(ident.get("token"), "auth.identity.token")
        secret = _str(tok.get("id"), "token.id") or caller_token
        if not secret:
            raise NotAuthorized("The request you have made requires authentication.")
        return await run_in_threadpool(identity.issue_for_token, db, secret=secret, scope=_scope(auth),
                                       lifetime=_lifetime(request))
    if method == "application_credential":
        ac = _obj(ident.get("application_credential"), "auth.identity.application_credential")
        secret = _str(ac.get("secret"), "application_credential.secret")
        if not secret:
            raise NotAuthorized("The request you have made requires authentication.")
        user = ac.get("user") or {}
        user = _obj(user, "application_credential.user")
        did, dname = _domain_ref(user, "application_credential.user")
        return await run_in_threadpool(
            identity.issue_for_application_credential, db, secret=secret, lifetime=_lifetime(request),
            cred_id=_str(ac.get("id"), "application_credential.id"),
            name=_str(ac.get("name"), "application_credential.name"),
            user_id=_str(user.get("id"), "application_credential.user.id"),
            user_name=_str(user.get("name"), "application_credential.user.name"),
            user_domain_id=did, user_domain_name=dname)
    raise NotAuthorized(f"Attempted to authenticate with an unsupported method: {method}.")


@router.post("/tokens", status_code=201, summary="Issue a token (password, token or application credential)")
async def issue(request: Request, runtime: RuntimeDep, body: Annotated[Any, Body()] = None,
                nocatalog: str | None = None,
                x_auth_token: Annotated[str | None, Header()] = None) -> JSONResponse:
    issued = await _issue(request, runtime, body, x_auth_token)
    doc = views.token(request, issued.info, with_catalog=nocatalog is None)
    return JSONResponse(doc, status_code=201, headers={"X-Subject-Token": issued.secret})


def _subject(runtime, caller: identity.Caller, subject: str | None) -> identity.TokenInfo:
    if not subject:
        raise InvalidInput("The X-Subject-Token header names the token to act on.")
    info = identity.token_info(runtime.db, subject)
    # Keystone's policy: an admin, or the token's own user.
    if not caller.is_admin and info.user_id != caller.user_id:
        raise NotFound("Could not find token.")
    return info


@router.get("/tokens", summary="Validate a token (X-Subject-Token)")
def validate(request: Request, runtime: RuntimeDep, caller: CallerDep, nocatalog: str | None = None,
             x_subject_token: Annotated[str | None, Header()] = None) -> JSONResponse:
    info = _subject(runtime, caller, x_subject_token)
    return JSONResponse(views.token(request, info, with_catalog=nocatalog is None),
                        headers={"X-Subject-Token": x_subject_token or ""})


@router.head("/tokens", status_code=200, summary="Check a token (X-Subject-Token)")
def check(runtime: RuntimeDep, caller: CallerDep,
          x_subject_token: Annotated[str | None, Header()] = None) -> Response:
    _subject(runtime, caller, x_subject_token)
    return Response(status_code=200)


@router.delete("/tokens", status_code=204, summary="Revoke a token (X-Subject-Token)")
def revoke(runtime: RuntimeDep, caller: CallerDep,
           x_subject_token: Annotated[str | None, Header()] = None) -> Response:
    _subject(runtime, caller, x_subject_token)
    identity.revoke_token(runtime.db, x_subject_token or "")
    return Response(status_code=204)


@router.get("/catalog", summary="The service catalog")
def catalog(request: Request, caller: CallerDep) -> dict[str, Any]:
    return {"catalog": views.catalog(request), "links": {"self": str(request.url)}}


@router.get("/projects", summary="Projects the token's user may scope to")
def projects(request: Request, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    found = accounts.list_projects(runtime.db, caller, user_id=caller.user_id, enabled=True)
    return views.collection(request, "projects", [views.project(request, p) for p in found])


@router.get("/domains", summary="Domains the token's user may scope to")
def domains(request: Request, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    found = accounts.list_domains(runtime.db, caller) if caller.is_admin else []
    return views.collection(request, "domains", [views.domain(request, d) for d in found])


def parse_expiry(value: Any) -> datetime | None:
    """An application credential's expires_at (ISO 8601; naive means UTC), or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("Invalid input for field 'expires_at': an ISO 8601 time.")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"Invalid input for field 'expires_at': {value!r} is not an ISO 8601 time.") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
