"""`--wait`: follow a cluster's status until it settles, with live progress on stderr."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.text import Text

from floe.cli.errors import CLIError
from floe.cli.output import health_style, status_style
from floe.client import FloeAPIError, FloeClient

POLL_INTERVAL = 0.5
# After a resize or node-count update the server may still report the previous
# operation's terminal status for a moment; a status of another operation only
# counts as the end once this much time has passed.
FOREIGN_STATUS_GRACE = 5.0


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


def wait_for_cluster(
    client: FloeClient,
    ident: str,
    action: str,
    console: Console,
    *,
    interval: float = POLL_INTERVAL,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any] | None:
    """Poll until the cluster reaches `<action>_COMPLETE` (or is gone, for DELETE).

    Returns the final cluster (None after a delete); raises CLIError with
    `<status>: <status_reason>` when it ends in a *_FAILED status.
    """
    action = action.upper()
    start = clock()
    last_key: tuple[Any, ...] | None = None
    live = console.is_terminal
    spinner = console.status("", spinner="dots") if live else None
    if spinner is not None:
        spinner.start()
    try:
        while True:
            elapsed = clock() - start
            try:
                cluster = client.get_cluster(ident)
            except FloeAPIError as exc:
                if exc.status == 404 and action == "DELETE":
                    _finish(console, Text(f"{ident}  deleted  {int(elapsed)}s"), spinner)
                    spinner = None
                    return None
                raise
            status = str(cluster.get("status") or "")
            ready = _nodes_ready(client, ident, cluster) if action != "DELETE" else None
            line = _line(str(cluster.get("name") or ident), cluster, ready, elapsed)
            key = (status, cluster.get("status_reason"), ready, cluster.get("health_status"))
            if spinner is not None:
                spinner.update(line)
            elif key != last_key:
                # Not a terminal (CI logs, pipes): one line per change instead of a spinner.
                console.print(line, soft_wrap=True)
            last_key = key

            own = status.startswith(action + "_")
            settled_foreign = not own and elapsed >= FOREIGN_STATUS_GRACE and action != "DELETE"
            if status.endswith("_FAILED") and (own or settled_foreign):
                _finish(console, line, spinner)
                spinner = None
                reason = " ".join(str(cluster.get("status_reason") or "no reason given").split())
                raise CLIError(f"{status}: {reason}")
            if status.endswith("_COMPLETE") and (own or settled_foreign):
                _finish(console, line, spinner)
                spinner = None
                return cluster
            time.sleep(interval)
    except KeyboardInterrupt:
        raise CLIError(
            f"interrupted: the operation on cluster {ident} goes on in the server "
            f"(`floe cluster show {ident}` to follow it)",
            exit_code=130,
        ) from None
    finally:
        if spinner is not None:
            spinner.stop()


def _finish(console: Console, line: Text, spinner: Any) -> None:
    if spinner is not None:
        spinner.stop()
        console.print(line, soft_wrap=True)
