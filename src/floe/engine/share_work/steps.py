"""The steps of share work: each idempotent (run again after a crash it finishes or finds it
done) and each write a compare-and-swap on the state its snapshot saw.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from floe.db.base import utcnow
from floe.db.models import Cluster, Share, ShareAccessRule, ShareAttachment
from floe.db.models.shares import CLUSTER_ACCESS_TYPES, export_location_id
from floe.db.session import Database
from floe.engine.operations import cluster_changing, cluster_deleting
from floe.engine.share_work.snapshot import AttachmentSnap, Outcome, RuleSnap, ShareSnap, load
from floe.errors import LeaseLost
from floe.host import mounts
from floe.providers.base import ProviderWithShareMounts
from floe.storage.base import GIB, ShareBackend, ShrinkRefused, StorageError

log = logging.getLogger("floe.storage")


@dataclass
class ShareContext:
    """What a share step sees: the snapshot, the backend, and commits guarded by the share's lease."""

    db: Database
    share_id: int
    owner: str
    lease_seconds: float
    provider: Any
    backend: ShareBackend
    snap: ShareSnap
    outcome: Outcome = field(default_factory=Outcome)
    kind: str = ""
    step: str = ""
    result: dict = field(default_factory=dict)  # what a backend step hands to its record step

    def commit(self, fn: Callable[[Session], None]) -> None:
        """Run `fn` in a transaction that commits only while this worker holds the share's lease."""
        with self.db.session() as s:
            held = s.execute(
                update(Share).where(Share.id == self.share_id, Share.lease_owner == self.owner)
                .values(lease_expires_at=utcnow() + timedelta(seconds=self.lease_seconds))
            ).rowcount
            if held != 1:
                raise LeaseLost(f"share {self.share_id} is no longer ours")
            fn(s)

    def reload(self) -> None:
        self.snap = load(self.db, self.share_id) or self.snap

    def mounts_provider(self) -> ProviderWithShareMounts | None:
        return self.provider if isinstance(self.provider, ProviderWithShareMounts) else None


def _set_share(ctx: ShareContext, **values) -> None:
    snap = ctx.snap
    ctx.commit(lambda s: s.execute(
        update(Share).where(Share.id == snap.id, Share.status == snap.status).values(**values)))


# --- the share's own change ---------------------------------------------------------------

def create(ctx: ShareContext) -> None:
    ctx.result["created"] = ctx.backend.create(ctx.snap.ref())


def record_create(ctx: ShareContext) -> None:
    snap, created = ctx.snap, ctx.result["created"]
    locations = [
        {"id": export_location_id(snap.uuid, loc.path), "path": loc.path, "preferred": loc.preferred,
         "is_admin_only": loc.is_admin_only}
        for loc in created.export_locations
    ]
    _set_share(ctx, status="available", status_reason=None, export_locations=locations,
               backend_state=created.state, attempts=0)
    log.info("share %s created (%s, %d GiB)", snap.uuid, snap.share_type, snap.size)


def extend(ctx: ShareContext) -> None:
    new = ctx.snap.target_size or ctx.snap.size
    ctx.result["values"] = {"status": "available", "status_reason": None, "size": new, "target_size": None,
                            "backend_state": ctx.backend.extend(ctx.snap.ref(), new * GIB), "attempts": 0}


def shrink(ctx: ShareContext) -> None:
    new = ctx.snap.target_size or ctx.snap.size
    try:
        state = ctx.backend.shrink(ctx.snap.ref(), new * GIB)
    except ShrinkRefused as exc:
        ctx.result["values"] = {"status": "shrinking_possible_data_loss_error", "target_size": None, "attempts": 0,
                                "status_reason": f"shrink to {new} GiB refused, size unchanged: {exc}"}
    else:
        ctx.result["values"] = {"status": "available", "status_reason": None, "size": new, "target_size": None,
                                "backend_state": state, "attempts": 0}


def record_change(ctx: ShareContext) -> None:
    _set_share(ctx, **ctx.result["values"])


# --- delete -------------------------------------------------------------------------------

def unmount_all(ctx: ShareContext) -> None:
    for att in ctx.snap.attachments:
        unmount(ctx, att)


def deny_all(ctx: ShareContext) -> None:
    ref = ctx.snap.ref()
    for rule in ctx.snap.rules:
        try:
            ctx.backend.deny(ref, rule.access_type, rule.access_to)
        except StorageError as exc:
            log.info("share %s: deny %s on delete: %s", ctx.snap.uuid, rule.access_to, exc)


