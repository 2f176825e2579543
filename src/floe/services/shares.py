"""Shares, access rules and attachments: validate, record and queue (no HTTP, no backend calls).

Every change only records intent (a status, a rule state, an attachment state) and
marks the share as needing work in the same transaction; the engine's share work applies
it. Requests that cannot succeed are refused here, before anything is recorded.
"""

from __future__ import annotations

import re
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import flag_modified

from floe import storage
from floe.db.models import Cluster, Share, ShareAccessRule, ShareAttachment
from floe.db.session import Database
from floe.errors import Conflict, Forbidden, InvalidInput, NotFound
from floe.runtime import Runtime
from floe.services import quotas
from floe.services.clusters import find_cluster
from floe.services.identity import Caller
from floe.services.templates import ascii_int, check_dns_name, is_uuid_like
from floe.storage.base import ACCESS_IP, EXTEND, ONLINE_EXTEND, SHRINK, StorageError

# Statuses in which a share is online and accepts new work. The *_error ones are Manila's
# for a failed resize: the share itself is fine, and any action may follow.
USABLE = ("available", "extending_error", "shrinking_error", "shrinking_possible_data_loss_error")
BUSY = ("creating", "extending", "shrinking", "deleting")
CLUSTER_ACCESS_TYPES = ("floe_cluster", "user")  # `user` for clients that allow only Manila's types
ACCESS_TYPES = (*CLUSTER_ACCESS_TYPES, "ip")
MOUNT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
GIB = 1024**3
MAX_SHARE_GIB = 1024 * 1024  # 1 PiB: past any backend here, and far from the database's integers


@dataclass(frozen=True)
class ShareSpec:
    """A share-create request (Manila's fields)."""

    share_proto: str
    size: Any
    name: str | None = None
    description: str | None = None
    share_type: str | None = None
    metadata: dict | None = None
    snapshot_id: str | None = None
    share_network_id: str | None = None
    share_group_id: str | None = None
    availability_zone: str | None = None
    is_public: bool = False


def _wake(runtime: Runtime) -> None:
    runtime.wake_engine("share")


def _queue(share: Share) -> None:
    """Mark the share as having work; share work clears it only if nothing was queued meanwhile."""
    share.needs_work = True
    # Written even when the loaded row already said True: a worker may have cleared it since it
    # was read, and the ORM leaves an attribute it thinks unchanged out of the UPDATE, so the new
    # work_seq would land with needs_work still False and the request would wait forever (seen:
    # an access rule left queued_to_apply after a shrink's pass ended between the read and the write).
    flag_modified(share, "needs_work")
    # Incremented by the UPDATE itself: a value read earlier may be stale (the worker bumps it
    # too), and writing back stale+1 could equal the seq the worker holds, which would then
    # clear needs_work and lose this request (seen: a delete lost after a server restart).
    share.work_seq = Share.work_seq + 1 if share.id is not None else (share.work_seq or 0) + 1
    share.retry_at = None
    flag_modified(share, "retry_at")  # likewise: a worker's backoff set since the read is cleared


# ---------------------------------------------------------------------------
# Share types

ShareType = storage.ShareType


def share_types(runtime: Runtime) -> list[ShareType]:
    """The share types this server offers, in the order the API lists them."""
    return runtime.share_backends.types()


def default_type(runtime: Runtime) -> str:
    """The share type of a share created without one."""
    return runtime.share_backends.default


def find_type(runtime: Runtime, ident: str | None) -> ShareType:
    """A share type by name or id; `default` (or nothing) is the first type offered (`local`)."""
    types = share_types(runtime)
    wanted = default_type(runtime) if ident in (None, "", "default") else str(ident)
    for t in types:
        if wanted in (t.name, t.id):
            return t
    names = ", ".join(t.name for t in types)
    raise NotFound(f"Share type {wanted} not found (share types: {names}).")


# ---------------------------------------------------------------------------
# Queries


