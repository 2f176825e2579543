"""`--wait`: one loop for clusters and shares; clusters also get live progress on stderr.

A cluster's wait listens to the server's event stream (`GET /v1/floe/events?cluster=`) and reads
the cluster again at each of its events, so it sees a completion as soon as the server commits
it; it still reads every few seconds, and every 0.5 s where the stream cannot be had.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.text import Text

from floe.cli.errors import CLIError
from floe.cli.output import health_style, status_style
from floe.client import FloeAPIError, FloeClient

POLL_INTERVAL = 0.5
# With the event stream open, a read at least this often anyway (a missed event costs no more).
STREAM_POLL_INTERVAL = 5.0
# How long a wait gives the stream to open before its first read.
STREAM_READY_TIMEOUT = 2.0
# Reads at most this often for progress events (a create has dozens in a second); the events
# that end an operation wake the wait at once.
STREAM_MIN_GAP = 0.25
FINAL_EVENTS = frozenset({"operation.complete", "operation.failed", "cluster.deleted"})
# After a resize or node-count update the server may still report the previous
# operation's terminal status for a moment; a status of another operation only
# counts as the end once this much time has passed.
FOREIGN_STATUS_GRACE = 5.0
# Share changes are short (a file system, a mount); polled faster, given up on after this.
SHARE_POLL_INTERVAL = 0.3
SHARE_WAIT_TIMEOUT = 300.0


def poll(
    what: str,
    get: Callable[[], Any],
    done: Callable[[Any], bool | str],
    *,
    interval: float,
    timeout: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Any] = time.sleep,
) -> Any:
    """Call `get` until `done(value)` is True (or a string: the failure); CLIError on failure or timeout.
    Between calls, `sleep(interval)` (which may return early: an event woke it)."""
    deadline = None if timeout is None else clock() + timeout
    while True:
        value = get()
        verdict = done(value)
        if isinstance(verdict, str):
            raise CLIError(verdict)
        if verdict:
            return value
        if deadline is not None and clock() > deadline:
            raise CLIError(f"timed out waiting for {what}")
        sleep(interval)


class EventWakeups:
    """The server's events of one cluster, read in a thread; `sleep` returns at the next one.

    If the stream cannot be opened (an older server, a proxy that buffers) or breaks, `interval`
    falls back to fast polling; the wait is right either way, only its latency differs.
    """

    def __init__(self, client: FloeClient, cluster: str):
        self.client = client
        self.cluster = cluster
        self.ready = threading.Event()
        self.failed = False
        self.events = 0
        self._wake = threading.Event()
        self._final = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="floe-events", daemon=True)

    def start(self, ready_timeout: float = STREAM_READY_TIMEOUT) -> EventWakeups:
        self._thread.start()
        self.ready.wait(ready_timeout)
        return self

    def _listen(self) -> None:
        try:
            for event in self.client.events_stream(cluster=self.cluster):
                if event.get("kind") == "stream.ready":
                    self.ready.set()
                    continue
                self.events += 1
                if event.get("kind") in FINAL_EVENTS:
                    self._final.set()
                self._wake.set()
        except Exception:  # noqa: BLE001 - any failure of the stream means: poll instead
            pass
        self.failed = True
        self.ready.set()
        self._final.set()
        self._wake.set()

    @property
    def interval(self) -> float:
        return STREAM_POLL_INTERVAL if self.ready.is_set() and not self.failed else POLL_INTERVAL

    def sleep(self, seconds: float) -> None:
        """Until an event (or `seconds`, at most `interval`); after a progress event, a little
        longer unless an operation's end comes (one read for a burst of steps)."""
        if self._wake.wait(min(seconds, self.interval)) and not self._final.is_set():
            self._final.wait(STREAM_MIN_GAP)
        self._wake.clear()
        self._final.clear()


# -- clusters ---------------------------------------------------------------------------


def _nodes_ready(client: FloeClient, ident: str, cluster: dict[str, Any]) -> tuple[int, int] | None:
    """(ready, wanted) from the nodes endpoint, or None when it has nothing to say yet."""
    try:
        nodes = client.cluster_nodes(ident)
    except FloeAPIError:
        return None  # e.g. the cluster is going away, or no nodes are planned yet
    wanted = int(cluster.get("node_count") or 0) + int(cluster.get("master_count") or 0)
    ready = sum(1 for n in nodes if str(n.get("state", "")).lower() == "ready")
    return ready, wanted or len(nodes)


def _line(name: str, cluster: dict[str, Any], ready: tuple[int, int] | None, elapsed: float) -> Text:
    status = str(cluster.get("status") or "?")
    text = Text(f"{name}  ")
    text.append(status, style=status_style(status))
    reason = cluster.get("status_reason")
    if reason:
        text.append(f"  {' '.join(str(reason).split())}")
    if ready is not None:
        text.append(f"  nodes ready {ready[0]}/{ready[1]}")
    health = cluster.get("health_status")
    if health and health != "UNKNOWN":
        text.append("  ")
        text.append(str(health), style=health_style(health))
    text.append(f"  {int(elapsed)}s", style="dim")
    return text