def destroy(ctx: ShareContext) -> None:
    ctx.backend.delete(ctx.snap.ref())


def forget(ctx: ShareContext) -> None:
    share_id = ctx.snap.id

    def write(s: Session) -> None:
        s.execute(delete(ShareAttachment).where(ShareAttachment.share_id == share_id))
        s.execute(delete(ShareAccessRule).where(ShareAccessRule.share_id == share_id))
        s.execute(delete(Share).where(Share.id == share_id, Share.status == "deleting"))

    ctx.commit(write)
    log.info("share %s deleted", ctx.snap.uuid)


# --- access rules -------------------------------------------------------------------------

def ensure_online(ctx: ShareContext) -> None:
    ctx.backend.ensure(ctx.snap.ref())


def allow(ctx: ShareContext) -> None:
    ref = ctx.snap.ref()
    for rule in ctx.snap.rules:
        if rule.state != "queued_to_apply":
            continue
        try:
            extra = ctx.backend.allow(ref, rule.access_type, rule.access_to, rule.access_level)
        except StorageError as exc:
            if exc.temporary:
                raise
            _set_rule(ctx, rule, "error", str(exc))
            continue
        _set_rule(ctx, rule, "active", None, access_key=extra.get("access_key"))


def revoke(ctx: ShareContext) -> None:
    snap, ref = ctx.snap, ctx.snap.ref()
    for rule in snap.rules:
        if rule.state != "queued_to_deny":
            continue
        # Clusters this rule alone lets in lose the share first ("denying access detaches").
        for att in snap.attachments:
            if _only_rule_for(snap, rule, att):
                unmount(ctx, att)
                ctx.commit(lambda s, a=att: s.execute(delete(ShareAttachment).where(ShareAttachment.id == a.id)))
        try:
            ctx.backend.deny(ref, rule.access_type, rule.access_to)
        except StorageError as exc:
            if exc.temporary:
                raise
            _set_rule(ctx, rule, "error", f"deny failed: {exc}", expect="queued_to_deny")
            continue
        ctx.commit(lambda s, r=rule: s.execute(
            delete(ShareAccessRule).where(ShareAccessRule.id == r.id, ShareAccessRule.state == "queued_to_deny")))


def matches(rule: RuleSnap, att: AttachmentSnap) -> bool:
    return rule.access_type in CLUSTER_ACCESS_TYPES and rule.access_to in (att.cluster_name, att.cluster_uuid)


def _only_rule_for(snap: ShareSnap, rule: RuleSnap, att: AttachmentSnap) -> bool:
    if not matches(rule, att):
        return False
    return not any(matches(r, att) for r in snap.rules if r.id != rule.id and r.state == "active")


def _set_rule(ctx: ShareContext, rule: RuleSnap, state: str, reason: str | None,
              access_key: str | None = None, expect: str = "queued_to_apply") -> None:
    values: dict = {"state": state, "state_reason": reason}
    if access_key:
        values["access_key"] = access_key
    ctx.commit(lambda s: s.execute(
        update(ShareAccessRule).where(ShareAccessRule.id == rule.id, ShareAccessRule.state == expect)
        .values(**values)))


# --- attachments --------------------------------------------------------------------------

def _target(ctx: ShareContext, att: AttachmentSnap) -> Path | None:
    provider = ctx.mounts_provider()
    if provider is None:
        return None
    base = provider.cluster_mount_dir(att.cluster_tag)
    return None if base is None else base / att.mount_name


def unmount(ctx: ShareContext, att: AttachmentSnap) -> None:
    target = _target(ctx, att)
    if target is None or not target.exists():
        return
    try:
        mounts.unmount(target)
        target.rmdir()
    except (mounts.MountError, OSError) as exc:
        raise StorageError(f"cannot unmount {target}: {exc}", temporary=True) from None


def _set_attachment(ctx: ShareContext, att: AttachmentSnap, **values) -> None:
    ctx.commit(lambda s: s.execute(
        update(ShareAttachment).where(ShareAttachment.id == att.id, ShareAttachment.state == att.state)
        .values(**values)))


def fail_attachments(ctx: ShareContext, reason: str) -> None:
    for att in ctx.snap.attachments:
        if att.state == "attaching":
            _set_attachment(ctx, att, state="error", state_reason=reason)


def _leaving(att: AttachmentSnap) -> bool:
    return att.state == "detaching" or cluster_deleting(att.cluster_status)