def find_share(session: Session, caller: Caller, ident: str) -> Share:
    """A share of the caller's project by uuid or name; NotFound otherwise."""
    # Rules come along: views outside the session show their states.
    base = select(Share).where(Share.project_id == caller.project_id).options(selectinload(Share.access_rules))
    if is_uuid_like(ident):
        share = session.scalars(base.where(Share.uuid == ident.lower())).first()
        if share is not None:
            return share
    share = session.scalars(base.where(Share.name == ident)).first()
    if share is None:
        raise NotFound(f"Share {ident} could not be found.")
    return share


def get_share(db: Database, caller: Caller, ident: str) -> Share:
    with db.session() as session:
        return find_share(session, caller, ident)


def list_shares(
    runtime: Runtime,
    caller: Caller,
    *,
    name: str | None = None,
    status: str | None = None,
    share_type: str | None = None,
    limit: int | None = None,
    offset: int = 0,
    all_projects: bool = False,
    project_id: str | None = None,
) -> list[Share]:
    """The caller's shares, oldest first, with Manila's simple filters; an admin may ask for every
    project's (`all_projects`, Manila's all_tenants), or one project's."""
    if limit is not None and limit < 0 or offset < 0:
        raise InvalidInput("limit and offset must be >= 0")
    if (all_projects or project_id is not None) and not caller.is_admin:
        raise Forbidden("Only an admin may list the shares of all projects or of another project.")
    with runtime.db.session() as session:
        stmt = select(Share).options(selectinload(Share.access_rules))
        if project_id is not None:
            stmt = stmt.where(Share.project_id == project_id)
        elif not all_projects:
            stmt = stmt.where(Share.project_id == caller.project_id)
        if name is not None:
            stmt = stmt.where(Share.name == name)
        if status is not None:
            stmt = stmt.where(Share.status == status)
        if share_type is not None:
            stmt = stmt.where(Share.share_type == find_type(runtime, share_type).name)
        stmt = stmt.order_by(Share.id).offset(offset)
        if limit is not None:
            stmt = stmt.limit(limit)
        return list(session.scalars(stmt))


def usage(db: Database, caller: Caller) -> tuple[int, int]:
    """(gigabytes, shares) the caller's project uses, pending extends included."""
    with db.session() as session:
        used = quotas.share_usage(session, caller.project_id)
        return used[quotas.GIGABYTES], used[quotas.SHARES]


def _positive_size(value: Any, what: str = "size") -> int:
    if isinstance(value, str) and ascii_int(value) is not None:
        value = ascii_int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_SHARE_GIB:
        shown = f"{value[:64]!r}" if isinstance(value, str) else repr(value)[:64]
        raise InvalidInput(f"Share {what} must be a whole number of GiB from 1 to {MAX_SHARE_GIB}, not {shown}.")
    return value


def _backend(runtime: Runtime, type_name: str):
    try:
        return runtime.share_backends.get(type_name)
    except StorageError as exc:
        raise Conflict(str(exc)) from None


# ---------------------------------------------------------------------------
# Shares


