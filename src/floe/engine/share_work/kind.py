"""Share work as a kind the runner leases: one share at a time, its queued work as named steps."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from floe import metrics
from floe.db import events
from floe.db.base import utcnow
from floe.db.models import Cluster, Node, Share, ShareAttachment
from floe.db.models.shares import USABLE
from floe.engine import failpoints
from floe.engine.errors import translate
from floe.engine.runner import Due, Lease, LeaseKind, Runner, backoff
from floe.engine.share_work import steps
from floe.engine.share_work.snapshot import Outcome, load
from floe.engine.share_work.steps import ShareContext
from floe.errors import LeaseLost, PermanentError, TemporaryError
from floe.steps import Step
from floe.storage.base import StorageError

log = logging.getLogger("floe.storage")

AUDIT_INTERVAL = 10.0
CHANGING = ("creating", "extending", "shrinking")
UNEXPECTED_RETRY_DELAY = 5.0

# (failpoint kind, step, whether the share's snapshot has anything for it to do)
Plan = list[tuple[str, Step, object]]
CHANGES: dict[str, Plan] = {
    "creating": [("share_create", Step("create", steps.create, "make the share's storage"), None),
                 ("share_create", Step("record", steps.record_create, "record the share as available"), None)],
    "extending": [("share_extend", Step("extend", steps.extend, "grow the share"), None),
                  ("share_extend", Step("record", steps.record_change, "record the new size"), None)],
    "shrinking": [("share_shrink", Step("shrink", steps.shrink, "shrink the share"), None),
                  ("share_shrink", Step("record", steps.record_change, "record the new size"), None)],
}
DELETE: Plan = [
    ("share_delete", Step("unmount", steps.unmount_all, "unmount it from every cluster"), None),
    ("share_delete", Step("deny", steps.deny_all, "withdraw its access rules"), None),
    ("share_delete", Step("destroy", steps.destroy, "destroy its storage"), None),
    ("share_delete", Step("forget", steps.forget, "forget the share"), None),
]
ACCESS: Plan = [
    ("share_online", Step("ensure", steps.ensure_online, "bring the share online"), None),
    ("share_access", Step("allow", steps.allow, "apply queued access rules"),
     lambda snap: any(r.state == "queued_to_apply" for r in snap.rules)),
    ("share_access", Step("revoke", steps.revoke, "deny queued access rules"),
     lambda snap: any(r.state == "queued_to_deny" for r in snap.rules)),
]
ATTACHMENTS: Plan = [
    ("share_detach", Step("detach", steps.detach, "unmount from clusters that let go"), steps.has_leaving),
    ("share_attach", Step("attach", steps.attach, "mount and verify in every node"), steps.has_staying),
]
FAILED = {"creating": "error", "deleting": "error_deleting", "extending": "extending_error",
          "shrinking": "shrinking_error"}


class ShareWork(LeaseKind):
    """Shares with `needs_work`, leased one share at a time (the share is its own group)."""

    name = "share"
    model = Share

    def __init__(self, runtime, runner: Runner, *, workers: int = 4, lease_seconds: float = 30.0):
        self.runtime = runtime
        self.db = runtime.db
        self.backends = runtime.share_backends
        self.runner = runner
        self.workers = workers
        self.lease_seconds = lease_seconds
        # Looked for when woken for shares, a pass ended, or a poll went by: not at every
        # wake-up of the engine (cluster operations wake it far more often).
        self._wanted = threading.Event()
        self._looked = 0.0

    def hint(self) -> None:
        self._wanted.set()

    def wake(self) -> None:
        self.runner.wake(self.name)

    # --- what is due -----------------------------------------------------------------------
    def due(self, runner: Runner, free: int) -> list[Due]:
        if free <= 0 or (not self._wanted.is_set() and time.monotonic() - self._looked < runner.poll):
            return []
        self._wanted.clear()
        self._looked = time.monotonic()
        now = utcnow()
        with self.db.session() as s:
            rows = s.execute(
                select(Share.id, Share.lease_owner, Share.lease_expires_at).where(
                    Share.needs_work.is_(True), or_(Share.retry_at.is_(None), Share.retry_at <= now)
                ).order_by(Share.id)
            ).all()
        return [Due(i, i, owner) for i, owner, expires in rows
                if owner is None or (expires is not None and expires < now) or runner.holder.gone(owner)]

    def idle(self) -> bool:
        with self.db.session() as s:
            return s.scalar(select(Share.id).where(Share.needs_work.is_(True)).limit(1)) is None

    def context(self, share_id: int, lease: Lease) -> ShareContext | None:
        snap = load(self.db, share_id)
        if snap is None:
            return None
        try:
            backend = self.backends.get(snap.share_type)
        except StorageError as exc:
            backend = None
            failure = str(exc)
        ctx = ShareContext(self.db, share_id, lease.owner, lease.seconds, self.runtime.provider, backend, snap)
        if backend is None:
            ctx.result["backend_failure"] = failure
        return ctx

    # --- one pass over a share -------------------------------------------------------------
    def ended(self, item_id: int) -> None:
        self._wanted.set()  # its share (or one that waited for a worker) may be due again

    def run(self, item_id: int, lease: Lease) -> None:
        ctx = self.context(item_id, lease)
        if ctx is None:
            return
        # Work queued after this point (a delete during a create) must not be cleared with ours.
        seq = ctx.snap.work_seq
        if ctx.backend is None:
            self.fail(ctx, ctx.result["backend_failure"])
            self.finish(ctx, seq)
            return
        try:
            if self.work(ctx):
                return  # deleted: the row, and its lease, are gone
        except LeaseLost:
            log.info("share %s was taken over by another worker", ctx.snap.uuid)
            return
        except Exception as raw:  # noqa: BLE001 - judged by the one retry policy below
            exc = translate(raw)
            if isinstance(exc, TemporaryError):
                delay = backoff(ctx.snap.attempts + 1, exc.delay)
                if delay is None:
                    self._fail_quietly(ctx, str(exc))
                else:
                    log.info("share %s: %s (will retry)", ctx.snap.uuid, exc)
                    ctx.commit(lambda s: s.execute(
                        update(Share).where(Share.id == ctx.share_id).values(attempts=Share.attempts + 1)))
                    ctx.outcome = Outcome(pending=True, delay=delay)
            elif isinstance(exc, PermanentError):
                self._fail_quietly(ctx, str(exc))
            else:
                log.exception("working share %s failed", ctx.snap.uuid)
                ctx.outcome, seq = Outcome(pending=True, delay=UNEXPECTED_RETRY_DELAY), -1
        self.finish(ctx, seq)

    def work(self, ctx: ShareContext) -> bool:
        """Run the steps the share's state asks for; True if the share is gone."""
        if ctx.snap.status == "deleting":
            self.run_steps(ctx, DELETE)
            return True
        if ctx.snap.status in CHANGES:
            self.run_steps(ctx, CHANGES[ctx.snap.status])
            ctx.reload()
        if ctx.snap.status in USABLE:
            self.run_steps(ctx, ACCESS)
            ctx.reload()
            self.run_steps(ctx, ATTACHMENTS)
        elif ctx.snap.status in (*CHANGING, "deleting"):
            ctx.outcome.pending = True
        else:  # error: nothing can be mounted
            steps.fail_attachments(ctx, f"share {ctx.snap.label} is {ctx.snap.status}")
        return False

    def run_steps(self, ctx: ShareContext, plan: Plan) -> None:
        for kind, step, applies in plan:
            if applies is not None and not applies(ctx.snap):
                continue
            ctx.kind, ctx.step = kind, step.name
            # Named before it runs, in the row: the runner's poison guard counts a death in it.
            ctx.commit(lambda s, n=step.name, k=kind: _step_started(s, ctx, k, n))
            failpoints.hit(kind, step.name, "before")
            started = time.monotonic()
            step.run(ctx)
            metrics.step_done("share", step.name, time.monotonic() - started)
            failpoints.hit(kind, step.name, "after")

    # --- ending a pass ---------------------------------------------------------------------
    def finish(self, ctx: ShareContext, seq: int) -> None:
        """Release the lease; the share stays queued if work is pending or arrived since `seq`."""
        outcome, share_id = ctx.outcome, ctx.share_id

        def write(s: Session) -> None:
            if outcome.pending:
                s.execute(update(Share).where(Share.id == share_id).values(
                    retry_at=utcnow() + timedelta(seconds=outcome.delay)))
            else:
                s.execute(update(Share).where(Share.id == share_id, Share.work_seq == seq)
                          .values(needs_work=False, attempts=0))
            # The pass ended on its own: no step of it took the server down.
            s.execute(update(Share).where(Share.id == share_id).values(
                lease_owner=None, lease_expires_at=None, step="", interrupted_step="", interruptions=0))

        try:
            ctx.commit(write)
        except LeaseLost:
            pass

    def fail(self, ctx: ShareContext, reason: str) -> None:
        """A permanent failure of the share's own change: error statuses with the reason."""
        snap = ctx.snap
        values: dict = {"status": FAILED.get(snap.status, snap.status), "status_reason": reason,
                        "target_size": None, "attempts": 0}

        def write(s: Session) -> None:
            if s.execute(update(Share).where(Share.id == snap.id, Share.status == snap.status)
                         .values(**values)).rowcount:
                events.record(s, project_id=snap.project_id, kind="share.failed", level="error", share_id=snap.uuid,
                              step=ctx.step, message=f"share {snap.label}: {reason}",
                              data={"status": values["status"]})

        ctx.commit(write)

    def _fail_quietly(self, ctx: ShareContext, reason: str) -> None:
        log.warning("share %s failed: %s", ctx.snap.uuid, reason)
        try:
            self.fail(ctx, reason)
        except LeaseLost:
            pass

    def poisoned(self, item_id: int, step: str, count: int, lease: Lease) -> None:
        ctx = self.context(item_id, lease)
        if ctx is None:
            return
        reason = (f"share work stopped: step {step} was interrupted {count} times in a row (the server died or "
                  "stopped answering while running it), so it is not resumed again; see the server log")
        self._fail_quietly(ctx, reason)
        if step in ("attach", "detach"):
            steps.fail_attachments(ctx, reason)
        self.finish(ctx, ctx.snap.work_seq)

    # --- periodic work (registered by the composition root) ---------------------------------
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


def _step_started(s: Session, ctx: ShareContext, kind: str, step: str) -> None:
    s.execute(update(Share).where(Share.id == ctx.share_id).values(step=step))
    events.record(s, project_id=ctx.snap.project_id, kind="share.step", share_id=ctx.snap.uuid, step=step,
                  message=f"share {ctx.snap.label}: step {step}", data={"kind": kind})


def _running(provider, tag: str, name: str) -> bool:
    try:
        info = provider.node_info(tag, name)
    except Exception:  # noqa: BLE001 - a node we cannot inspect counts as not running
        return False
    return bool(info and info.running)
