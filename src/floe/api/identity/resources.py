"""Keystone's /v3 resources: domains, projects, users, roles, role assignments and
application credentials. Thin: each route parses, calls one service function (which
authorises the caller) and renders Keystone's body."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response

from floe.api.auth import CallerDep, RuntimeDep
from floe.api.identity import views
from floe.api.identity.tokens import parse_expiry
from floe.errors import InvalidInput
from floe.services import accounts

router = APIRouter(prefix="/v3", tags=["identity"])
Json = Annotated[Any, Body()]


def _body(body: Any, key: str) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get(key), dict):
        raise InvalidInput(f"Invalid input: the request body must be an object with a '{key}' object.")
    return body[key]


def _opt_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"Invalid input for field '{key}': it must be a string.")
    return value


def _opt_bool(obj: dict[str, Any], key: str) -> bool | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, bool):
        raise InvalidInput(f"Invalid input for field '{key}': it must be true or false.")
    return value


def _query_bool(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.lower() not in ("0", "false", "no", "off")


# -- domains ------------------------------------------------------------------------------------

@router.get("/domains")
def list_domains(request: Request, runtime: RuntimeDep, caller: CallerDep, name: str | None = None) -> dict:
    return views.collection(request, "domains", [views.domain(request, d) for d in
                                                 accounts.list_domains(runtime.db, caller, name)])


@router.get("/domains/{domain_id}")
def show_domain(request: Request, runtime: RuntimeDep, caller: CallerDep, domain_id: str) -> dict:
    return {"domain": views.domain(request, accounts.get_domain(runtime.db, caller, domain_id))}


# -- projects -----------------------------------------------------------------------------------

@router.get("/projects")
def list_projects(request: Request, runtime: RuntimeDep, caller: CallerDep, name: str | None = None,
                  domain_id: str | None = None, enabled: str | None = None) -> dict:
    found = accounts.list_projects(runtime.db, caller, name=name, domain_id=domain_id, enabled=_query_bool(enabled))
    return views.collection(request, "projects", [views.project(request, p) for p in found])


@router.post("/projects", status_code=201)
def create_project(request: Request, runtime: RuntimeDep, caller: CallerDep, body: Json = None) -> dict:
    p = _body(body, "project")
    project = accounts.new_project(runtime.db, caller, _opt_str(p, "name"), _opt_str(p, "domain_id"),
                                   _opt_str(p, "description"), _opt_bool(p, "enabled"))
    return {"project": views.project(request, project)}


@router.get("/projects/{project_id}")
def show_project(request: Request, runtime: RuntimeDep, caller: CallerDep, project_id: str) -> dict:
    return {"project": views.project(request, accounts.get_project(runtime.db, caller, project_id))}


@router.patch("/projects/{project_id}")
def update_project(request: Request, runtime: RuntimeDep, caller: CallerDep, project_id: str,
                   body: Json = None) -> dict:
    p = _body(body, "project")
    project = accounts.update_project(runtime.db, caller, project_id, name=_opt_str(p, "name"),
                                      description=_opt_str(p, "description"), enabled=_opt_bool(p, "enabled"))
    return {"project": views.project(request, project)}


@router.delete("/projects/{project_id}", status_code=204)
def delete_project(runtime: RuntimeDep, caller: CallerDep, project_id: str) -> Response:
    accounts.delete_project(runtime.db, caller, project_id)
    return Response(status_code=204)


# -- users --------------------------------------------------------------------------------------

@router.get("/users")
def list_users(request: Request, runtime: RuntimeDep, caller: CallerDep, name: str | None = None,
               domain_id: str | None = None, enabled: str | None = None) -> dict:
    found = accounts.list_users(runtime.db, caller, name=name, domain_id=domain_id, enabled=_query_bool(enabled))
    return views.collection(request, "users", [views.user(request, u) for u in found])


@router.post("/users", status_code=201)
def create_user(request: Request, runtime: RuntimeDep, caller: CallerDep, body: Json = None) -> dict:
    u = _body(body, "user")
    user = accounts.new_user(
        runtime.db, caller, _opt_str(u, "name"), password=_opt_str(u, "password"),
        domain_id=_opt_str(u, "domain_id"), default_project_id=_opt_str(u, "default_project_id"),
        enabled=_opt_bool(u, "enabled"), email=_opt_str(u, "email"), description=_opt_str(u, "description"))
    return {"user": views.user(request, user)}


@router.get("/users/{user_id}")
def show_user(request: Request, runtime: RuntimeDep, caller: CallerDep, user_id: str) -> dict:
    return {"user": views.user(request, accounts.get_user(runtime.db, caller, user_id))}


@router.patch("/users/{user_id}")
def update_user(request: Request, runtime: RuntimeDep, caller: CallerDep, user_id: str, body: Json = None) -> dict:
    u = _body(body, "user")
    user = accounts.update_user(
        runtime.db, caller, user_id, name=_opt_str(u, "name"), password=_opt_str(u, "password"),
        enabled=_opt_bool(u, "enabled"), email=_opt_str(u, "email"), description=_opt_str(u, "description"),
        default_project_id=_opt_str(u, "default_project_id"))
    return {"user": views.user(request, user)}


@router.delete("/users/{user_id}", status_code=204)
def delete_user(runtime: RuntimeDep, caller: CallerDep, user_id: str) -> Response:
    accounts.delete_user(runtime.db, caller, user_id)
    return Response(status_code=204)


@router.post("/users/{user_id}/password", status_code=204)
def change_password(runtime: RuntimeDep, caller: CallerDep, user_id: str, body: Json = None) -> Response:
    u = _body(body, "user")
    accounts.change_password(runtime.db, caller, user_id, _opt_str(u, "original_password"), _opt_str(u, "password"))
    return Response(status_code=204)


@router.get("/users/{user_id}/projects")
def user_projects(request: Request, runtime: RuntimeDep, caller: CallerDep, user_id: str) -> dict:
    found = accounts.list_projects(runtime.db, caller, user_id=user_id)
    return views.collection(request, "projects", [views.project(request, p) for p in found])


# -- roles and assignments ----------------------------------------------------------------------

@router.get("/roles")
def list_roles(request: Request, runtime: RuntimeDep, caller: CallerDep, name: str | None = None) -> dict:
    return views.collection(request, "roles", [views.role(request, r) for r in
                                               accounts.list_roles(runtime.db, caller, name)])


@router.get("/roles/{role_id}")
def show_role(request: Request, runtime: RuntimeDep, caller: CallerDep, role_id: str) -> dict:
    return {"role": views.role(request, accounts.get_role(runtime.db, caller, role_id))}


@router.get("/projects/{project_id}/users/{user_id}/roles")
def project_user_roles(request: Request, runtime: RuntimeDep, caller: CallerDep, project_id: str,
                       user_id: str) -> dict:
    found = accounts.roles_of(runtime.db, caller, project_id, user_id)
    return views.collection(request, "roles", [views.role(request, r) for r in found])


@router.put("/projects/{project_id}/users/{user_id}/roles/{role_id}", status_code=204)
def grant_role(runtime: RuntimeDep, caller: CallerDep, project_id: str, user_id: str, role_id: str) -> Response:
    accounts.grant(runtime.db, caller, project_id, user_id, role_id)
    return Response(status_code=204)


@router.head("/projects/{project_id}/users/{user_id}/roles/{role_id}", status_code=204)
@router.get("/projects/{project_id}/users/{user_id}/roles/{role_id}", status_code=204)
def check_role(runtime: RuntimeDep, caller: CallerDep, project_id: str, user_id: str, role_id: str) -> Response:
    accounts.check_grant(runtime.db, caller, project_id, user_id, role_id)
    return Response(status_code=204)


@router.delete("/projects/{project_id}/users/{user_id}/roles/{role_id}", status_code=204)
def revoke_role(runtime: RuntimeDep, caller: CallerDep, project_id: str, user_id: str, role_id: str) -> Response:
    accounts.revoke(runtime.db, caller, project_id, user_id, role_id)
    return Response(status_code=204)


@router.get("/role_assignments")
def role_assignments(request: Request, runtime: RuntimeDep, caller: CallerDep) -> dict:
    q = request.query_params
    found = accounts.list_assignments(runtime.db, caller, user_id=q.get("user.id"),
                                      project_id=q.get("scope.project.id"), role_id=q.get("role.id"))
    names = "include_names" in q and _query_bool(q.get("include_names") or "true")
    return views.collection(request, "role_assignments",
                            [views.assignment(request, a, bool(names)) for a in found])


# -- application credentials --------------------------------------------------------------------

@router.get("/users/{user_id}/application_credentials")
def list_credentials(request: Request, runtime: RuntimeDep, caller: CallerDep, user_id: str,
                     name: str | None = None) -> dict:
    found = accounts.list_credentials(runtime.db, caller, user_id, name)
    return views.collection(request, "application_credentials",
                            [views.credential(request, c, roles) for c, roles in found])


@router.post("/users/{user_id}/application_credentials", status_code=201)
def create_credential(request: Request, runtime: RuntimeDep, caller: CallerDep, user_id: str,
                      body: Json = None) -> dict:
    c = _body(body, "application_credential")
    roles = c.get("roles")
    if roles is not None and not isinstance(roles, list):
        raise InvalidInput("Invalid input for field 'roles': a list of role objects.")
    if c.get("access_rules"):
        raise InvalidInput("floe does not support access rules on application credentials.")
    new = accounts.create_credential(
        runtime.db, caller, user_id, _opt_str(c, "name"), secret=_opt_str(c, "secret"),
        description=_opt_str(c, "description"), expires_at=parse_expiry(c.get("expires_at")), roles=roles,
        unrestricted=_opt_bool(c, "unrestricted"))
    return {"application_credential": views.credential(request, new.credential, new.roles, secret=new.secret)}


@router.get("/users/{user_id}/application_credentials/{cred_id}")
def show_credential(request: Request, runtime: RuntimeDep, caller: CallerDep, user_id: str, cred_id: str) -> dict:
    cred, roles = accounts.get_credential(runtime.db, caller, user_id, cred_id)
    return {"application_credential": views.credential(request, cred, roles)}


@router.delete("/users/{user_id}/application_credentials/{cred_id}", status_code=204)
def delete_credential(runtime: RuntimeDep, caller: CallerDep, user_id: str, cred_id: str) -> Response:
    accounts.delete_credential(runtime.db, caller, user_id, cred_id)
    return Response(status_code=204)