def create_share(runtime: Runtime, caller: Caller, spec: ShareSpec) -> Share:
    """Record a share (status creating) and queue its creation."""
    size = _positive_size(spec.size)
    proto = str(spec.share_proto or "").upper()
    if not proto:
        raise InvalidInput("share_proto is required (LOCALFS for local shares, GLUSTERFS for Gluster).")
    try:
        stype = find_type(runtime, spec.share_type)
    except NotFound as exc:
        raise InvalidInput(exc.detail) from None
    protocols = {t.info.share_proto for t in share_types(runtime)}
    if proto not in protocols:
        raise InvalidInput(f"Invalid share protocol {spec.share_proto}: floe serves {', '.join(sorted(protocols))}.")
    if proto != stype.info.share_proto:
        raise InvalidInput(
            f"Share type {stype.name} serves {stype.info.share_proto}, not {proto}: "
            f"use share_proto {stype.info.share_proto} or another share type."
        )
    for field, value, why in (
        ("snapshot_id", spec.snapshot_id, "snapshots are not supported"),
        ("share_network_id", spec.share_network_id, "floe's backends do not use share networks"),
        ("share_group_id", spec.share_group_id, "share groups are not supported"),
    ):
        if value:
            raise InvalidInput(f"{field} cannot be set: {why}.")
    if spec.name is not None and (not isinstance(spec.name, str) or len(spec.name) > 255):
        raise InvalidInput("Share name must be a string of at most 255 characters.")
    metadata = spec.metadata or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise InvalidInput("metadata must be an object of strings.")
    _backend(runtime, stype.name)  # refused now if this host cannot serve the type
    with runtime.db.session() as session:
        # Before anything is read: the quota check and the insert are one step (services/quotas.py).
        quotas.lock(session, caller.project_id)
        quotas.enforce(session, runtime.settings, caller.project_id, {quotas.SHARES: 1, quotas.GIGABYTES: size})
        if spec.name and session.scalars(
            select(Share.id).where(Share.project_id == caller.project_id, Share.name == spec.name)
        ).first():
            raise Conflict(f"A share named {spec.name} already exists in this project.")
        share = Share(
            project_id=caller.project_id, user_id=caller.user_id, name=spec.name or None,
            description=spec.description, share_type=stype.name, share_proto=proto, size=size,
            status="creating", metadata_={str(k): str(v) for k, v in metadata.items()},
        )
        _queue(share)
        session.add(share)
        try:
            session.flush()
        except IntegrityError:
            raise Conflict(f"A share named {spec.name} already exists in this project.") from None
    _wake(runtime)
    return share


def update_share(db: Database, caller: Caller, ident: str, fields: dict[str, Any]) -> Share:
    """Change a share's name, description or is_public (Manila's update)."""
    allowed = {"display_name": "name", "name": "name", "display_description": "description",
               "description": "description", "is_public": None}
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise InvalidInput(f"Cannot update share field(s) {', '.join(unknown)}: only name and description change.")
    with db.session() as session:
        share = find_share(session, caller, ident)
        for key, value in fields.items():
            attr = allowed[key]
            if attr is None:
                if value not in (False, "false", "False", None):
                    raise InvalidInput("floe shares are never public (is_public must be false).")
                continue
            if value is not None and (not isinstance(value, str) or len(value) > 255 and attr == "name"):
                raise InvalidInput(f"Share {attr} must be a string.")
            if attr == "name" and value and value != share.name and session.scalars(
                select(Share.id).where(Share.project_id == caller.project_id, Share.name == value)
            ).first():
                raise Conflict(f"A share named {value} already exists in this project.")
            setattr(share, attr, value or None)
        session.flush()
        return share


def _active_attachments(session: Session, share: Share) -> list[tuple[ShareAttachment, Cluster]]:
    rows = session.execute(
        select(ShareAttachment, Cluster).join(Cluster, Cluster.id == ShareAttachment.cluster_id)
        .where(ShareAttachment.share_id == share.id)
    )
    return [(a, c) for a, c in rows]


def _where_used(pairs: list[tuple[ShareAttachment, Cluster]]) -> str:
    return ", ".join(f"{c.name} (/mnt/{a.mount_name})" for a, c in pairs)


def _check_usable(share: Share, action: str) -> None:
    if share.status not in USABLE:
        raise Conflict(f"Share {share.name or share.uuid} is {share.status}: it must be available to {action}.")


def extend_share(runtime: Runtime, caller: Caller, ident: str, new_size: Any) -> Share:
    new_size = _positive_size(new_size, "new_size")
    with runtime.db.session() as session:
        quotas.lock(session, caller.project_id)  # before anything is read (services/quotas.py)
        share = find_share(session, caller, ident)
        _check_usable(share, "extend it")
        if new_size <= share.size:
            raise InvalidInput(f"New size for extend must be greater than current size ({share.size} GiB).")
        backend = _backend(runtime, share.share_type)
        if EXTEND not in backend.capabilities:
            raise InvalidInput(f"The {share.share_type} backend cannot extend shares.")
        used = _active_attachments(session, share)
        if used and ONLINE_EXTEND not in backend.capabilities:
            raise Conflict(
                f"Share {share.name or share.uuid} is attached to {_where_used(used)}: this host can grow a "
                "share only while nothing mounts it (its kernel denies online resize); detach it first."
            )
        # A failed extend may have left a larger target, which usage still counts.
        counted = max(share.size, share.target_size or 0)
        quotas.enforce(session, runtime.settings, caller.project_id, {quotas.GIGABYTES: new_size - counted})
        share.status, share.target_size, share.status_reason = "extending", new_size, None
        _queue(share)
    _wake(runtime)
    return share


