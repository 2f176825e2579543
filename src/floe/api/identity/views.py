"""Keystone's representations of floe's identity objects (the bodies openstacksdk and
python-openstackclient read), and the token's service catalog."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Request

from floe.db.models import ApplicationCredential, Domain, Project, Role, User
from floe.db.models.identity import DEFAULT_DOMAIN_ID
from floe.services.accounts import Assignment
from floe.services.identity import DEFAULT_DOMAIN_NAME, TokenInfo

API_VERSION = "v3.14"
REGION = "RegionOne"


def origin(request: Request) -> str:
    """scheme://host[:port] the client reached floe at (sub-applications' base URLs include their mount)."""
    return f"{request.url.scheme}://{request.url.netloc}"


def v3_url(request: Request) -> str:
    return f"{origin(request)}/identity/v3"


def timestamp(value: datetime | None) -> str | None:
    """Keystone's times: ISO 8601 in UTC with microseconds and a Z."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value is not None else None


def version(request: Request) -> dict[str, Any]:
    return {
        "id": API_VERSION,
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": v3_url(request) + "/"}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    }


def collection(request: Request, key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: items, "links": {"self": str(request.url), "previous": None, "next": None}}


def domain(request: Request, d: Domain) -> dict[str, Any]:
    return {"id": d.id, "name": d.name, "description": d.description, "enabled": d.enabled, "tags": [],
            "options": {}, "links": {"self": f"{v3_url(request)}/domains/{d.id}"}}


def project(request: Request, p: Project) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "domain_id": p.domain_id, "description": p.description,
            "enabled": p.enabled, "parent_id": p.domain_id, "is_domain": False, "tags": [], "options": {},
            "links": {"self": f"{v3_url(request)}/projects/{p.id}"}}


def user(request: Request, u: User) -> dict[str, Any]:
    out: dict[str, Any] = {"id": u.id, "name": u.name, "domain_id": u.domain_id, "enabled": u.enabled,
                           "password_expires_at": None, "options": {},
                           "links": {"self": f"{v3_url(request)}/users/{u.id}"}}
    if u.email:
        out["email"] = u.email
    if u.description:
        out["description"] = u.description
    if u.default_project_id:
        out["default_project_id"] = u.default_project_id
    return out


def role(request: Request, r: Role) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "domain_id": None, "description": r.description or None, "options": {},
            "links": {"self": f"{v3_url(request)}/roles/{r.id}"}}


def _domain_ref(domain_id: str) -> dict[str, str]:
    # floe has one domain; its name is fixed (services.identity.DEFAULT_DOMAIN_NAME).
    return {"id": domain_id, "name": DEFAULT_DOMAIN_NAME if domain_id == DEFAULT_DOMAIN_ID else domain_id}


def assignment(request: Request, a: Assignment, names: bool) -> dict[str, Any]:
    role_ = {"id": a.role.id}
    user_ = {"id": a.user.id}
    project_ = {"id": a.project.id}
    if names:
        role_["name"] = a.role.name
        user_.update(name=a.user.name, domain=_domain_ref(a.user.domain_id))  # type: ignore[arg-type]
        project_.update(name=a.project.name, domain=_domain_ref(a.project.domain_id))  # type: ignore[arg-type]
    return {"role": role_, "user": user_, "scope": {"project": project_},
            "links": {"assignment": f"{v3_url(request)}/projects/{a.project.id}/users/{a.user.id}"
                                    f"/roles/{a.role.id}"}}


def credential(request: Request, c: ApplicationCredential, roles: list[Role],
               secret: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": c.id, "name": c.name, "description": c.description or None, "user_id": c.user_id,
        "project_id": c.project_id, "expires_at": timestamp(c.expires_at), "unrestricted": c.unrestricted,
        "access_rules": [], "system": None,
        "roles": [{"id": r.id, "name": r.name, "domain_id": None} for r in roles],
        "links": {"self": f"{v3_url(request)}/users/{c.user_id}/application_credentials/{c.id}"},
    }
    if secret is not None:
        out["secret"] = secret
    return out


def catalog(request: Request) -> list[dict[str, Any]]:
    """floe's services, each at the address the client reached floe at: clients need no overrides."""
    base = origin(request)

    def service(kind: str, name: str, url: str) -> dict[str, Any]:
        return {"id": f"floe-{kind}", "type": kind, "name": name, "endpoints": [
            {"id": f"floe-{kind}-{iface}", "interface": iface, "region": REGION, "region_id": REGION, "url": url}
            for iface in ("public", "internal", "admin")]}

    return [
        service("identity", "keystone", f"{base}/identity/v3"),
        service("container-infra", "magnum", f"{base}/v1"),
        service("sharev2", "manilav2", f"{base}/v2"),
        service("compute", "nova", f"{base}/v2.1"),  # flavors only
    ]


def token(request: Request, info: TokenInfo, with_catalog: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "methods": list(info.methods),
        "user": {"id": info.user_id, "name": info.user_name, "password_expires_at": None,
                 "domain": _domain_ref(info.user_domain_id)},
        "audit_ids": [info.audit_id],
        "expires_at": timestamp(info.expires_at),
        "issued_at": timestamp(info.issued_at),
    }
    scoped = False
    if info.project_id:
        scoped = True
        body["project"] = {"id": info.project_id, "name": info.project_name,
                           "domain": _domain_ref(info.project_domain_id or DEFAULT_DOMAIN_ID)}
        body["is_domain"] = False
    elif info.domain_id:
        scoped = True
        body["domain"] = {"id": info.domain_id, "name": info.domain_name}
    if scoped:
        body["roles"] = [{"id": rid, "name": name} for rid, name in info.roles]
        if with_catalog:
            body["catalog"] = catalog(request)
    if info.application_credential is not None:
        cid, name, restricted = info.application_credential
        body["application_credential"] = {"id": cid, "name": name, "restricted": restricted}
    return {"token": body}
