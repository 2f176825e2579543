"""Share work on the engine's runner: what the shares API queued, applied one share at a time.

The API marks a share `needs_work` (bumping `work_seq`) in the transaction that records the
request; the runner leases such shares (compare-and-swap on `lease_owner`, a dead local
holder's lease taken over at once) and a pass runs the steps the share's state asks for.
Every step is idempotent (a pass resumes by running again: the share's status says where
it is) and every write is committed only while the lease is ours, as a compare-and-swap on
the state it changes, so work queued meanwhile (a delete during a create) is never lost:
`needs_work` is cleared only if `work_seq` did not move. Waiting (for a cluster's first
node, for a rule) retries a second later through `retry_at`; a temporary failure retries
with the runner's backoff; a permanent one sets the error status with its reason.

Steps, by failpoint kind (FLOE_FAILPOINTS=`KIND:STEP:before|after`, as for clusters):

- `share_create`: `create` (the backend makes the storage), `record` (status available)
- `share_extend`: `extend`, `record`;   `share_shrink`: `shrink`, `record`
- `share_delete`: `unmount` (from every cluster), `deny`, `destroy` (the backend), `forget`
- `share_online`: `ensure` (bring a usable share online again: after a reboot or a cleanup)
- `share_access`: `allow` (queued rules), `revoke` (rules queued to deny; detaches clusters
  that rule alone let in)
- `share_detach`: `detach` (attachments let go, or of clusters being deleted)
- `share_attach`: `attach` (mount on the host, verify in every node)

A step runs (and hits its failpoints) only when the share has something for it to do,
except `ensure`. The composition root registers `reconcile` (at start: every share is
queued, so images come online and attachments are mounted again) and `audit` (every
AUDIT_INTERVAL: shares of clusters whose running nodes changed are queued again).
"""

from __future__ import annotations

from floe.engine.runner import Runner
from floe.engine.share_work.kind import AUDIT_INTERVAL, ShareWork
from floe.engine.share_work.snapshot import Outcome

__all__ = ["AUDIT_INTERVAL", "Outcome", "ShareWork", "register", "standalone"]


def register(runner: Runner, runtime) -> ShareWork:
    """Put share work, its start-up reconcile and its audit on `runner` (before it starts)."""
    work = ShareWork(runtime, runner)
    runner.add(work)
    runner.at_start("share reconcile", work.reconcile)
    runner.every(AUDIT_INTERVAL, "share audit", work.audit)
    return work


def standalone(runtime, poll: float = 1.0) -> tuple[Runner, ShareWork]:
    """A runner with only share work on it, for tests and tools that run no cluster operations;
    it becomes the runtime's background work (what services wake)."""
    runner = Runner(runtime.db, poll=poll)
    work = register(runner, runtime)
    runtime.engine = runner
    return runner, work
