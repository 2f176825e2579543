"""Manila's v2 resources under /v2: shares, share types, access rules, export locations, limits.

Field names and shapes are Manila's (python-manilaclient and `openstack share …` read them);
microversion-dependent fields follow the negotiated version where clients care.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import JSONResponse

from floe.api.auth import CallerDep, RuntimeDep
from floe.api.versions import host_url
from floe.api.versions import manila_version as request_version
from floe.db.models import Share, ShareAccessRule
from floe.services import shares as svc
from floe.services.errors import Forbidden, InvalidInput, NotFound
from floe.services.templates import ascii_int

router = APIRouter(tags=["shares"])

AVAILABILITY_ZONE = "floe"
_AZ_ID = "8d1c1c1e-6a3c-5a7e-9b0e-0f1c9e3d2a10"
_EPOCH = datetime(2026, 1, 1)
MAX_PAGING = 2**31 - 1  # limit and offset: SQLite's integers end at 2**63


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.replace(tzinfo=None).isoformat(timespec="microseconds")


def _links(request: Request, share_uuid: str) -> list[dict[str, str]]:
    base = host_url(request)
    return [{"href": f"{base}/v2/shares/{share_uuid}", "rel": "self"},
            {"href": f"{base}/shares/{share_uuid}", "rel": "bookmark"}]


def _type_of(name: str) -> svc.ShareType | None:
    return next((t for t in svc.share_types() if t.name == name), None)


def _rules_status(share: Share) -> str:
    states = {r.state for r in share.access_rules}
    if "error" in states:
        return "error"
    if states & {"queued_to_apply", "queued_to_deny", "applying", "denying"}:
        return "syncing"
    return "active"


def share_summary(request: Request, share: Share) -> dict[str, Any]:
    return {"id": share.uuid, "name": share.name, "links": _links(request, share.uuid)}


def share_detail(request: Request, share: Share) -> dict[str, Any]:
    version = request_version(request)
    stype = _type_of(share.share_type)
    locations = [loc["path"] for loc in share.export_locations or []]
    out: dict[str, Any] = {
        "id": share.uuid,
        "name": share.name,
        "description": share.description,
        "size": share.size,
        "status": share.status,
        "status_reason": share.status_reason,  # floe's: why a share is in error (Manila has user messages)
        "share_proto": share.share_proto,
        "share_type": stype.id if stype else share.share_type,
        "share_type_name": share.share_type,
        "volume_type": share.share_type,
        "project_id": share.project_id,
        "user_id": share.user_id,
        "metadata": dict(share.metadata_ or {}),
        "availability_zone": AVAILABILITY_ZONE,
        "host": f"floe@{share.share_type}#{share.share_type}",
        "created_at": _time(share.created_at),
        "updated_at": _time(share.updated_at),
        "snapshot_id": None,
        "share_network_id": None,
        "share_server_id": None,
        "is_public": False,
        "task_state": None,
        "snapshot_support": False,
        "create_share_from_snapshot_support": False,
        "revert_to_snapshot_support": False,
        "mount_snapshot_support": False,
        "replication_type": None,
        "has_replicas": False,
        "share_group_id": None,
        "source_share_group_snapshot_member_id": None,
        "access_rules_status": _rules_status(share),
        "progress": "100%" if share.status != "creating" else "0%",
        "links": _links(request, share.uuid),
    }
    if version < (2, 9):  # export locations moved to their own resource in 2.9
        out["export_location"] = locations[0] if locations else None
        out["export_locations"] = locations
    return out


def rule_view(request: Request, rule: ShareAccessRule, share_uuid: str | None = None) -> dict[str, Any]:
    version = request_version(request)
    state = rule.state
    if version < (2, 28) and state.startswith("queued"):
        state = "new"  # before 2.28 rules were new, active or error
    out: dict[str, Any] = {
        "id": rule.uuid,
        "share_id": share_uuid,
        "access_type": rule.access_type,
        "access_to": rule.access_to,
        "access_level": rule.access_level,
        "state": state,
        "access_key": rule.access_key,
        "created_at": _time(rule.created_at),
        "updated_at": _time(rule.updated_at),
        "metadata": dict(rule.metadata_ or {}),
    }
    if rule.state_reason:
        out["state_reason"] = rule.state_reason  # floe's: why a rule is in error
    return out


def type_view(t: svc.ShareType) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "description": t.info.description,
        "extra_specs": dict(t.info.extra_specs),
        "required_extra_specs": {"driver_handles_share_servers": t.info.extra_specs["driver_handles_share_servers"]},
        "share_type_access:is_public": True,
        "os-share-type-access:is_public": True,
        "is_default": t.name == svc.DEFAULT_TYPE,
    }


def _body(body: Any, key: str) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get(key), dict):
        raise InvalidInput(f"The request body must be an object with a {key!r} object.")
    return body[key]


# -- shares -----------------------------------------------------------------------


def _list(request: Request, runtime, caller, detail: bool, params: dict[str, str]) -> dict[str, Any]:
    def number(key: str) -> int | None:
        value = params.get(key)
        if value is None:
            return None
        n = ascii_int(value)
        if n is None or n > MAX_PAGING:
            raise InvalidInput(f"{key} must be a whole number from 0 to {MAX_PAGING}, not {value[:64]!r}.")
        return n

    found = svc.list_shares(
        runtime.db, caller, name=params.get("name"), status=params.get("status"),
        share_type=params.get("share_type_id") or params.get("share_type"),
        limit=number("limit"), offset=number("offset") or 0,
    )
    view = share_detail if detail else share_summary
    return {"shares": [view(request, s) for s in found]}


@router.get("/shares")
def list_shares(request: Request, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """The project's shares (id, name, links)."""
    return _list(request, runtime, caller, False, dict(request.query_params))


