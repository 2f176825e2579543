"""A cluster's node logs (dockerd, the node's journal, a COE's daemons): the last lines, or followed.

`select_logs` checks the request against the caller's project and the cluster (no session is
held afterwards); `read_logs` returns the last lines, `follow_logs` is an async generator for a
streaming answer that ends when its consumer goes. Without a node, every node's log of the
daemon is read, each line prefixed with the node's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import select

from floe.db.models import Node
from floe.errors import Conflict, InvalidInput
from floe.host.errors import HostError
from floe.providers.base import NodeLog, ProviderWithNodeLogs
from floe.runtime import Runtime
from floe.services import log_tail
from floe.services.clusters import find_cluster
from floe.services.identity import Caller

DEFAULT_DAEMON = "dockerd"
DEFAULT_TAIL = 100
MAX_TAIL = 10_000
DAEMON_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
# Lines a follower may have waiting for a slow client before the readers pause.
FOLLOW_BUFFER = 1000


@dataclass(frozen=True)
class LogSelection:
    """The logs one request reads: (node, log) pairs, and whether lines carry their node's name."""

    sources: tuple[tuple[str, NodeLog], ...]
    tail: int
    prefixed: bool


def select_logs(runtime: Runtime, caller: Caller, ident: str, node: str | None = None,
                daemon: str | None = None, tail: int | None = None) -> LogSelection:
    """What a request for the cluster's logs reads; 404 for another project's cluster, 400 for bad input."""
    daemon = DEFAULT_DAEMON if daemon is None else daemon
    tail = DEFAULT_TAIL if tail is None else tail
    if not DAEMON_NAME.match(daemon):
        raise InvalidInput(f"invalid daemon name {daemon!r}: lowercase letters, digits and '-', like dockerd")
    if not 0 <= tail <= MAX_TAIL:
        raise InvalidInput(f"tail must be between 0 and {MAX_TAIL} lines, not {tail}")
    with runtime.db.session() as s:
        cluster = find_cluster(s, caller, ident)
        name, tag = cluster.name, cluster.host_tag
        names = list(s.scalars(select(Node.name).where(Node.cluster_id == cluster.id)
                               .order_by(Node.role, Node.nodegroup_id, Node.index)))
    if node is not None and node not in names:
        known = ", ".join(names) or "none yet"
        raise InvalidInput(f"cluster {name} has no node {node!r} (its nodes: {known})")
    provider = runtime.provider
    if not isinstance(provider, ProviderWithNodeLogs):
        kind = getattr(provider, "name", "none")  # the simulated provider's nodes are rows: no daemon logs
        raise Conflict(f"this floe server's infra provider ({kind}) keeps no node logs")
    sources: list[tuple[str, NodeLog]] = []
    seen = set()
    offered: set[str] = set()
    for n in [node] if node is not None else names:
        try:
            logs = provider.node_logs(tag, n)
        except HostError as exc:
            raise Conflict(f"the logs of node {n} cannot be read: {exc}") from None
        offered.update(log.daemon for log in logs)
        for log in logs:
            if log.daemon == daemon and log.path not in seen:  # a cluster daemon's log is every node's
                seen.add(log.path)
                sources.append((n, log))
    if not sources:
        where = f"node {node}" if node is not None else f"cluster {name}"
        has = ", ".join(sorted(offered)) or "none: its nodes have not started"
        raise InvalidInput(f"{where} has no {daemon} log (logs it has: {has})")
    return LogSelection(tuple(sources), tail, prefixed=node is None)


def _prefix(selection: LogSelection, node: str, line: str) -> str:
    return f"{node} | {line}" if selection.prefixed else line


def read_logs(selection: LogSelection) -> str:
    """The last `tail` lines of each selected log, node after node (blocking: call it off the event loop)."""
    out: list[str] = []
    for node, log in selection.sources:
        if log.journal:
            try:
                lines = log_tail.tail_journal(log.path, selection.tail)
            except HostError as exc:
                raise Conflict(f"the journal of node {node} cannot be read: {exc}") from None
        else:
            lines = log_tail.tail_file(log.path, selection.tail)
        out.extend(_prefix(selection, node, line) for line in lines)
    return "".join(f"{line}\n" for line in out)


async def follow_logs(selection: LogSelection) -> AsyncIterator[str]:
    """The last `tail` lines of each log, then new lines as they come, until every log is gone or
    the consumer stops (closing the generator stops every reader)."""
    queue: asyncio.Queue[str | None] = asyncio.Queue(FOLLOW_BUFFER)

    async def pump(node: str, log: NodeLog) -> None:
        lines = (log_tail.follow_journal if log.journal else log_tail.follow_file)(log.path, selection.tail)
        try:
            async for line in lines:
                await queue.put(f"{_prefix(selection, node, line)}\n")
        except OSError:
            pass  # the log went (its node was deleted): this source is done
        finally:
            await lines.aclose()
        await queue.put(None)  # not when cancelled: nobody reads the queue any more

    readers = [asyncio.create_task(pump(node, log)) for node, log in selection.sources]
    running = len(readers)
    try:
        while running:
            item = await queue.get()
            if item is None:
                running -= 1
            else:
                yield item
    finally:
        for reader in readers:
            reader.cancel()
        for reader in readers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
