"""Manila's v2 resources under /v2: shares, share types, access rules, export locations.

Field names and shapes are Manila's (python-manilaclient and `openstack share …` read them);
microversion-dependent fields follow the negotiated version where clients care.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import JSONResponse

from floe.api.auth import CallerDep, RuntimeDep
from floe.api.manila import views
from floe.errors import Forbidden, InvalidInput, NotFound
from floe.services import shares as svc
from floe.services.templates import ascii_int

router = APIRouter(tags=["shares"])

MAX_PAGING = 2**31 - 1  # limit and offset: SQLite's integers end at 2**63


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
        runtime, caller, name=params.get("name"), status=params.get("status"),
        share_type=params.get("share_type_id") or params.get("share_type"),
        limit=number("limit"), offset=number("offset") or 0,
        all_projects=(params.get("all_tenants") or "0").lower() not in ("0", "false", "no", ""),
        project_id=params.get("project_id"),
    )
    view = views.share_detail if detail else views.share_summary
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
    if spec.availability_zone not in (None, "", views.AVAILABILITY_ZONE, views.AVAILABILITY_ZONE_ID):
        raise InvalidInput(f"Availability zone {spec.availability_zone} not found: floe has {views.AVAILABILITY_ZONE}.")
    if spec.is_public:
        raise InvalidInput("floe shares cannot be public: grant access with access rules.")
    share = svc.create_share(runtime, caller, spec)
    return {"share": views.share_detail(request, svc.get_share(runtime.db, caller, share.uuid))}


@router.get("/shares/{ident}")
def show_share(request: Request, runtime: RuntimeDep, caller: CallerDep, ident: str) -> dict[str, Any]:
    return {"share": views.share_detail(request, svc.get_share(runtime.db, caller, ident))}


@router.put("/shares/{ident}")
def update_share(request: Request, runtime: RuntimeDep, caller: CallerDep, ident: str,
                 body: Annotated[Any, Body()] = None) -> dict[str, Any]:
    """Change the name or description."""
    share = svc.update_share(runtime.db, caller, ident, _body(body, "share"))
    return {"share": views.share_detail(request, svc.get_share(runtime.db, caller, share.uuid))}


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
        return JSONResponse({"access": views.rule_view(request, rule, share.uuid)})
    if action == "deny_access":
        svc.deny_access(runtime, caller, ident, args.get("access_id"))
        return Response(status_code=202)
    if action == "access_list":
        share, rules = svc.list_access_rules(runtime.db, caller, ident)
        return JSONResponse({"access_list": [views.rule_view(request, r) for r in rules]})
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
    return {"export_locations": [views.location_view(share, loc, caller.is_admin)
                                 for loc in share.export_locations or []]}


@router.get("/shares/{ident}/export_locations/{location_id}")
def export_location(request: Request, runtime: RuntimeDep, caller: CallerDep, ident: str,
                    location_id: str) -> dict[str, Any]:
    share = svc.get_share(runtime.db, caller, ident)
    for loc in share.export_locations or []:
        if loc["id"] == location_id:
            return {"export_location": views.location_view(share, loc, caller.is_admin)}
    raise NotFound(f"Export location {location_id} not found for share {ident}.")


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
    return {"access_list": [views.rule_view(request, r, share.uuid) for r in rules]}


@router.get("/share-access-rules/{rule_id}")
def show_access_rule(request: Request, runtime: RuntimeDep, caller: CallerDep, rule_id: str) -> dict[str, Any]:
    rule = svc.get_access_rule(runtime.db, caller, rule_id)
    return {"access": views.rule_view(request, rule, rule.share.uuid)}


# -- share types ----------------------------------------------------------------------


@router.get("/types")
def list_types(runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """The share types: one per backend this server offers."""
    default = svc.default_type(runtime)
    return {"share_types": [views.type_view(t, default) for t in svc.share_types(runtime)]}


@router.get("/types/{ident}")
def show_type(runtime: RuntimeDep, caller: CallerDep, ident: str) -> dict[str, Any]:
    """One share type by id or name (`default` is the first offered: the local type)."""
    return {"share_type": views.type_view(svc.find_type(runtime, ident), svc.default_type(runtime))}


@router.get("/types/{ident}/extra_specs")
def type_extra_specs(runtime: RuntimeDep, caller: CallerDep, ident: str) -> dict[str, Any]:
    return {"extra_specs": dict(svc.find_type(runtime, ident).info.extra_specs)}


# -- availability zones (quotas and limits: quotas.py) -----------------------------------


@router.get("/availability-zones")
def availability_zones(caller: CallerDep) -> dict[str, Any]:
    return {"availability_zones": [views.AVAILABILITY_ZONE_VIEW]}