class _Progress:
    """A spinner line on a terminal; elsewhere (CI logs, pipes) one printed line per change."""

    def __init__(self, console: Console):
        self.console = console
        self.spinner: Any = console.status("", spinner="dots") if console.is_terminal else None
        self.last_key: tuple[Any, ...] | None = None
        if self.spinner is not None:
            self.spinner.start()

    def update(self, line: Text, key: tuple[Any, ...]) -> None:
        if self.spinner is not None:
            self.spinner.update(line)
        elif key != self.last_key:
            self.console.print(line, soft_wrap=True)
        self.last_key = key

    def finish(self, line: Text) -> None:
        """Leave the last line on screen (it is already there without a spinner)."""
        if self.spinner is not None:
            self.stop()
            self.console.print(line, soft_wrap=True)

    def stop(self) -> None:
        if self.spinner is not None:
            self.spinner.stop()
            self.spinner = None


def wait_for_cluster(
    client: FloeClient,
    ident: str,
    action: str,
    console: Console,
    *,
    interval: float = POLL_INTERVAL,
    clock: Callable[[], float] = time.monotonic,
    events: bool = True,
) -> dict[str, Any] | None:
    """Wait until the cluster reaches `<action>_COMPLETE` (or is gone, for DELETE), reading it at
    each of its events (`events`) or every `interval` seconds.

    Returns the final cluster (None after a delete); raises CLIError with
    `<status>: <status_reason>` when it ends in a *_FAILED status.
    """
    action = action.upper()
    start = clock()
    elapsed = 0.0
    progress = _Progress(console)

    def get() -> dict[str, Any] | None:
        nonlocal elapsed
        elapsed = clock() - start
        try:
            return client.get_cluster(ident)
        except FloeAPIError as exc:
            if exc.status == 404 and action == "DELETE":
                return None
            raise

    def done(cluster: dict[str, Any] | None) -> bool | str:
        if cluster is None:
            progress.finish(Text(f"{ident}  deleted  {int(elapsed)}s"))
            return True
        status = str(cluster.get("status") or "")
        ready = _nodes_ready(client, ident, cluster) if action != "DELETE" else None
        line = _line(str(cluster.get("name") or ident), cluster, ready, elapsed)
        progress.update(line, (status, cluster.get("status_reason"), ready, cluster.get("health_status")))

        own = status.startswith(action + "_")
        settled_foreign = not own and elapsed >= FOREIGN_STATUS_GRACE and action != "DELETE"
        if status.endswith("_FAILED") and (own or settled_foreign):
            progress.finish(line)
            return f"{status}: {' '.join(str(cluster.get('status_reason') or 'no reason given').split())}"
        if status.endswith("_COMPLETE") and (own or settled_foreign):
            progress.finish(line)
            return True
        return False

    try:
        if events:
            wakeups = EventWakeups(client, ident).start()
            return poll(f"cluster {ident}", get, done, interval=STREAM_POLL_INTERVAL, clock=clock,
                        sleep=wakeups.sleep)
        return poll(f"cluster {ident}", get, done, interval=interval, clock=clock)
    except KeyboardInterrupt:
        raise CLIError(
            f"interrupted: the operation on cluster {ident} goes on in the server "
            f"(`floe cluster show {ident}` to follow it)",
            exit_code=130,
        ) from None
    finally:
        progress.stop()


# -- shares -----------------------------------------------------------------------------


def wait_share(client: FloeClient, ident: str, gone_ok: bool = False) -> dict[str, Any] | None:
    """Until the share is available (or gone, with `gone_ok`); CLIError when it ends in an error."""

    def get() -> dict[str, Any] | None:
        try:
            return client.get_share(ident)
        except FloeAPIError as exc:
            if exc.status == 404 and gone_ok:
                return None
            raise

    def done(share: dict[str, Any] | None) -> bool | str:
        if share is None:
            return True
        status = str(share.get("status"))
        if "error" in status:
            return f"share {share.get('name') or share.get('id')} is {status}: {share.get('status_reason') or '-'}"
        return status == "available" and not gone_ok

    return poll(f"share {ident}", get, done, interval=SHARE_POLL_INTERVAL, timeout=SHARE_WAIT_TIMEOUT)


def wait_attachment(client: FloeClient, cluster: str, share_id: str, gone: bool = False) -> dict[str, Any] | None:
    """Until the share is attached to the cluster (or detached, with `gone`)."""

    def get() -> dict[str, Any] | None:
        return next((m for m in client.cluster_shares(cluster) if m["share_id"] == share_id), None)

    def done(m: dict[str, Any] | None) -> bool | str:
        if m is None:
            return True if gone else f"share {share_id} is no longer attached to {cluster}"
        if m["state"] == "error":
            return f"attaching to {cluster} failed: {m.get('state_reason') or '-'}"
        return m["state"] == "attached" and not gone

    return poll(
        f"share {share_id} on cluster {cluster}", get, done,
        interval=SHARE_POLL_INTERVAL, timeout=SHARE_WAIT_TIMEOUT,
    )
