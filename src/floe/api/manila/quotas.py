"""Manila's quotas under /v2: a project's quota set (shares, gigabytes), its defaults and detail,
set and reset by an admin, and the absolute limits.

`/quota-sets` is Manila's path from microversion 2.7, `/os-quota-sets` the one before it; floe
answers both at every version. Per-user and per-share-type quotas are not supported (400).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response

from floe.api.auth import CallerDep, RuntimeDep
from floe.api.manila import views
from floe.errors import InvalidInput
from floe.services import quotas
from floe.services.templates import ascii_int

router = APIRouter(tags=["quotas"])

# Manila's keys that are not quotas, and its quotas floe has nothing to count for (shown as 0).
NON_QUOTA_KEYS = ("tenant_id", "id", "force", "share_type")
UNSUPPORTED = ("snapshots", "snapshot_gigabytes", "share_networks", "share_groups", "share_group_snapshots",
               "share_replicas", "replica_gigabytes", "per_share_gigabytes", "encryption_keys")
TRUE = ("1", "t", "true", "on", "y", "yes")


def _no_user_or_type(request: Request) -> None:
    for key in ("user_id", "share_type"):
        if request.query_params.get(key):
            raise InvalidInput(f"{key} quotas are not supported: floe's share quotas are per project.")


def _value(key: str, value: Any) -> int:
    """A quota value as Manila takes it: an integer, or a string of ASCII digits (-1: unlimited)."""
    if isinstance(value, str):
        text = value.strip()
        number = ascii_int(text.removeprefix("-")) if text else None
        if number is not None:
            value = -number if text.startswith("-") else number
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"Quota {str(value)[:64]!r} for {key} should be integer.")
    return quotas.check_limit(value, key)


def _updates(body: Any) -> tuple[dict[str, int], bool]:
    """The quotas a PUT sets, and its force flag; InvalidInput (nothing set) on any bad key or value."""
    if not isinstance(body, dict) or not isinstance(body.get("quota_set"), dict):
        raise InvalidInput("The request body must be an object with a 'quota_set' object.")
    data = body["quota_set"]
    bad = [k for k in data if k not in quotas.SHARE_RESOURCES and k not in NON_QUOTA_KEYS and k not in UNSUPPORTED]
    if bad:
        raise InvalidInput(f"Bad key(s) {','.join(sorted(bad))[:200]} in quota_set.")
    if data.get("share_type"):
        raise InvalidInput("share_type quotas are not supported: floe's share quotas are per project.")
    force = data.get("force")
    force = force is True or (isinstance(force, str) and force.strip().lower() in TRUE)
    values: dict[str, int] = {}
    for key, value in data.items():
        if key in NON_QUOTA_KEYS or value is None:
            continue
        number = _value(key, value)
        if key in UNSUPPORTED:
            if number != 0:
                raise InvalidInput(f"The {key} quota cannot be set: floe's shares have no snapshots, networks, "
                                   "groups, replicas or encryption keys (it is always 0).")
            continue
        values[key] = number
    return values, force


def _show(request: Request, runtime, caller, project_id: str, detail: bool) -> dict[str, Any]:
    _no_user_or_type(request)
    found = quotas.quota_set(runtime.db, runtime.settings, caller, project_id)
    if detail:
        return {"quota_set": views.quota_set_detail_view(found)}
    return {"quota_set": views.quota_set_view(found.project_id, found.limits)}


@router.get("/quota-sets/{project_id}")
@router.get("/os-quota-sets/{project_id}")
def show_quota_set(request: Request, runtime: RuntimeDep, caller: CallerDep, project_id: str) -> dict[str, Any]:
    """A project's share quotas (its own, or any project's for an admin)."""
    return _show(request, runtime, caller, project_id, detail=False)


@router.get("/quota-sets/{project_id}/detail")
@router.get("/os-quota-sets/{project_id}/detail")
def show_quota_set_detail(request: Request, runtime: RuntimeDep, caller: CallerDep,
                          project_id: str) -> dict[str, Any]:
    """Each quota's limit, what is in use and what is reserved (always 0: floe reserves nothing)."""
    return _show(request, runtime, caller, project_id, detail=True)


@router.get("/quota-sets/{project_id}/defaults")
@router.get("/os-quota-sets/{project_id}/defaults")
def show_quota_defaults(runtime: RuntimeDep, caller: CallerDep, project_id: str) -> dict[str, Any]:
    """The quotas a project has unless an admin sets its own (FLOE_SHARE_QUOTA_*)."""
    return {"quota_set": views.quota_set_view(project_id, quotas.default_set(runtime.settings))}


@router.put("/quota-sets/{project_id}")
@router.put("/os-quota-sets/{project_id}")
def update_quota_set(request: Request, runtime: RuntimeDep, caller: CallerDep, project_id: str,
                     body: Annotated[Any, Body()] = None) -> dict[str, Any]:
    """Set a project's share quotas (admin only); a limit below what it uses needs `force`."""
    _no_user_or_type(request)
    values, force = _updates(body)
    found = quotas.set_quotas(runtime.db, runtime.settings, caller, project_id, values, force=force)
    return {"quota_set": views.quota_set_view(found.project_id, found.limits)}


@router.delete("/quota-sets/{project_id}", status_code=202, response_class=Response)
@router.delete("/os-quota-sets/{project_id}", status_code=202, response_class=Response)
def reset_quota_set(request: Request, runtime: RuntimeDep, caller: CallerDep, project_id: str) -> Response:
    """Reset a project's share quotas to the defaults (admin only)."""
    _no_user_or_type(request)
    quotas.reset_quotas(runtime.db, caller, project_id)
    return Response(status_code=202)


@router.get("/limits")
def limits(runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """The project's absolute limits and what it uses."""
    found = quotas.quota_set(runtime.db, runtime.settings, caller, caller.project_id)
    return {"limits": views.limits_view(found)}

