"""The storage worker: applies what the shares API queued, one share at a time, crash-safely.

- A dispatcher leases shares marked `needs_work` with a compare-and-swap on the owner
  column (a lease held by a dead process on this host is taken over at once); a
  heartbeat extends the leases of shares in progress.
- Working a share means: its status change (create, extend, shrink, delete), then its
  queued access rules, then its attachments (mount, verify in every node, unmount).
  Every backend call is idempotent and runs outside any transaction; every write is
  committed only while the lease is still ours and is a compare-and-swap on the state it
  changes, so a request that arrives meanwhile (a delete during a create) is never lost.
- `needs_work` is cleared only if no new work was queued while the share was worked
  (`work_seq`); waiting (for a cluster's first node, for a rule) retries a second later.
- At start every share is reconciled: images brought online again and attachments
  mounted again (after a reboot or `floe cleanup --all`), so a restarted server finishes
  or fails whatever was in flight.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from floe import storage
from floe.db.base import utcnow
from floe.db.models import Cluster, Node, Share, ShareAccessRule, ShareAttachment
from floe.leases import LeaseHolder
from floe.runtime import Runtime
from floe.services.shares import CLUSTER_ACCESS_TYPES, GIB, USABLE, export_location_id
from floe.storage import mounts
from floe.storage.base import ShareBackend, ShareMountHost, ShareRef, ShrinkRefused, StorageError

log = logging.getLogger("floe.storage")

MAX_TEMPORARY_RETRIES = 20
WAIT_DELAY = 1.0
AUDIT_INTERVAL = 10.0


class LeaseLost(Exception):
    """Another worker took the share over; this one stops touching it."""


@dataclass(frozen=True)
class RuleSnap:
    id: int
    uuid: str
    access_type: str
    access_to: str
    access_level: str
    state: str


@dataclass(frozen=True)
class AttachmentSnap:
    id: int
    mount_name: str
    read_only: bool
    state: str
    nodes_verified: tuple[str, ...]
    cluster_id: int
    cluster_name: str
    cluster_uuid: str
    cluster_tag: str
    cluster_status: str
    node_names: tuple[str, ...]


@dataclass(frozen=True)
class ShareSnap:
    id: int
    uuid: str
    name: str | None
    share_type: str
    size: int
    target_size: int | None
    status: str
    work_seq: int
    attempts: int
    backend_state: dict
    rules: tuple[RuleSnap, ...] = ()
    attachments: tuple[AttachmentSnap, ...] = ()

    def ref(self, size: int | None = None) -> ShareRef:
        return ShareRef(id=self.uuid, size_bytes=(size or self.size) * GIB, state=dict(self.backend_state))

    @property
    def label(self) -> str:
        return self.name or self.uuid


@dataclass
class Outcome:
    """What working a share left: more to do later, and how soon."""

    pending: bool = False
    delay: float = WAIT_DELAY
    notes: list[str] = field(default_factory=list)


class StorageWorker:
    """Background threads applying queued share work; `run_until_idle` drives it synchronously in tests."""

    def __init__(self, runtime: Runtime, *, workers: int = 4, lease_seconds: float = 30.0, poll: float = 1.0):
        self.runtime = runtime
        self.db = runtime.db
        self.backends = storage.backends(runtime)
        self.holder = LeaseHolder()
        self.host, self.owner = self.holder.host, self.holder.owner
        self.lease_seconds = lease_seconds
        self.poll = poll
        self.workers = workers
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._running: set[int] = set()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="floe-share")
        self._threads: list[threading.Thread] = []
        runtime.extras["storage_worker"] = self

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        for target, name in ((self._loop, "floe-storage"), (self._heartbeat_loop, "floe-storage-heartbeat")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, wait: bool = True) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=5)
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        try:
            self.reconcile()
        except Exception:  # noqa: BLE001 - a bad moment at start must not stop the worker
            log.exception("share reconcile failed")
        last_audit = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() - last_audit > AUDIT_INTERVAL:
                    last_audit = time.monotonic()
                    self.audit()
                self.dispatch_once()
            except Exception:  # noqa: BLE001 - the loop must survive (e.g. the database is locked)
                log.exception("share dispatch failed")
            self._wake.wait(timeout=self.poll)
            self._wake.clear()

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            with self._lock:
                ids = list(self._running)
            if not ids:
                continue
            try:
                with self.db.session() as s:
                    s.execute(
                        update(Share).where(Share.id.in_(ids), Share.lease_owner == self.owner)
                        .values(lease_expires_at=utcnow() + timedelta(seconds=self.lease_seconds))
                    )
            except Exception:  # noqa: BLE001
                log.exception("share lease heartbeat failed")

    # -- dispatch -------------------------------------------------------------------

    def _owner_gone(self, owner: str | None) -> bool:
        return self.holder.gone(owner)

    def _due(self) -> list[tuple[int, str | None]]:
        now = utcnow()
        with self.db.session() as s:
            rows = s.execute(
                select(Share.id, Share.lease_owner, Share.lease_expires_at).where(
                    Share.needs_work.is_(True), or_(Share.retry_at.is_(None), Share.retry_at <= now)
                ).order_by(Share.id)
            ).all()
        due = []
        for share_id, owner, expires in rows:
            if owner is None or (expires is not None and expires < now) or self._owner_gone(owner):
                due.append((share_id, owner))
        return due

    def _lease(self, share_id: int, old_owner: str | None) -> bool:
        cond = Share.lease_owner.is_(None) if old_owner is None else Share.lease_owner == old_owner
        with self.db.session() as s:
            res = s.execute(
                update(Share).where(Share.id == share_id, cond).values(
                    lease_owner=self.owner, lease_expires_at=utcnow() + timedelta(seconds=self.lease_seconds)
                )
            )
            return res.rowcount == 1

    def dispatch_once(self) -> int:
        """Lease and start work on every due share; returns how many were started."""
        started = 0
        for share_id, owner in self._due():
            with self._lock:
                if share_id in self._running or len(self._running) >= self.workers:
                    continue
            if not self._lease(share_id, owner):
                continue
            with self._lock:
                self._running.add(share_id)
            self._pool.submit(self._run, share_id)
            started += 1
        return started

    def run_until_idle(self, timeout: float = 60.0) -> None:
        """Work every due share in this thread until none is left (tests, `floe` tools)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            due = self._due()
            if not due:
                with self.db.session() as s:
                    waiting = s.scalars(select(Share.retry_at).where(Share.needs_work.is_(True))).all()
                if not waiting:
                    return
                time.sleep(0.1)
                continue
            for share_id, owner in due:
                if self._lease(share_id, owner):
                    self._work(share_id)
        raise TimeoutError("shares still have queued work")

    def _run(self, share_id: int) -> None:
        try:
            self._work(share_id)
        except Exception:  # noqa: BLE001 - logged; the share stays queued and is retried
            log.exception("working share %s failed", share_id)
            try:
                self._finish(share_id, -1, Outcome(pending=True, delay=5.0))
            except Exception:  # noqa: BLE001 - the lease then expires on its own
                log.exception("releasing share %s failed", share_id)
        finally:
            with self._lock:
                self._running.discard(share_id)
            self._wake.set()

    # -- reconciliation ---------------------------------------------------------------

    def reconcile(self) -> None:
        """Queue every share, so images come online again and attachments are mounted again."""
        with self.db.session() as s:
            s.execute(update(Share).values(needs_work=True, work_seq=Share.work_seq + 1, retry_at=None))
        self.wake()

    def audit(self) -> None:
        """Queue shares attached to clusters whose running nodes changed since the last check."""
        provider = self.runtime.provider
        if provider is None:
            return
        with self.db.session() as s:
            rows = s.execute(
                select(ShareAttachment.share_id, ShareAttachment.nodes_verified, Cluster.host_tag, Cluster.id)
                .join(Cluster, Cluster.id == ShareAttachment.cluster_id)
                .where(ShareAttachment.state == "attached")
            ).all()
            names = {cid: [n for n, in s.execute(select(Node.name).where(Node.cluster_id == cid))]
                     for cid in {r[3] for r in rows}}
        stale = set()
        for share_id, verified, tag, cluster_id in rows:
            running = {n for n in names.get(cluster_id, []) if _running(provider, tag, n)}
            if running != set(verified or []):
                stale.add(share_id)
        if stale:
            with self.db.session() as s:
                s.execute(update(Share).where(Share.id.in_(stale))
                          .values(needs_work=True, work_seq=Share.work_seq + 1, retry_at=None))
            self.wake()

    # -- working one share ------------------------------------------------------------

    def _load(self, share_id: int) -> ShareSnap | None:
        with self.db.session() as s:
            share = s.get(Share, share_id)
            if share is None:
                return None
            rules = tuple(RuleSnap(r.id, r.uuid, r.access_type, r.access_to, r.access_level, r.state)
                          for r in share.access_rules)
            atts = []
            for a in share.attachments:
                c = s.get(Cluster, a.cluster_id)
                if c is None:
                    continue
                nodes = tuple(n for n, in s.execute(
                    select(Node.name).where(Node.cluster_id == c.id, Node.state != "planned").order_by(Node.id)))
                atts.append(AttachmentSnap(
                    a.id, a.mount_name, a.read_only, a.state, tuple(a.nodes_verified or ()), c.id, c.name, c.uuid,
                    c.host_tag, c.status, nodes,
                ))
            return ShareSnap(
                share.id, share.uuid, share.name, share.share_type, share.size, share.target_size, share.status,
                share.work_seq, share.attempts, dict(share.backend_state or {}), rules, tuple(atts),
            )

    def _commit(self, share_id: int, fn: Callable[[Session], None]) -> None:
        """Run `fn` in a transaction that commits only while this worker holds the share's lease."""
        with self.db.session() as s:
            held = s.execute(
                update(Share).where(Share.id == share_id, Share.lease_owner == self.owner)
                .values(lease_expires_at=utcnow() + timedelta(seconds=self.lease_seconds))
            ).rowcount
            if held != 1:
                raise LeaseLost(share_id)
            fn(s)

    def _work(self, share_id: int) -> None:
        snap = self._load(share_id)
        if snap is None:
            return
        # Work queued after this point (a delete during a create) must not be cleared with ours.
        seq = snap.work_seq
        outcome = Outcome()
        try:
            backend = self.backends.get(snap.share_type)
        except StorageError as exc:
            self._fail(snap, str(exc))
            self._finish(snap.id, seq, outcome)
            return
        try:
            if snap.status == "deleting":
                self._delete(snap, backend)
                return
            if snap.status in ("creating", "extending", "shrinking"):
                self._change(snap, backend)
                snap = self._load(share_id) or snap
            if snap.status in USABLE:
                backend.ensure(snap.ref())
                self._rules(snap, backend, outcome)
                snap = self._load(share_id) or snap
                self._attachments(snap, backend, outcome)
            elif snap.status in ("creating", "extending", "shrinking", "deleting"):
                outcome.pending = True
            else:  # error: nothing can be mounted
                self._attachments_fail(snap, f"share {snap.label} is {snap.status}")
        except LeaseLost:
            log.info("share %s was taken over by another worker", snap.uuid)
            return
        except StorageError as exc:
            if exc.temporary and snap.attempts < MAX_TEMPORARY_RETRIES:
                log.info("share %s: %s (will retry)", snap.uuid, exc)
                self._commit(snap.id, lambda s: s.execute(
                    update(Share).where(Share.id == snap.id).values(attempts=Share.attempts + 1)))
                outcome.pending, outcome.delay = True, min(30.0, 0.5 * 2 ** snap.attempts)
            else:
                log.warning("share %s failed: %s", snap.uuid, exc)
                self._fail(snap, str(exc))
        self._finish(snap.id, seq, outcome)

    def _finish(self, share_id: int, seq: int, outcome: Outcome) -> None:
        """Release the lease; the share stays queued if work is pending or arrived since `seq`."""

        def write(s: Session) -> None:
            if outcome.pending:
                s.execute(update(Share).where(Share.id == share_id).values(
                    retry_at=utcnow() + timedelta(seconds=outcome.delay)))
            else:
                s.execute(update(Share).where(Share.id == share_id, Share.work_seq == seq)
                          .values(needs_work=False, attempts=0))
            s.execute(update(Share).where(Share.id == share_id).values(lease_owner=None, lease_expires_at=None))

        try:
            self._commit(share_id, write)
        except LeaseLost:
            pass

    def _fail(self, snap: ShareSnap, reason: str) -> None:
        """A permanent failure of the share's own change: error statuses with the reason."""
        status = {"creating": "error", "deleting": "error_deleting", "extending": "extending_error",
                  "shrinking": "shrinking_error"}.get(snap.status, snap.status)
        values: dict = {"status": status, "status_reason": reason, "target_size": None, "attempts": 0}
        self._commit(snap.id, lambda s: s.execute(
            update(Share).where(Share.id == snap.id, Share.status == snap.status).values(**values)))

    # -- the share's own change -------------------------------------------------------

    def _change(self, snap: ShareSnap, backend: ShareBackend) -> None:
        if snap.status == "creating":
            created = backend.create(snap.ref())
            locations = [
                {"id": export_location_id(snap.uuid, loc.path), "path": loc.path, "preferred": loc.preferred,
                 "is_admin_only": loc.is_admin_only}
                for loc in created.export_locations
            ]
            values = {"status": "available", "status_reason": None, "export_locations": locations,
                      "backend_state": created.state, "attempts": 0}
            log.info("share %s created (%s, %d GiB)", snap.uuid, snap.share_type, snap.size)
        elif snap.status == "extending":
            new = snap.target_size or snap.size
            state = backend.extend(snap.ref(), new * GIB)
            values = {"status": "available", "status_reason": None, "size": new, "target_size": None,
                      "backend_state": state, "attempts": 0}
        else:
            new = snap.target_size or snap.size
            try:
                state = backend.shrink(snap.ref(), new * GIB)
            except ShrinkRefused as exc:
                values = {"status": "shrinking_possible_data_loss_error", "target_size": None, "attempts": 0,
                          "status_reason": f"shrink to {new} GiB refused, size unchanged: {exc}"}
            else:
                values = {"status": "available", "status_reason": None, "size": new, "target_size": None,
                          "backend_state": state, "attempts": 0}
        self._commit(snap.id, lambda s: s.execute(
            update(Share).where(Share.id == snap.id, Share.status == snap.status).values(**values)))

    def _delete(self, snap: ShareSnap, backend: ShareBackend) -> None:
        for att in snap.attachments:
            self._unmount(att)
        backend_ref = snap.ref()
        for rule in snap.rules:
            try:
                backend.deny(backend_ref, rule.access_type, rule.access_to)
            except StorageError as exc:
                log.info("share %s: deny %s on delete: %s", snap.uuid, rule.access_to, exc)
        backend.delete(backend_ref)

        def write(s: Session) -> None:
            s.execute(delete(ShareAttachment).where(ShareAttachment.share_id == snap.id))
            s.execute(delete(ShareAccessRule).where(ShareAccessRule.share_id == snap.id))
            s.execute(delete(Share).where(Share.id == snap.id, Share.status == "deleting"))

        self._commit(snap.id, write)
        log.info("share %s deleted", snap.uuid)

    # -- access rules -----------------------------------------------------------------

    def _rules(self, snap: ShareSnap, backend: ShareBackend, outcome: Outcome) -> None:
        ref = snap.ref()
        for rule in snap.rules:
            if rule.state == "queued_to_apply":
                try:
                    extra = backend.allow(ref, rule.access_type, rule.access_to, rule.access_level)
                except StorageError as exc:
                    if exc.temporary:
                        raise
                    self._set_rule(snap, rule, "error", str(exc))
                    continue
                self._set_rule(snap, rule, "active", None, access_key=extra.get("access_key"))
            elif rule.state == "queued_to_deny":
                # Clusters this rule alone lets in lose the share first ("denying access detaches").
                for att in snap.attachments:
                    if self._only_rule_for(snap, rule, att):
                        self._unmount(att)
                        self._commit(snap.id, lambda s, a=att: s.execute(
                            delete(ShareAttachment).where(ShareAttachment.id == a.id)))
                try:
                    backend.deny(ref, rule.access_type, rule.access_to)
                except StorageError as exc:
                    if exc.temporary:
                        raise
                    self._set_rule(snap, rule, "error", f"deny failed: {exc}", expect="queued_to_deny")
                    continue
                self._commit(snap.id, lambda s, r=rule: s.execute(
                    delete(ShareAccessRule).where(ShareAccessRule.id == r.id,
                                                  ShareAccessRule.state == "queued_to_deny")))

    @staticmethod
    def _matches(rule: RuleSnap, att: AttachmentSnap) -> bool:
        return rule.access_type in CLUSTER_ACCESS_TYPES and rule.access_to in (att.cluster_name, att.cluster_uuid)

    def _only_rule_for(self, snap: ShareSnap, rule: RuleSnap, att: AttachmentSnap) -> bool:
        if not self._matches(rule, att):
            return False
        return not any(self._matches(r, att) for r in snap.rules if r.id != rule.id and r.state == "active")

    def _set_rule(self, snap: ShareSnap, rule: RuleSnap, state: str, reason: str | None,
                  access_key: str | None = None, expect: str = "queued_to_apply") -> None:
        values: dict = {"state": state, "state_reason": reason}
        if access_key:
            values["access_key"] = access_key
        self._commit(snap.id, lambda s: s.execute(
            update(ShareAccessRule).where(ShareAccessRule.id == rule.id, ShareAccessRule.state == expect)
            .values(**values)))

    # -- attachments ------------------------------------------------------------------

    def _provider(self) -> ShareMountHost | None:
        provider = self.runtime.provider
        return provider if isinstance(provider, ShareMountHost) else None

    def _target(self, att: AttachmentSnap) -> Path | None:
        provider = self._provider()
        if provider is None:
            return None
        base = provider.cluster_mount_dir(att.cluster_tag)
        return None if base is None else base / att.mount_name

    def _unmount(self, att: AttachmentSnap) -> None:
        target = self._target(att)
        if target is None or not target.exists():
            return
        try:
            mounts.unmount(target)
            target.rmdir()
        except (mounts.MountError, OSError) as exc:
            raise StorageError(f"cannot unmount {target}: {exc}", temporary=True) from None

    def _set_attachment(self, snap: ShareSnap, att: AttachmentSnap, **values) -> None:
        self._commit(snap.id, lambda s: s.execute(
            update(ShareAttachment).where(ShareAttachment.id == att.id, ShareAttachment.state == att.state)
            .values(**values)))

    def _attachments_fail(self, snap: ShareSnap, reason: str) -> None:
        for att in snap.attachments:
            if att.state == "attaching":
                self._set_attachment(snap, att, state="error", state_reason=reason)

    def _attachments(self, snap: ShareSnap, backend: ShareBackend, outcome: Outcome) -> None:
        for att in snap.attachments:
            if att.state == "detaching" or att.cluster_status.startswith("DELETE"):
                # A cluster being deleted loses its mounts with its directory; just forget them.
                if att.state == "detaching":
                    self._unmount(att)
                self._commit(snap.id, lambda s, a=att: s.execute(
                    delete(ShareAttachment).where(ShareAttachment.id == a.id)))
            elif att.state in ("attaching", "attached"):
                self._ensure_attachment(snap, backend, att, outcome)

    def _ensure_attachment(self, snap: ShareSnap, backend: ShareBackend, att: AttachmentSnap,
                           outcome: Outcome) -> None:
        rules = [r for r in snap.rules if self._matches(r, att)]
        active = [r for r in rules if r.state == "active"]
        if not active:
            if any(r.state == "queued_to_apply" for r in rules):
                outcome.pending = True  # the rule is applied first, then the mount
                return
            self._unmount(att)
            self._set_attachment(snap, att, state="error",
                                 state_reason=f"cluster {att.cluster_name} has no active access rule on the share")
            return
        read_only = att.read_only or not any(r.access_level == "rw" for r in active)
        provider = self._provider()
        if provider is None:
            self._set_attachment(snap, att, state="error", state_reason="this server's provider cannot mount shares")
            return
        target = self._target(att)
        if target is None:
            if any(provider.node_mount_view(att.cluster_tag, n) is not None for n in att.node_names):
                # Nodes run, yet the cluster has no share directory: they were started by a floe
                # that did not set one up, and cannot receive mounts.
                self._set_attachment(snap, att, state="error", state_reason=(
                    f"the nodes of cluster {att.cluster_name} were started before floe could mount shares on "
                    "them: recreate the cluster (or restart its nodes) and attach again"))
                return
            outcome.pending = True
            self._set_attachment(snap, att, state_reason=f"waiting for cluster {att.cluster_name}'s first node")
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
        if self._cluster_gone(att):
            self._unmount(att)
            return
        seen, missing = [], []
        for name in att.node_names:
            view = provider.node_mount_view(att.cluster_tag, name)
            if view is None:
                continue  # not running: it mounts /mnt when it starts
            if _same_mount(view / att.mount_name, target, read_only):
                seen.append(name)
            else:
                missing.append(name)
        if missing:
            self._set_attachment(
                snap, att, state="error", nodes_verified=seen, read_only=read_only,
                state_reason=f"mounted on the host but not visible in node(s) {', '.join(missing)} (started before "
                "they could receive shares?): restart them or recreate the cluster",
            )
            return
        if att.state == "attaching" and att.cluster_status.endswith("_IN_PROGRESS"):
            # Mounted, and nodes starting now will see it; `attached` waits until every node
            # of the settled cluster has been checked.
            outcome.pending = True
            self._set_attachment(snap, att, nodes_verified=seen, read_only=read_only,
                                 state_reason=f"mounted; checking every node once cluster {att.cluster_name} "
                                 f"is no longer {att.cluster_status}")
            return
        self._set_attachment(snap, att, state="attached", state_reason=None, nodes_verified=seen, read_only=read_only)
        if att.state == "attaching":
            log.info("share %s attached to cluster %s at /mnt/%s (%s, %d node(s))", snap.uuid, att.cluster_name,
                     att.mount_name, "ro" if read_only else "rw", len(seen))

    def _cluster_gone(self, att: AttachmentSnap) -> bool:
        with self.db.session() as s:
            status = s.scalars(select(Cluster.status).where(Cluster.id == att.cluster_id)).first()
        return status is None or status.startswith("DELETE")


def _running(provider, tag: str, name: str) -> bool:
    try:
        info = provider.node_info(tag, name)
    except Exception:  # noqa: BLE001 - a node we cannot inspect counts as not running
        return False
    return bool(info and info.running)


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _same_mount(seen: Path, host: Path, read_only: bool) -> bool:
    """Whether a node's view of the share is the host's mount (same filesystem, same read-only flag)."""
    try:
        a, b = os.stat(seen), os.stat(host)
        flags = os.statvfs(seen).f_flag
    except OSError:
        return False
    return a.st_dev == b.st_dev and a.st_ino == b.st_ino and bool(flags & os.ST_RDONLY) == read_only