def shrink_share(runtime: Runtime, caller: Caller, ident: str, new_size: Any) -> Share:
    new_size = _positive_size(new_size, "new_size")
    with runtime.db.session() as session:
        share = find_share(session, caller, ident)
        _check_usable(share, "shrink it")
        if new_size >= share.size:
            raise InvalidInput(f"New size for shrink must be less than current size ({share.size} GiB).")
        backend = _backend(runtime, share.share_type)
        if SHRINK not in backend.capabilities:
            raise InvalidInput(f"The {share.share_type} backend cannot shrink shares.")
        used = _active_attachments(session, share)
        if used:
            raise Conflict(
                f"Share {share.name or share.uuid} is attached to {_where_used(used)}: a share shrinks offline; "
                "detach it first."
            )
        share.status, share.target_size, share.status_reason = "shrinking", new_size, None
        _queue(share)
    _wake(runtime)
    return share


def delete_share(runtime: Runtime, caller: Caller, ident: str, force: bool = False) -> None:
    """Queue the deletion of a share; refused while it is attached unless `force` (which detaches first)."""
    with runtime.db.session() as session:
        share = find_share(session, caller, ident)
        if share.status == "deleting":
            return
        used = _active_attachments(session, share)
        if used and not force:
            raise Conflict(
                f"Share {share.name or share.uuid} is in use by {_where_used(used)}: detach it first, or "
                "delete with force (floe share delete --force) to detach it everywhere and delete its data."
            )
        if share.status in ("creating", "extending", "shrinking") and not force:
            raise Conflict(f"Share {share.name or share.uuid} is {share.status}: wait for it, or delete with force.")
        share.status, share.status_reason, share.force_delete = "deleting", None, force
        _queue(share)
    _wake(runtime)


def reset_status(runtime: Runtime, caller: Caller, ident: str, status: Any) -> None:
    """An admin's way out of an error: set the status (available or error) and re-check the share."""
    if status not in ("available", "error"):
        raise InvalidInput(f"Invalid status {status!r}: a share's status can be reset to available or error.")
    with runtime.db.session() as session:
        share = find_share(session, caller, ident)
        if share.status == "deleting":
            raise Conflict(f"Share {share.name or share.uuid} is being deleted.")
        share.status, share.target_size, share.status_reason = status, None, None
        _queue(share)
    _wake(runtime)


# ---------------------------------------------------------------------------
# Access rules


def _rule_matches_cluster(rule: ShareAccessRule, cluster: Cluster) -> bool:
    return rule.access_type in CLUSTER_ACCESS_TYPES and rule.access_to in (cluster.name, cluster.uuid)


