"""The engine: the lease runner with cluster operations as one of the kinds it leases.

- `Operations` finds operations nobody holds (or whose holder's lease expired, or whose
  holder was a process on this host that is gone); the runner leases them (compare-and-swap
  on the owner) and runs the operation's pipeline in a worker, skipping steps recorded
  as done. Every write a step makes is committed only while the lease is still ours
  (see StepContext.session). A deadline watchdog fails operations that ran past their
  time, naming the step they were stuck in.
- One operation per cluster at a time (the cluster is the group); different clusters run
  in parallel. `Engine` is the facade the server, the API (`wake()`) and the tests use;
  other kinds (share work) and periodic tasks are registered on it by the composition root.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from sqlalchemy import select, update

from floe import metrics
from floe.coe.base import COEDriver
from floe.db import events
from floe.db.base import utcnow
from floe.db.models import Cluster, NodeGroup, Operation
from floe.engine import failpoints
from floe.engine.context import StepContext
from floe.engine.errors import describe, translate
from floe.engine.operations import ACTIVE
from floe.engine.pipelines import FAILED, PIPELINES
from floe.engine.runner import (  # noqa: F401 - MAX_* are part of the engine's public names
    MAX_INTERRUPTIONS,
    MAX_TEMPORARY_RETRIES,
    Due,
    Lease,
    LeaseKind,
    Runner,
    backoff,
)
from floe.errors import DeadlineExceeded, LeaseLost, PermanentError, TemporaryError
from floe.runtime import Runtime
from floe.steps import Step

log = logging.getLogger("floe.engine")

DEFAULT_DEADLINE = timedelta(hours=1)
_COLS = (
    Operation.id, Operation.cluster_id, Operation.state, Operation.lease_owner,
    Operation.lease_expires_at, Operation.deadline_at, Operation.step, Operation.kind,
)


class Operations(LeaseKind):
    """Cluster operations (create, update, repair, delete), one per cluster at a time."""

    name = "operation"
    model = Operation

    def __init__(self, runtime: Runtime, drivers: dict[str, COEDriver], runner: Runner):
        self.runtime = runtime
        self.drivers = drivers
        self.runner = runner
        self.workers = runtime.settings.engine_workers
        self.lease_seconds = runtime.settings.lease_seconds

    def lease_values(self) -> dict:
        return {"state": "running", "attempts": Operation.attempts + 1}

    def lease_condition(self):
        return Operation.state.in_(ACTIVE)

    def due(self, runner: Runner, free: int) -> list[Due]:
        """Two bounded reads per wake-up, however long the queue: the operations someone holds a
        lease on (at most the workers of every floe process, plus superseded ones letting go)
        and the oldest unleased ones, as many as this process has free workers.
        """
        now = utcnow()
        with self.runtime.db.session() as s:
            leased = s.execute(select(*_COLS).where(Operation.lease_owner.is_not(None)).order_by(Operation.id)).all()
        held: set[int] = set()
        takeover = []
        ours_running = runner.running(self.name)
        for r in leased:
            live = r.lease_expires_at and r.lease_expires_at > now and not runner.holder.gone(r.lease_owner)
            if r.state not in ACTIVE:
                # A superseded operation whose worker has not yet let go: its cluster waits.
                if live:
                    held.add(r.cluster_id)
                else:
                    runner.release(self, r.id, r.lease_owner)
                continue
            if r.lease_owner == runner.owner and r.id in ours_running:
                if r.deadline_at and r.deadline_at < now:
                    self.fail(r.id, f"{r.kind} timed out (deadline {r.deadline_at:%H:%M:%S} UTC) in step "
                              f"{r.step or 'queued'}, which did not finish", owner=runner.owner)
                held.add(r.cluster_id)
            elif live and r.lease_owner != runner.owner:
                held.add(r.cluster_id)
            else:
                takeover.append(r)  # expired, its process gone, or ours but no worker runs it
        if free <= 0:
            return []
        candidates = [r for r in takeover if r.cluster_id not in held][:free]
        if len(candidates) < free:
            q = select(*_COLS).where(Operation.state.in_(ACTIVE), Operation.lease_owner.is_(None))
            if held:
                q = q.where(Operation.cluster_id.not_in(held))
            with self.runtime.db.session() as s:
                candidates += s.execute(q.order_by(Operation.id).limit(free - len(candidates))).all()
        return [Due(r.id, r.cluster_id, r.lease_owner) for r in candidates if r.cluster_id not in held]

    def idle(self) -> bool:
        with self.runtime.db.session() as s:
            return s.scalar(select(Operation.id).where(Operation.state.in_(ACTIVE)).limit(1)) is None

    def poisoned(self, item_id: int, step: str, count: int, lease: Lease) -> None:
        with self.runtime.db.session() as s:
            kind = s.scalar(select(Operation.kind).where(Operation.id == item_id))
        self.fail(
            item_id,
            f"{kind} stopped: step {step} was interrupted {count} times in a row "
            "(the server died or stopped answering while running it), so it is not resumed again; "
            "see the server log, then delete the cluster or try again",
            owner=lease.owner,
        )

    # --- running an operation ------------------------------------------------------------
    def run(self, item_id: int, lease: Lease) -> None:
        op_id = item_id
        ctx: StepContext | None = None
        timeout_minutes = None
        try:
            with self.runtime.db.session() as s:
                op = s.get(Operation, op_id)
                cluster = s.get(Cluster, op.cluster_id)
                driver = self.drivers.get(cluster.coe)
                deadline = op.deadline_at or (op.created_at + DEFAULT_DEADLINE)
                ctx = StepContext(
                    runtime=self.runtime, op_id=op_id, cluster_id=cluster.id, kind=op.kind, owner=lease.owner,
                    lease_seconds=lease.seconds, deadline=deadline, provider=self.runtime.provider,
                    driver=driver, params=dict(op.params or {}),
                )
                done = list(op.steps_done or [])
                timeout_minutes = cluster.create_timeout
                subject = _Subject(cluster.project_id, cluster.uuid, cluster.name, op_id)
                resumed = bool(done) or (op.attempts or 0) > 1
                requested_at = op.created_at
            if driver is None:
                raise PermanentError(f"no driver for coe {cluster.coe!r}")
            pipeline: list[Step] = PIPELINES[ctx.kind](driver)
            t0 = time.monotonic()
            recorded = len(done)
            # One event per commit the runner makes anyway: a step's start tells the previous one's
            # time, the operation's end the last one's (events cost a row each, on every step).
            finished: tuple[Step, float] | None = None
            started = False
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
                    if not started:
                        how = "resumed" if resumed else "started"
                        subject.record(s, "operation.started", f"{ctx.kind} {how}: step {step.name}: {step.title}",
                                       step=step.name, data={"kind": ctx.kind, "resumed": resumed})
                        started = True
                    else:
                        subject.record(s, "step.started", f"step {step.name}: {step.title}{_after(finished)}",
                                       step=step.name, data={"kind": ctx.kind, **_previous(finished)})
                failpoints.hit(ctx.kind, step.name, "before")
                t_step = time.monotonic()
                run_step(ctx, step)
                failpoints.hit(ctx.kind, step.name, "after")
                done.append(step.name)
                finished = (step, time.monotonic() - t_step)
                metrics.step_done(ctx.kind, step.name, finished[1])
                log.info("op %s %s step %s done at %.2fs", op_id, ctx.kind, step.name, time.monotonic() - t0)
                if ctx.kind == "delete" and step.name == "release":
                    # The cluster row, and this operation with it, are gone; its events stay.
                    with self.runtime.db.session() as s:
                        subject.record(s, "cluster.deleted", f"cluster {subject.cluster_name} deleted",
                                       data={"kind": ctx.kind, "seconds": round(time.monotonic() - t0, 3),
                                             **_previous(finished)})
                    metrics.operation_ended(ctx.kind, "complete", (utcnow() - requested_at).total_seconds())
                    return
            with ctx.session() as s:
                s.execute(
                    update(Operation).where(Operation.id == op_id)
                    .values(state="complete", finished_at=utcnow(), lease_owner=None, step="", steps_done=list(done))
                )
                subject.record(s, "operation.complete", f"{ctx.kind} complete",
                               data={"kind": ctx.kind, "seconds": round(time.monotonic() - t0, 3),
                                     **_previous(finished)})
            log.info("op %s %s complete in %.2fs", op_id, ctx.kind, time.monotonic() - t0)
            metrics.operation_ended(ctx.kind, "complete", (utcnow() - requested_at).total_seconds())
        except LeaseLost:
            self.runner.release(self, op_id, lease.owner)
        except DeadlineExceeded as exc:
            what = f"{ctx.kind} timed out" if ctx else "timed out"
            if ctx and ctx.kind == "create":
                what = f"create timed out after {timeout_minutes} minute(s)"
            self.fail(op_id, f"{what} in step {ctx.step if ctx else '?'}: {exc}")
        except Exception as exc:  # noqa: BLE001 - every failure must reach the user as a reason
            log.exception("operation %s failed", op_id)
            step_name = ctx.step if ctx else "?"
            self.fail(op_id, f"step {step_name} failed: {describe(exc)}")
        finally:
            if ctx is not None:
                ctx.close()

    def fail(self, op_id: int, reason: str, owner: str | None = None) -> None:
        with self.runtime.db.session() as s:
            op = s.get(Operation, op_id)
            if op is None or op.state not in ACTIVE:
                return
            if owner is not None and op.lease_owner != owner:
                return
            op.state = "failed"
            op.error = reason
            op.finished_at = utcnow()
            op.lease_owner = None
            ended = (op.kind, op.created_at)
            cluster = s.get(Cluster, op.cluster_id)
            if cluster is not None:
                events.record(
                    s, project_id=cluster.project_id, kind="operation.failed", level="error",
                    message=f"{op.kind} failed: {reason}", cluster_id=cluster.uuid, cluster_name=cluster.name,
                    operation_id=op.id, step=op.step or "", data={"kind": op.kind, "status": FAILED[op.kind]},
                )
                cluster.status = FAILED[op.kind]
                cluster.status_reason = reason
                # The nodegroups the operation was changing fail with it (Magnum's statuses).
                for group in s.scalars(select(NodeGroup).where(NodeGroup.cluster_id == cluster.id)):
                    if group.status.endswith("_IN_PROGRESS"):
                        group.status = group.status.replace("_IN_PROGRESS", "_FAILED")
                        group.status_reason = reason
        log.warning("operation %s failed: %s", op_id, reason)
        metrics.operation_ended(ended[0], "failed", (utcnow() - ended[1]).total_seconds())


class _Subject:
    """The cluster and operation an operation's events are about (kept: the cluster may go)."""

    def __init__(self, project_id: str, cluster_id: str, cluster_name: str, operation_id: int):
        self.project_id = project_id
        self.cluster_id = cluster_id
        self.cluster_name = cluster_name
        self.operation_id = operation_id

    def record(self, s, kind: str, message: str, *, step: str = "", data: dict | None = None) -> None:
        events.record(
            s, project_id=self.project_id, kind=kind, message=message, cluster_id=self.cluster_id,
            cluster_name=self.cluster_name, operation_id=self.operation_id, step=step, data=data,
        )