def detach(ctx: ShareContext) -> None:
    for att in ctx.snap.attachments:
        if _leaving(att):
            # A cluster being deleted loses its mounts with its directory; just forget them.
            if att.state == "detaching":
                unmount(ctx, att)
            ctx.commit(lambda s, a=att: s.execute(delete(ShareAttachment).where(ShareAttachment.id == a.id)))


def attach(ctx: ShareContext) -> None:
    for att in ctx.snap.attachments:
        if not _leaving(att) and att.state in ("attaching", "attached"):
            _ensure_attachment(ctx, att)


def has_leaving(snap: ShareSnap) -> bool:
    return any(_leaving(a) for a in snap.attachments)


def has_staying(snap: ShareSnap) -> bool:
    return any(not _leaving(a) and a.state in ("attaching", "attached") for a in snap.attachments)


def _ensure_attachment(ctx: ShareContext, att: AttachmentSnap) -> None:
    snap, outcome, backend = ctx.snap, ctx.outcome, ctx.backend
    rules = [r for r in snap.rules if matches(r, att)]
    active = [r for r in rules if r.state == "active"]
    if not active:
        if any(r.state == "queued_to_apply" for r in rules):
            outcome.pending = True  # the rule is applied first, then the mount
            return
        unmount(ctx, att)
        _set_attachment(ctx, att, state="error",
                        state_reason=f"cluster {att.cluster_name} has no active access rule on the share")
        return
    read_only = att.read_only or not any(r.access_level == "rw" for r in active)
    provider = ctx.mounts_provider()
    if provider is None:
        _set_attachment(ctx, att, state="error", state_reason="this server's provider cannot mount shares")
        return
    target = _target(ctx, att)
    if target is None:
        if any(provider.node_mount_view(att.cluster_tag, n) is not None for n in att.node_names):
            # Nodes run, yet the cluster has no share directory: they were started by a floe
            # that did not set one up, and cannot receive mounts.
            _set_attachment(ctx, att, state="error", state_reason=(
                f"the nodes of cluster {att.cluster_name} were started before floe could mount shares on "
                "them: recreate the cluster (or restart its nodes) and attach again"))
            return
        outcome.pending = True
        _set_attachment(ctx, att, state_reason=f"waiting for cluster {att.cluster_name}'s first node")
        return
    ref = snap.ref()
    if mounts.is_mount_point(target) and (
        not backend.is_mounted_at(ref, target) or _read_only(target) != read_only
    ):
        # A stale mount of something else at this name, or the access level changed.
        mounts.unmount(target)
    if not mounts.is_mount_point(target):
        try:
            target.mkdir(exist_ok=True)  # no parents: a cluster directory that went stays gone
        except FileNotFoundError:
            outcome.pending = True
            return
        backend.mount(ref, target, read_only)
    if _cluster_gone(ctx, att):
        unmount(ctx, att)
        return
    seen, missing = [], []
    for name in att.node_names:
        sees = provider.node_sees_mount(att.cluster_tag, name, att.mount_name, target, read_only)
        if sees is None:
            continue  # not running: it mounts /mnt when it starts
        (seen if sees else missing).append(name)
    if missing:
        _set_attachment(
            ctx, att, state="error", nodes_verified=seen, read_only=read_only,
            state_reason=f"mounted on the host but not visible in node(s) {', '.join(missing)} (started before "
            "they could receive shares?): restart them or recreate the cluster",
        )
        return
    if att.state == "attaching" and cluster_changing(att.cluster_status):
        # Mounted, and nodes starting now will see it; `attached` waits until every node
        # of the settled cluster has been checked.
        outcome.pending = True
        _set_attachment(ctx, att, nodes_verified=seen, read_only=read_only,
                        state_reason=f"mounted; checking every node once cluster {att.cluster_name} "
                        f"is no longer {att.cluster_status}")
        return
    _set_attachment(ctx, att, state="attached", state_reason=None, nodes_verified=seen, read_only=read_only)
    if att.state == "attaching":
        log.info("share %s attached to cluster %s at /mnt/%s (%s, %d node(s))", snap.uuid, att.cluster_name,
                 att.mount_name, "ro" if read_only else "rw", len(seen))


def _cluster_gone(ctx: ShareContext, att: AttachmentSnap) -> bool:
    with ctx.db.session() as s:
        status = s.scalars(select(Cluster.status).where(Cluster.id == att.cluster_id)).first()
    return status is None or cluster_deleting(status)


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False