def allow_access(
    runtime: Runtime,
    caller: Caller,
    ident: str,
    access_type: Any,
    access_to: Any,
    access_level: Any = "rw",
    metadata: dict | None = None,
) -> ShareAccessRule:
    """Queue a new access rule (state queued_to_apply)."""
    access_type = str(access_type or "").strip()
    access_to = str(access_to or "").strip()
    level = str(access_level or "rw").strip()
    if access_type not in ACCESS_TYPES:
        raise InvalidInput(
            f"Invalid access type {access_type!r}: use floe_cluster (or user) with a cluster name or uuid, "
            "or ip where the share type allows it."
        )
    if level not in ("rw", "ro"):
        raise InvalidInput(f"Invalid access level {level!r}: rw or ro.")
    if not access_to:
        raise InvalidInput("access_to is required.")
    if access_type in CLUSTER_ACCESS_TYPES:
        if not is_uuid_like(access_to):
            try:
                check_dns_name(access_to, "cluster name")
            except (ValueError, InvalidInput) as exc:
                raise InvalidInput(f"Invalid access_to {access_to!r}: {exc}") from None
        else:
            access_to = access_to.lower()
    else:
        import ipaddress

        try:
            access_to = str(ipaddress.ip_network(access_to, strict=False))
        except ValueError as exc:
            raise InvalidInput(f"Invalid IP access_to: {exc}") from None
    with runtime.db.session() as session:
        share = find_share(session, caller, ident)
        if share.status in ("error", "deleting", "error_deleting"):
            raise InvalidInput(
                f"Share {share.name or share.uuid} is {share.status}: access rules can only be added to a "
                "share that is available (or still being made)."
            )
        if access_type == "ip" and ACCESS_IP not in _backend(runtime, share.share_type).capabilities:
            raise InvalidInput(
                f"The {share.share_type} backend does not support ip access rules: floe mounts its shares "
                "on clusters (access type floe_cluster)."
            )
        same = [r for r in share.access_rules if r.access_to == access_to and
                (r.access_type == access_type or {r.access_type, access_type} <= set(CLUSTER_ACCESS_TYPES))]
        if same:
            raise InvalidInput(f"Share access {access_type}:{access_to} exists (rule {same[0].uuid}).")
        rule = ShareAccessRule(
            share_id=share.id, access_type=access_type, access_to=access_to, access_level=level,
            metadata_={str(k): str(v) for k, v in (metadata or {}).items()},
        )
        session.add(rule)
        _queue(share)
        session.flush()
    _wake(runtime)
    return rule


def deny_access(runtime: Runtime, caller: Caller, ident: str, access_id: Any) -> None:
    """Queue the removal of an access rule; clusters it lets in are detached first."""
    with runtime.db.session() as session:
        share = find_share(session, caller, ident)
        rule = next((r for r in share.access_rules if r.uuid == str(access_id or "").lower()), None)
        if rule is None:
            raise NotFound(f"Access rule {access_id} not found on share {share.name or share.uuid}.")
        if share.status == "deleting":
            raise Conflict(f"Share {share.name or share.uuid} is being deleted.")
        rule.state, rule.state_reason = "queued_to_deny", None
        _queue(share)
    _wake(runtime)


def list_access_rules(db: Database, caller: Caller, ident: str) -> tuple[Share, list[ShareAccessRule]]:
    with db.session() as session:
        share = find_share(session, caller, ident)
        return share, list(share.access_rules)


def get_access_rule(db: Database, caller: Caller, rule_id: str) -> ShareAccessRule:
    with db.session() as session:
        rule = session.scalars(
            select(ShareAccessRule).join(Share).where(
                ShareAccessRule.uuid == str(rule_id).lower(), Share.project_id == caller.project_id
            )
        ).first()
        if rule is None:
            raise NotFound(f"Share access rule {rule_id} could not be found.")
        rule.share  # noqa: B018 - loaded for the view
        return rule


def export_location_id(share_uuid: str, path: str) -> str:
    return str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"floe-share:{share_uuid}:{path}"))


# ---------------------------------------------------------------------------
# Attachments


@dataclass(frozen=True)
class AttachmentView:
    attachment: ShareAttachment
    share: Share
    cluster: Cluster


def _mount_name(share: Share, path: str | None) -> str:
    if path:
        m = re.match(r"^/mnt/([^/]+)/?$", path)
        if not m or not MOUNT_NAME_RE.match(m.group(1)):
            raise InvalidInput(
                f"Invalid path {path!r}: shares are mounted at /mnt/NAME, NAME being letters, digits, '.', '_' "
                "or '-' (at most 63)."
            )
        return m.group(1)
    if share.name and MOUNT_NAME_RE.match(share.name):
        return share.name
    return share.uuid