def _previous(finished: tuple[Step, float] | None) -> dict:
    """The step that just ended and its time, for the next event's data."""
    return {} if finished is None else {"previous": finished[0].name, "previous_seconds": round(finished[1], 3)}


def _after(finished: tuple[Step, float] | None) -> str:
    return "" if finished is None else f" ({finished[0].name} took {finished[1]:.2f}s)"


def run_step(ctx: StepContext, step: Step) -> None:
    """Run a cluster step under the runner's retry policy, in this worker (the cluster waits)."""
    attempt = 0
    while True:
        try:
            step.run(ctx)
            return
        except Exception as raw:  # noqa: BLE001 - translated at the plug-in boundary, then judged
            exc = translate(raw)
            if not isinstance(exc, TemporaryError):
                if exc is raw:
                    raise
                raise exc from raw
            attempt += 1
            delay = backoff(attempt, exc.delay)
            if delay is None or ctx.remaining() < delay:
                raise PermanentError(f"{describe(exc)} (after {attempt} attempts)") from raw
            log.info("step %s: temporary failure (%s), retry in %.1fs", step.name, exc, delay)
            time.sleep(delay)
            ctx.check()


class Engine:
    """The background engine of one floe process: a lease runner with cluster operations on it."""

    def __init__(self, runtime: Runtime, drivers: dict[str, COEDriver], poll: float = 1.0):
        """`drivers` maps each COE name to its driver; the composition root (floe.server) wires them."""
        self.runtime = runtime
        self.settings = runtime.settings
        self.drivers = drivers
        self.runner = Runner(runtime.db, poll=poll)
        self.holder = self.runner.holder
        self.host, self.owner = self.holder.host, self.holder.owner
        self.lease_seconds = self.settings.lease_seconds
        self.operations = Operations(runtime, drivers, self.runner)
        self.runner.add(self.operations)

    # --- registration (the composition root) -----------------------------------------------
    def add(self, kind: LeaseKind) -> None:
        """Lease and run another kind of work on this engine (before it starts)."""
        self.runner.add(kind)

    def every(self, seconds: float, name: str, fn) -> None:
        self.runner.every(seconds, name, fn)

    def at_start(self, name: str, fn) -> None:
        self.runner.at_start(name, fn)

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self.runner.start()

    def stop(self, wait: bool = True) -> None:
        self.runner.stop(wait=wait)

    def wake(self, kind: str | None = None) -> None:
        self.runner.wake(kind)

    def busy(self) -> bool:
        return self.runner.busy()

    @property
    def poll(self) -> float:
        return self.runner.poll

    @poll.setter
    def poll(self, seconds: float) -> None:
        self.runner.poll = seconds

    def dispatch_once(self) -> int:
        """Lease and start runnable work, as many as there are free workers; returns how many."""
        return self.runner.dispatch_once()

    def run_until_idle(self, timeout: float = 600.0) -> None:
        """Dispatch and wait until no work is runnable (used by tests and the bench)."""
        self.runner.run_until_idle(timeout)