@router.get("/shares/detail")
def list_shares_detail(request: Request, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """The project's shares with every field."""
    return _list(request, runtime, caller, True, dict(request.query_params))


@router.post("/shares", status_code=202)
def create_share(request: Request, runtime: RuntimeDep, caller: CallerDep,
                 body: Annotated[Any, Body()] = None) -> dict[str, Any]:
    """Queue a new share (status creating)."""
    data = _body(body, "share")
    spec = svc.ShareSpec(
        share_proto=data.get("share_proto"),
        size=data.get("size"),
        name=data.get("name") or data.get("display_name"),
        description=data.get("description") or data.get("display_description"),
        share_type=data.get("share_type") or data.get("volume_type"),
        metadata=data.get("metadata"),
        snapshot_id=data.get("snapshot_id"),
        share_network_id=data.get("share_network_id"),
        share_group_id=data.get("share_group_id"),
        availability_zone=data.get("availability_zone"),
        is_public=bool(data.get("is_public")),
    )
    if spec.availability_zone not in (None, "", AVAILABILITY_ZONE, _AZ_ID):
        raise InvalidInput(f"Availability zone {spec.availability_zone} not found: floe has {AVAILABILITY_ZONE}.")
    if spec.is_public:
        raise InvalidInput("floe shares cannot be public: grant access with access rules.")
    share = svc.create_share(runtime, caller, spec)
    return {"share": share_detail(request, svc.get_share(runtime.db, caller, share.uuid))}


@router.get("/shares/{ident}")
def show_share(request: Request, runtime: RuntimeDep, caller: CallerDep, ident: str) -> dict[str, Any]:
    return {"share": share_detail(request, svc.get_share(runtime.db, caller, ident))}


@router.put("/shares/{ident}")
def update_share(request: Request, runtime: RuntimeDep, caller: CallerDep, ident: str,
                 body: Annotated[Any, Body()] = None) -> dict[str, Any]:
    """Change the name or description."""
    share = svc.update_share(runtime.db, caller, ident, _body(body, "share"))
    return {"share": share_detail(request, svc.get_share(runtime.db, caller, share.uuid))}


@router.delete("/shares/{ident}", status_code=202, response_class=Response)
def delete_share(runtime: RuntimeDep, caller: CallerDep, ident: str) -> Response:
    """Queue the deletion (refused while the share is attached to a cluster)."""
    svc.delete_share(runtime, caller, ident)
    return Response(status_code=202)


@router.post("/shares/{ident}/action")
def share_action(request: Request, runtime: RuntimeDep, caller: CallerDep, ident: str,
                 body: Annotated[Any, Body()] = None) -> Response:
    """Manila's actions: allow_access, deny_access, access_list, extend, shrink, force_delete, reset_status."""
    if not isinstance(body, dict) or len(body) != 1:
        raise InvalidInput("The action body must be an object with exactly one action.")
    ((name, args),) = body.items()
    action = name[3:] if name.startswith("os-") else name
    args = args if isinstance(args, dict) else {}
    if action == "allow_access":
        rule = svc.allow_access(runtime, caller, ident, args.get("access_type"), args.get("access_to"),
                                args.get("access_level"), args.get("metadata"))
        share = svc.get_share(runtime.db, caller, ident)
        return JSONResponse({"access": rule_view(request, rule, share.uuid)})
    if action == "deny_access":
        svc.deny_access(runtime, caller, ident, args.get("access_id"))
        return Response(status_code=202)
    if action == "access_list":
        share, rules = svc.list_access_rules(runtime.db, caller, ident)
        return JSONResponse({"access_list": [rule_view(request, r) for r in rules]})
    if action == "extend":
        svc.extend_share(runtime, caller, ident, args.get("new_size"))
        return Response(status_code=202)
    if action == "shrink":
        svc.shrink_share(runtime, caller, ident, args.get("new_size"))
        return Response(status_code=202)
    if action == "force_delete":
        svc.delete_share(runtime, caller, ident, force=True)
        return Response(status_code=202)
    if action == "reset_status":
        if not caller.is_admin:
            raise Forbidden("Only an admin may reset a share's status.")
        svc.reset_status(runtime, caller, ident, args.get("status"))
        return Response(status_code=202)
    raise InvalidInput(
        f"Share action {name!r} is not supported (allow_access, deny_access, access_list, extend, shrink, "
        "force_delete, reset_status)."
    )


@router.get("/shares/{ident}/export_locations")
def export_locations(request: Request, runtime: RuntimeDep, caller: CallerDep, ident: str) -> dict[str, Any]:
    """Where clients find the share (empty until it is available)."""
    share = svc.get_share(runtime.db, caller, ident)
    return {"export_locations": [_location(share, loc, caller.is_admin) for loc in share.export_locations or []]}


@router.get("/shares/{ident}/export_locations/{location_id}")
def export_location(request: Request, runtime: RuntimeDep, caller: CallerDep, ident: str,
                    location_id: str) -> dict[str, Any]:
    share = svc.get_share(runtime.db, caller, ident)
    for loc in share.export_locations or []:
        if loc["id"] == location_id:
            return {"export_location": _location(share, loc, caller.is_admin)}
    raise NotFound(f"Export location {location_id} not found for share {ident}.")


def _location(share: Share, loc: dict, admin: bool) -> dict[str, Any]:
    out = {"id": loc["id"], "path": loc["path"], "preferred": loc.get("preferred", True), "metadata": {}}
    if admin:
        out["share_instance_id"] = share.uuid
        out["is_admin_only"] = loc.get("is_admin_only", False)
    return out


# -- access rules -------------------------------------------------------------------


@router.get("/share-access-rules")
def list_access_rules(request: Request, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """The access rules of one share (`?share_id=`)."""
    share_id = request.query_params.get("share_id")
    if not share_id:
        raise InvalidInput("share_id is required: GET /v2/share-access-rules?share_id=<share id>.")
    share, rules = svc.list_access_rules(runtime.db, caller, share_id)
    wanted = {k: v for k, v in request.query_params.items() if k in ("access_type", "access_to", "access_level")}
    rules = [r for r in rules if all(getattr(r, k) == v for k, v in wanted.items())]
    return {"access_list": [rule_view(request, r, share.uuid) for r in rules]}


@router.get("/share-access-rules/{rule_id}")
def show_access_rule(request: Request, runtime: RuntimeDep, caller: CallerDep, rule_id: str) -> dict[str, Any]:
    rule = svc.get_access_rule(runtime.db, caller, rule_id)
    return {"access": rule_view(request, rule, rule.share.uuid)}


# -- share types ----------------------------------------------------------------------


@router.get("/types")
def list_types(caller: CallerDep) -> dict[str, Any]:
    """The share types: one per backend."""
    return {"share_types": [type_view(t) for t in svc.share_types()]}


@router.get("/types/{ident}")
def show_type(caller: CallerDep, ident: str) -> dict[str, Any]:
    """One share type by id or name (`default` is the local type)."""
    return {"share_type": type_view(svc.find_type(ident))}


@router.get("/types/{ident}/extra_specs")
def type_extra_specs(caller: CallerDep, ident: str) -> dict[str, Any]:
    return {"extra_specs": dict(svc.find_type(ident).info.extra_specs)}


# -- limits, quotas, availability zones -------------------------------------------------


@router.get("/limits")
def limits(runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """The project's absolute limits and what it uses."""
    quota = svc.Quota.from_env()
    gigs, count = svc.usage(runtime.db, caller)
    return {"limits": {"rate": [], "absolute": {
        "maxTotalShares": quota.shares, "maxTotalShareGigabytes": quota.gigabytes,
        "totalSharesUsed": count, "totalShareGigabytesUsed": gigs,
        "maxTotalShareSnapshots": 0, "maxTotalSnapshotGigabytes": 0, "totalShareSnapshotsUsed": 0,
        "totalSnapshotGigabytesUsed": 0, "maxTotalShareNetworks": 0, "totalShareNetworksUsed": 0,
    }}}


@router.get("/quota-sets/{project_id}")
def quota_set(runtime: RuntimeDep, caller: CallerDep, project_id: str) -> dict[str, Any]:
    if project_id != caller.project_id and not caller.is_admin:
        raise Forbidden("Only an admin may see another project's quotas.")
    quota = svc.Quota.from_env()
    return {"quota_set": {"id": project_id, "shares": quota.shares, "gigabytes": quota.gigabytes,
                          "snapshots": 0, "snapshot_gigabytes": 0, "share_networks": 0}}


@router.get("/availability-zones")
def availability_zones(caller: CallerDep) -> dict[str, Any]:
    return {"availability_zones": [
        {"id": _AZ_ID, "name": AVAILABILITY_ZONE, "created_at": _time(_EPOCH), "updated_at": None}
    ]}
