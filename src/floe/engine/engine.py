"""The engine: leases operations from the database and runs their steps in worker threads.

- A dispatcher finds operations that nobody holds (or whose holder's lease expired, or
  whose holder was a process on this host that is gone) and leases them with a
  compare-and-swap on the owner column; `wake()` lets the API hint that work is waiting.
- A worker runs the operation's pipeline, skipping steps recorded as done. Every write a
  step makes is committed only while the lease is still ours (see StepContext.session).
- A heartbeat extends the leases this process holds; a deadline watchdog fails operations
  that ran past their time, naming the step they were stuck in.
One operation per cluster at a time; different clusters run in parallel.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import docker.errors
import requests.exceptions
from sqlalchemy import and_, case, select, update

from floe.coe.base import COEDriver
from floe.db.base import utcnow
from floe.db.models import Cluster, Operation
from floe.engine import failpoints
from floe.engine.context import StepContext
from floe.engine.errors import DeadlineExceeded, LeaseLost, PermanentError, TemporaryError
from floe.engine.operations import ACTIVE
from floe.engine.pipelines import FAILED, PIPELINES
from floe.engine.steps import Step
from floe.leases import LeaseHolder
from floe.runtime import Runtime

log = logging.getLogger("floe.engine")

DEFAULT_DEADLINE = timedelta(hours=1)
MAX_TEMPORARY_RETRIES = 30
# A step whose holder died (or stopped answering) this many times in a row while running it
# fails the operation: it is what kills or wedges the server, and resuming it again would too.
MAX_INTERRUPTIONS = 3


def default_drivers() -> dict[str, COEDriver]:
    from floe.coe.swarm.driver import SwarmDriver

    swarm = SwarmDriver()
    return {name: swarm for name in swarm.coe_names}


class Engine:
    def __init__(self, runtime: Runtime, drivers: dict[str, COEDriver] | None = None):
        self.runtime = runtime
        self.settings = runtime.settings
        self.drivers = drivers or default_drivers()
        self.holder = LeaseHolder()
        self.host, self.owner = self.holder.host, self.holder.owner
        self.lease_seconds = self.settings.lease_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._running: set[int] = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=self.settings.engine_workers, thread_name_prefix="floe-op")
        self._threads: list[threading.Thread] = []

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        for target, name in ((self._dispatch_loop, "floe-dispatch"), (self._heartbeat_loop, "floe-heartbeat")):
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

    def busy(self) -> bool:
        with self._lock:
            return bool(self._running)

    # --- dispatch ----------------------------------------------------------------------
    def _owner_gone(self, owner: str | None) -> bool:
        """True when the lease holder was a floe process on this host that no longer runs."""
        return self.holder.gone(owner)

    def dispatch_once(self) -> int:
        """Lease and start runnable operations, as many as there are free workers; returns how many.

        Two bounded reads per wake-up, however long the queue: the operations someone holds a
        lease on (at most the workers of every floe process, plus superseded ones letting go)
        and the oldest unleased ones, as many as this process has free workers.
        """
        now = utcnow()
        cols = (
            Operation.id, Operation.cluster_id, Operation.state, Operation.lease_owner,
            Operation.lease_expires_at, Operation.deadline_at, Operation.step, Operation.kind,
        )
        with self.runtime.db.session() as s:
            leased = s.execute(select(*cols).where(Operation.lease_owner.is_not(None)).order_by(Operation.id)).all()
        held_clusters: set[int] = set()
        takeover = []
        for r in leased:
            live = r.lease_expires_at and r.lease_expires_at > now and not self._owner_gone(r.lease_owner)
            if r.state not in ACTIVE:
                # A superseded operation whose worker has not yet let go: its cluster waits.
                if live:
                    held_clusters.add(r.cluster_id)
                else:
                    self._release(r.id, r.lease_owner)
                continue
            with self._lock:
                ours = r.id in self._running
            if r.lease_owner == self.owner and ours:
                if r.deadline_at and r.deadline_at < now:
                    self._fail(r.id, f"{r.kind} timed out (deadline {r.deadline_at:%H:%M:%S} UTC) in step "
                               f"{r.step or 'queued'}, which did not finish", owner=self.owner)
                held_clusters.add(r.cluster_id)
            elif live and r.lease_owner != self.owner:
                held_clusters.add(r.cluster_id)
            else:
                takeover.append(r)  # expired, its process gone, or ours but no worker runs it
        with self._lock:
            free = self.settings.engine_workers - len(self._running)
        if free <= 0:
            return 0
        candidates = [r for r in takeover if r.cluster_id not in held_clusters][:free]
        if len(candidates) < free:
            q = select(*cols).where(Operation.state.in_(ACTIVE), Operation.lease_owner.is_(None))
            if held_clusters:
                q = q.where(Operation.cluster_id.not_in(held_clusters))
            with self.runtime.db.session() as s:
                candidates += s.execute(q.order_by(Operation.id).limit(free - len(candidates))).all()
        started = 0
        for r in candidates:
            if r.cluster_id in held_clusters:
                continue
            with self._lock:
                if r.id in self._running or len(self._running) >= self.settings.engine_workers:
                    continue
            if self._lease(r.id, r.lease_owner):
                held_clusters.add(r.cluster_id)
                if self._poisoned(r.id):
                    continue
                with self._lock:
                    self._running.add(r.id)
                self._pool.submit(self._run, r.id)
                started += 1
        return started

    def _lease(self, op_id: int, old_owner: str | None) -> bool:
        values: dict = {
            "lease_owner": self.owner,
            "lease_expires_at": utcnow() + timedelta(seconds=self.lease_seconds),
            "state": "running",
            "attempts": Operation.attempts + 1,
        }
        if old_owner is not None and old_owner != self.owner:
            # Taken from a holder that died or stopped renewing: if it was inside a step (a
            # step is named before it runs), that step was interrupted once more. In the same
            # UPDATE as the lease, so a crash cannot lose the count.
            same = and_(Operation.step != "", Operation.step == Operation.interrupted_step)
            values["interruptions"] = case(
                (same, Operation.interruptions + 1), (Operation.step != "", 1), else_=Operation.interruptions
            )
            values["interrupted_step"] = case(
                (Operation.step != "", Operation.step), else_=Operation.interrupted_step
            )
        with self.runtime.db.session() as s:
            cond = Operation.lease_owner.is_(None) if old_owner is None else Operation.lease_owner == old_owner
            res = s.execute(
                update(Operation)
                .where(Operation.id == op_id, cond, Operation.state.in_(("pending", "running")))
                .values(**values)
            )
            return res.rowcount == 1

    def _poisoned(self, op_id: int) -> bool:
        """Fail a just-leased operation whose step keeps taking its holders down; True if so."""
        with self.runtime.db.session() as s:
            row = s.execute(
                select(Operation.kind, Operation.interrupted_step, Operation.interruptions).where(Operation.id == op_id)
            ).one()
        if row.interruptions < MAX_INTERRUPTIONS:
            return False
        self._fail(
            op_id,
            f"{row.kind} stopped: step {row.interrupted_step} was interrupted {row.interruptions} times in a row "
            "(the server died or stopped answering while running it), so it is not resumed again; "
            "see the server log, then delete the cluster or try again",
            owner=self.owner,
        )
        return True

    def _release(self, op_id: int, owner: str | None) -> None:
        with self.runtime.db.session() as s:
            s.execute(
                update(Operation).where(Operation.id == op_id, Operation.lease_owner == owner).values(lease_owner=None)
            )

    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.dispatch_once()
            except Exception:  # noqa: BLE001 - the loop must survive a bad moment (e.g. DB locked)
                log.exception("dispatch failed")
            self._wake.wait(timeout=1.0)
            self._wake.clear()

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            with self._lock:
                ids = list(self._running)
            if not ids:
                continue
            try:
                with self.runtime.db.session() as s:
                    s.execute(
                        update(Operation)
                        .where(Operation.id.in_(ids), Operation.lease_owner == self.owner)
                        .values(lease_expires_at=utcnow() + timedelta(seconds=self.lease_seconds))
                    )
            except Exception:  # noqa: BLE001
                log.exception("heartbeat failed")

    # --- running an operation ------------------------------------------------------------
    def _run(self, op_id: int) -> None:
        ctx: StepContext | None = None
        timeout_minutes = None
        try:
            with self.runtime.db.session() as s:
                op = s.get(Operation, op_id)
                cluster = s.get(Cluster, op.cluster_id)
                driver = self.drivers.get(cluster.coe)
                deadline = op.deadline_at or (op.created_at + DEFAULT_DEADLINE)
                ctx = StepContext(
                    runtime=self.runtime, op_id=op_id, cluster_id=cluster.id, kind=op.kind, owner=self.owner,
                    lease_seconds=self.lease_seconds, deadline=deadline, provider=self.runtime.provider,
                    driver=driver, params=dict(op.params or {}),
                )
                done = list(op.steps_done or [])
                timeout_minutes = cluster.create_timeout
            if driver is None:
                raise PermanentError(f"no driver for coe {cluster.coe!r}")
            pipeline: list[Step] = PIPELINES[ctx.kind](driver)
            t0 = time.monotonic()
            recorded = len(done)
            for step in pipeline:
                if step.name in done:
                    continue
                ctx.step = step.name
                # One commit per step: it records the steps done so far and names this one.
                marker = {"step": step.name}
                if len(done) > recorded:
                    marker["steps_done"] = list(done)
                    recorded = len(done)
                with ctx.session() as s:
                    s.execute(update(Operation).where(Operation.id == op_id).values(**marker))
                    s.execute(
                        update(Cluster).where(Cluster.id == ctx.cluster_id)
                        .values(status_reason=f"step {step.name}: {step.title}")
                    )
                failpoints.hit(ctx.kind, step.name, "before")
                self._run_step(ctx, step)
                failpoints.hit(ctx.kind, step.name, "after")
                done.append(step.name)
                log.info("op %s %s step %s done at %.2fs", op_id, ctx.kind, step.name, time.monotonic() - t0)
                if ctx.kind == "delete" and step.name == "release":
                    return  # the cluster row, and this operation with it, are gone
            with ctx.session() as s:
                s.execute(
                    update(Operation).where(Operation.id == op_id)
                    .values(state="complete", finished_at=utcnow(), lease_owner=None, step="", steps_done=list(done))
                )
            log.info("op %s %s complete in %.2fs", op_id, ctx.kind, time.monotonic() - t0)
        except LeaseLost:
            self._release(op_id, self.owner)
        except DeadlineExceeded as exc:
            what = f"{ctx.kind} timed out" if ctx else "timed out"
            if ctx and ctx.kind == "create":
                what = f"create timed out after {timeout_minutes} minute(s)"
            self._fail(op_id, f"{what} in step {ctx.step if ctx else '?'}: {exc}")
        except Exception as exc:  # noqa: BLE001 - every failure must reach the user as a reason
            log.exception("operation %s failed", op_id)
            step = ctx.step if ctx else "?"
            self._fail(op_id, f"step {step} failed: {_describe(exc)}")
        finally:
            if ctx is not None:
                ctx.close()
            with self._lock:
                self._running.discard(op_id)
            self._wake.set()

    def _run_step(self, ctx: StepContext, step: Step) -> None:
        attempt = 0
        while True:
            try:
                step.run(ctx)
                return
            except (TemporaryError, docker.errors.APIError, requests.exceptions.ConnectionError) as exc:
                if isinstance(exc, docker.errors.APIError) and exc.is_client_error():
                    raise
                attempt += 1
                delay = min(getattr(exc, "delay", 0.5) * (1.5 ** (attempt - 1)), 5.0)
                if attempt > MAX_TEMPORARY_RETRIES or ctx.remaining() < delay:
                    raise PermanentError(f"{_describe(exc)} (after {attempt} attempts)") from exc
                log.info("step %s: temporary failure (%s), retry in %.1fs", step.name, exc, delay)
                time.sleep(delay)
                ctx.check()

    def _fail(self, op_id: int, reason: str, owner: str | None = None) -> None:
        with self.runtime.db.session() as s:
            op = s.get(Operation, op_id)
            if op is None or op.state not in ("pending", "running"):
                return
            if owner is not None and op.lease_owner != owner:
                return
            op.state = "failed"
            op.error = reason
            op.finished_at = utcnow()
            op.lease_owner = None
            cluster = s.get(Cluster, op.cluster_id)
            if cluster is not None:
                cluster.status = FAILED[op.kind]
                cluster.status_reason = reason
        log.warning("operation %s failed: %s", op_id, reason)

    # --- helpers for tests and tools ---------------------------------------------------------
    def run_until_idle(self, timeout: float = 600.0) -> None:
        """Dispatch and wait until no operation is runnable (used by tests and the bench)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.dispatch_once()
            if not self.busy():
                with self.runtime.db.session() as s:
                    left = s.scalar(select(Operation.id).where(Operation.state.in_(("pending", "running"))).limit(1))
                if left is None:
                    return
            time.sleep(0.05)
        raise TimeoutError("engine did not become idle")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError):
        return f"docker: {exc.explanation or exc}"
    return str(exc) or type(exc).__name__
