"""The lease runner: one dispatcher, one heartbeat and one thread pool for all background work.

What it leases is described by a `LeaseKind` per table (cluster operations, share work):
the rows due, a group key (one row per group runs at a time), a cap on workers and `run`.
The runner owns what every kind shares:

- the compare-and-swap lease on `lease_owner` (a holder that was a dead process on this
  host is taken over at once), extended by one heartbeat per table;
- the poison guard: taking a row over from a holder that died inside a step counts an
  interruption in the lease's own UPDATE; MAX_INTERRUPTIONS in a row fail the work;
- the one retry policy (`backoff`): TemporaryError waits delay * 1.5^n, at most 5 s,
  MAX_TEMPORARY_RETRIES times; PermanentError stops with its reason;
- periodic tasks (`every`) and start-up tasks (`at_start`), run in the same pool.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, case, select, update

from floe import metrics
from floe.db.base import utcnow
from floe.db.session import Database
from floe.leases import LeaseHolder

log = logging.getLogger("floe.engine")

MAX_TEMPORARY_RETRIES = 30
MAX_RETRY_DELAY = 5.0
# A step whose holder died (or stopped answering) this many times in a row while running it
# fails the work: it is what kills or wedges the server, and resuming it again would too.
MAX_INTERRUPTIONS = 3


def backoff(attempt: int, delay: float) -> float | None:
    """Seconds before retry `attempt` (1, 2, …) of a temporary failure; None: give up."""
    if attempt > MAX_TEMPORARY_RETRIES:
        return None
    return min(delay * (1.5 ** (attempt - 1)), MAX_RETRY_DELAY)


@dataclass(frozen=True)
class Due:
    """A row a kind found runnable: its id, its group and who holds it now (None: nobody)."""

    id: int
    group: Any
    owner: str | None


@dataclass(frozen=True)
class Lease:
    """What a worker holds while it runs an item: the owner name written in the row."""

    owner: str
    seconds: float

    def expires(self):
        return utcnow() + timedelta(seconds=self.seconds)


class LeaseKind(abc.ABC):
    """One leased table: which rows are due and how one is run.

    `model` is an ORM class with the lease columns (floe.db.base.LeaseColumns).
    """

    name: str
    model: Any
    workers: int
    lease_seconds: float

    @abc.abstractmethod
    def due(self, runner: Runner, free: int) -> list[Due]:
        """At most `free` rows (maybe 0) to lease now, oldest first, in bounded reads; none of a held group."""

    @abc.abstractmethod
    def run(self, item_id: int, lease: Lease) -> None:
        """Work the leased row; release (or finish) it before returning. Runs in a pool thread."""

    @abc.abstractmethod
    def poisoned(self, item_id: int, step: str, count: int, lease: Lease) -> None:
        """Fail the work whose step `step` took its holders down `count` times in a row."""

    @abc.abstractmethod
    def idle(self) -> bool:
        """True when no row of this kind waits for work (run_until_idle)."""

    def hint(self) -> None:
        """Work of this kind was just queued (`Runner.wake(kind)`): look for it at the next dispatch."""
        return None

    def ended(self, item_id: int) -> None:
        """Called once a worker let go of `item_id` (the row may be due again)."""
        return None

    def lease_values(self) -> dict:
        """Columns the lease UPDATE sets besides the owner and expiry."""
        return {}

    def lease_condition(self) -> Any:
        """An extra WHERE for the lease UPDATE (None: only the owner compare-and-swap)."""
        return None


@dataclass
class _Periodic:
    name: str
    seconds: float | None  # None: once, at start
    fn: Callable[[], object]
    next_at: float = 0.0
    running: bool = False


@dataclass
class _KindState:
    kind: LeaseKind
    running: dict[int, Any] = field(default_factory=dict)  # item id -> group


class Runner:
    """Leases due rows of every kind and runs them in one pool; `start()` runs it in the background."""

    def __init__(self, db: Database, poll: float = 1.0):
        self.db = db
        self.holder = LeaseHolder()
        self.owner = self.holder.owner
        self.poll = poll
        self._kinds: dict[str, _KindState] = {}
        self._periodic: list[_Periodic] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pool: ThreadPoolExecutor | None = None

    # --- registration ----------------------------------------------------------------------
    def add(self, kind: LeaseKind) -> None:
        with self._lock:
            if self._pool is not None:
                raise RuntimeError("add lease kinds before the runner starts working")
            self._kinds[kind.name] = _KindState(kind)

    def kinds(self) -> list[str]:
        """The names of the lease kinds registered on this runner."""
        return list(self._kinds)

    def kind(self, name: str) -> LeaseKind | None:
        st = self._kinds.get(name)
        return st.kind if st else None

    def every(self, seconds: float, name: str, fn: Callable[[], object]) -> None:
        """Run `fn` every `seconds` (first after `seconds`), never two rounds at once."""
        with self._lock:
            self._periodic.append(_Periodic(name, seconds, fn, next_at=time.monotonic() + seconds))

    def at_start(self, name: str, fn: Callable[[], object]) -> None:
        """Run `fn` once, in the dispatcher, before its first dispatch."""
        with self._lock:
            self._periodic.append(_Periodic(name, None, fn))

    # --- lifecycle -------------------------------------------------------------------------
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
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)

    def wake(self, kind: str | None = None) -> None:
        """Dispatch now rather than at the next poll; `kind` names what was queued."""
        st = self._kinds.get(kind) if kind else None
        if st is not None:
            st.kind.hint()
        self._wake.set()

    def busy(self, kind: str | None = None) -> bool:
        with self._lock:
            return any(st.running for name, st in self._kinds.items() if kind in (None, name))

    def running(self, kind: str) -> set[int]:
        with self._lock:
            return set(self._kinds[kind].running)

    def running_groups(self, kind: str) -> set:
        with self._lock:
            return set(self._kinds[kind].running.values())

    def free(self, kind: str) -> int:
        with self._lock:
            st = self._kinds[kind]
            return st.kind.workers - len(st.running)

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                size = sum(st.kind.workers for st in self._kinds.values()) + len(self._periodic) + 1
                self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="floe-work")
            return self._pool

    # --- dispatch --------------------------------------------------------------------------
    def dispatch_once(self, kind: str | None = None) -> int:
        """Lease and start due rows of every kind (or one), as many as there are free workers."""
        started = 0
        for name, st in list(self._kinds.items()):
            if kind in (None, name):
                started += self._dispatch_kind(st)
        return started

    def _dispatch_kind(self, st: _KindState) -> int:
        kind = st.kind
        free = self.free(kind.name)  # asked even when 0: a kind may keep house (deadlines) in `due`
        started = 0
        groups = self.running_groups(kind.name)
        for due in kind.due(self, free):
            if due.group in groups:
                continue
            with self._lock:
                if due.id in st.running or len(st.running) >= kind.workers:
                    continue
            if not self.lease(kind, due.id, due.owner):
                continue
            groups.add(due.group)
            if self._poisoned(kind, due.id):
                continue
            with self._lock:
                st.running[due.id] = due.group
            self._executor().submit(self._run, st, due.id)
            started += 1
        return started

    def lease(self, kind: LeaseKind, item_id: int, old_owner: str | None) -> bool:
        """Take the row's lease by compare-and-swap on its owner; True if this runner holds it now."""
        m = kind.model
        values: dict = {"lease_owner": self.owner, "lease_expires_at": utcnow() + timedelta(seconds=kind.lease_seconds)}
        values.update(kind.lease_values())
        if old_owner is not None and old_owner != self.owner:
            # Taken from a holder that died or stopped renewing: if it was inside a step (a
            # step is named before it runs), that step was interrupted once more. In the same
            # UPDATE as the lease, so a crash cannot lose the count.
            same = and_(m.step != "", m.step == m.interrupted_step)
            values["interruptions"] = case((same, m.interruptions + 1), (m.step != "", 1), else_=m.interruptions)
            values["interrupted_step"] = case((m.step != "", m.step), else_=m.interrupted_step)
        cond = m.lease_owner.is_(None) if old_owner is None else m.lease_owner == old_owner
        q = update(m).where(m.id == item_id, cond)
        extra = kind.lease_condition()
        if extra is not None:
            q = q.where(extra)
        with self.db.session() as s:
            taken = s.execute(q.values(**values)).rowcount == 1
        if taken and old_owner is not None and old_owner != self.owner:
            metrics.lease_taken_over(kind.name)
        return taken

    def _poisoned(self, kind: LeaseKind, item_id: int) -> bool:
        m = kind.model
        with self.db.session() as s:
            row = s.execute(select(m.interrupted_step, m.interruptions).where(m.id == item_id)).one()
        if row.interruptions < MAX_INTERRUPTIONS:
            return False
        kind.poisoned(item_id, row.interrupted_step, row.interruptions, Lease(self.owner, kind.lease_seconds))
        return True

    def release(self, kind: LeaseKind, item_id: int, owner: str | None = None) -> None:
        m = kind.model
        with self.db.session() as s:
            s.execute(update(m).where(m.id == item_id, m.lease_owner == (owner or self.owner)).values(lease_owner=None))

    def _run(self, st: _KindState, item_id: int) -> None:
        try:
            st.kind.run(item_id, Lease(self.owner, st.kind.lease_seconds))
        except Exception:  # noqa: BLE001 - a kind reports its own failures; this one escaped it
            log.exception("%s %s failed", st.kind.name, item_id)
        finally:
            with self._lock:
                st.running.pop(item_id, None)
            st.kind.ended(item_id)
            self._wake.set()

    # --- loops -----------------------------------------------------------------------------
    def _periodic_due(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = [p for p in self._periodic if p.seconds is not None and not p.running and p.next_at <= now]
            for p in due:
                p.running = True
        for p in due:
            self._executor().submit(self._run_periodic, p)

    def _run_periodic(self, p: _Periodic) -> None:
        try:
            p.fn()
        except Exception:  # noqa: BLE001 - keep going on the next round
            log.exception("%s failed", p.name)
        finally:
            with self._lock:
                p.running = False
                p.next_at = time.monotonic() + (p.seconds or 0.0)

    def _dispatch_loop(self) -> None:
        for p in [p for p in self._periodic if p.seconds is None]:
            try:
                p.fn()
            except Exception:  # noqa: BLE001 - a bad moment at start must not stop the engine
                log.exception("%s failed", p.name)
        while not self._stop.is_set():
            try:
                self._periodic_due()
                self.dispatch_once()
            except Exception:  # noqa: BLE001 - the loop must survive a bad moment (e.g. DB locked)
                log.exception("dispatch failed")
            self._wake.wait(timeout=self.poll)
            self._wake.clear()

    def _heartbeat_loop(self) -> None:
        beat = min((st.kind.lease_seconds for st in self._kinds.values()), default=15.0) / 3
        while not self._stop.wait(beat):
            for st in list(self._kinds.values()):
                with self._lock:
                    ids = list(st.running)
                if not ids:
                    continue
                m = st.kind.model
                try:
                    with self.db.session() as s:
                        s.execute(
                            update(m).where(m.id.in_(ids), m.lease_owner == self.owner)
                            .values(lease_expires_at=utcnow() + timedelta(seconds=st.kind.lease_seconds))
                        )
                except Exception:  # noqa: BLE001
                    log.exception("%s lease heartbeat failed", st.kind.name)

    # --- for tests and tools ---------------------------------------------------------------
    def run_until_idle(self, timeout: float = 600.0, kind: str | None = None) -> None:
        """Dispatch and wait until no row of any kind (or of `kind`) waits for work."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.dispatch_once(kind)
            if not self.busy(kind) and all(
                st.kind.idle() for name, st in self._kinds.items() if kind in (None, name)
            ):
                return
            time.sleep(0.05)
        raise TimeoutError("engine did not become idle")
