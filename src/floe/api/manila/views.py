"""Manila's views: the bodies of its answers (field names and shapes python-manilaclient and
`openstack share …` read), following the negotiated microversion where clients care."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Request

from floe.api.http import host_url
from floe.api.manila.versions import request_version
from floe.db.models import Share, ShareAccessRule
from floe.services import shares as svc
from floe.services.quotas import QuotaSet

AVAILABILITY_ZONE = "floe"
AVAILABILITY_ZONE_ID = "8d1c1c1e-6a3c-5a7e-9b0e-0f1c9e3d2a10"
AVAILABILITY_ZONE_VIEW = {"id": AVAILABILITY_ZONE_ID, "name": AVAILABILITY_ZONE,
                          "created_at": "2026-01-01T00:00:00.000000", "updated_at": None}


def time_view(value: datetime | None) -> str | None:
    return None if value is None else value.replace(tzinfo=None).isoformat(timespec="microseconds")


def _links(request: Request, share_uuid: str) -> list[dict[str, str]]:
    base = host_url(request)
    return [{"href": f"{base}/v2/shares/{share_uuid}", "rel": "self"},
            {"href": f"{base}/shares/{share_uuid}", "rel": "bookmark"}]


def _type_of(request: Request, name: str) -> svc.ShareType | None:
    return next((t for t in svc.share_types(request.app.state.runtime) if t.name == name), None)


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
    stype = _type_of(request, share.share_type)
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
        "created_at": time_view(share.created_at),
        "updated_at": time_view(share.updated_at),
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
        "created_at": time_view(rule.created_at),
        "updated_at": time_view(rule.updated_at),
        "metadata": dict(rule.metadata_ or {}),
    }
    if rule.state_reason:
        out["state_reason"] = rule.state_reason  # floe's: why a rule is in error
    return out


def type_view(t: svc.ShareType, default: str) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "description": t.info.description,
        "extra_specs": dict(t.info.extra_specs),
        "required_extra_specs": {"driver_handles_share_servers": t.info.extra_specs["driver_handles_share_servers"]},
        "share_type_access:is_public": True,
        "os-share-type-access:is_public": True,
        "is_default": t.name == default,
    }


def location_view(share: Share, loc: dict, admin: bool) -> dict[str, Any]:
    out = {"id": loc["id"], "path": loc["path"], "preferred": loc.get("preferred", True), "metadata": {}}
    if admin:
        out["share_instance_id"] = share.uuid
        out["is_admin_only"] = loc.get("is_admin_only", False)
    return out


def limits_view(found: QuotaSet) -> dict[str, Any]:
    """Manila's absolute limits: the project's quota and what it uses (no snapshots, no networks)."""
    return {"rate": [], "absolute": {
        "maxTotalShares": found.limits["shares"], "maxTotalShareGigabytes": found.limits["gigabytes"],
        "totalSharesUsed": found.in_use["shares"], "totalShareGigabytesUsed": found.in_use["gigabytes"],
        "maxTotalShareSnapshots": 0, "maxTotalSnapshotGigabytes": 0, "totalShareSnapshotsUsed": 0,
        "totalSnapshotGigabytesUsed": 0, "maxTotalShareNetworks": 0, "totalShareNetworksUsed": 0,
    }}


# Manila's quotas floe has nothing to count for: always 0.
NO_QUOTA = ("snapshots", "snapshot_gigabytes", "share_networks")


def quota_set_view(project_id: str, limits: dict[str, int]) -> dict[str, Any]:
    """Manila's quota set: shares and gigabytes, and 0 for what floe's shares do not have."""
    return {"id": project_id, "shares": limits["shares"], "gigabytes": limits["gigabytes"],
            **dict.fromkeys(NO_QUOTA, 0)}


def quota_set_detail_view(found: QuotaSet) -> dict[str, Any]:
    """Manila's detailed quota set (2.25): each quota's limit, in_use and reserved (floe reserves nothing)."""
    out: dict[str, Any] = {"id": found.project_id}
    for key, limit in found.limits.items():
        out[key] = {"limit": limit, "in_use": found.in_use[key], "reserved": 0}
    for key in NO_QUOTA:
        out[key] = {"limit": 0, "in_use": 0, "reserved": 0}
    return out


def pool_view(t: svc.ShareType, host: str, detail: bool) -> dict[str, Any]:
    """Manila's pool `host@backend#pool`: a floe backend is one pool named after its type."""
    pool: dict[str, Any] = {"name": f"{host}@{t.name}#{t.name}", "host": host, "backend": t.name, "pool": t.name}
    if detail:
        pool["capabilities"] = {
            "pool_name": t.name, "share_backend_name": t.name, "storage_protocol": t.info.share_proto,
            "driver_handles_share_servers": False, "snapshot_support": False,
            "create_share_from_snapshot_support": False, "revert_to_snapshot_support": False,
            "mount_snapshot_support": False,
            # Space is the host's, checked when a share is made: Manila's word for not reported.
            "total_capacity_gb": "unknown", "free_capacity_gb": "unknown",
        }
    return pool