def attach(
    runtime: Runtime, caller: Caller, cluster_ident: str, share_ident: str,
    path: str | None = None, read_only: bool = False,
) -> AttachmentView:
    """Queue the mount of a share at /mnt/NAME on every node of a cluster.

    The cluster needs an access rule on the share (queued or active: the mount waits for it
    to become active); a read-only rule makes the mount read-only whatever was asked.
    """
    with runtime.db.session() as session:
        cluster = find_cluster(session, caller, cluster_ident)
        share = find_share(session, caller, share_ident)
        if cluster.status.startswith("DELETE"):
            raise Conflict(f"Cluster {cluster.name} is being deleted.")
        if share.status in ("error", "deleting", "error_deleting"):
            raise Conflict(f"Share {share.name or share.uuid} is {share.status}: it cannot be attached.")
        rules = [r for r in share.access_rules if _rule_matches_cluster(r, cluster)
                 and r.state in ("queued_to_apply", "active")]
        if not rules:
            raise Forbidden(
                f"Cluster {cluster.name} has no access to share {share.name or share.uuid}: allow it first "
                f"(floe share access allow {share.name or share.uuid} --cluster {cluster.name})."
            )
        writable = any(r.access_level == "rw" for r in rules)
        name = _mount_name(share, path)
        existing = session.scalars(
            select(ShareAttachment).where(ShareAttachment.share_id == share.id,
                                          ShareAttachment.cluster_id == cluster.id)
        ).first()
        if existing is not None:
            raise Conflict(
                f"Share {share.name or share.uuid} is already attached to cluster {cluster.name} "
                f"at /mnt/{existing.mount_name} ({existing.state})."
            )
        taken = session.scalars(
            select(ShareAttachment).where(ShareAttachment.cluster_id == cluster.id,
                                          ShareAttachment.mount_name == name)
        ).first()
        if taken is not None:
            raise Conflict(f"Cluster {cluster.name} already has a share at /mnt/{name}: choose another --path.")
        attachment = ShareAttachment(
            share_id=share.id, cluster_id=cluster.id, mount_name=name, read_only=read_only or not writable,
        )
        session.add(attachment)
        _queue(share)
        try:
            session.flush()
        except IntegrityError:
            raise Conflict(f"Share {share.name or share.uuid} is already attached to {cluster.name}.") from None
        view = AttachmentView(attachment, share, cluster)
    _wake(runtime)
    return view


def detach(runtime: Runtime, caller: Caller, cluster_ident: str, share_ident: str) -> AttachmentView:
    """Queue the unmount of a share from every node of a cluster."""
    with runtime.db.session() as session:
        cluster = find_cluster(session, caller, cluster_ident)
        share = find_share(session, caller, share_ident)
        attachment = session.scalars(
            select(ShareAttachment).where(ShareAttachment.share_id == share.id,
                                          ShareAttachment.cluster_id == cluster.id)
        ).first()
        if attachment is None:
            raise NotFound(f"Share {share.name or share.uuid} is not attached to cluster {cluster.name}.")
        attachment.state, attachment.state_reason = "detaching", None
        _queue(share)
        view = AttachmentView(attachment, share, cluster)
    _wake(runtime)
    return view


def share_attachments(db: Database, caller: Caller, share_ident: str) -> tuple[Share, list[AttachmentView]]:
    """Where a share is mounted: each cluster, its path and state."""
    with db.session() as session:
        share = find_share(session, caller, share_ident)
        return share, [AttachmentView(a, share, c) for a, c in _active_attachments(session, share)]


def cluster_attachments(db: Database, caller: Caller, cluster_ident: str) -> list[AttachmentView]:
    """The shares attached to a cluster."""
    with db.session() as session:
        cluster = find_cluster(session, caller, cluster_ident)
        rows = session.execute(
            select(ShareAttachment, Share).join(Share, Share.id == ShareAttachment.share_id)
            .where(ShareAttachment.cluster_id == cluster.id).order_by(ShareAttachment.id)
        )
        return [AttachmentView(a, s, cluster) for a, s in rows]
