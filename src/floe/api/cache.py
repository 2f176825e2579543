"""Answers to repeated reads, kept until the data under them changes.

Magnum's clients poll: `openstack coe cluster list` and `show` every few seconds, dashboards
page through `clusters/detail`. Between two changes every such answer is the same bytes, so
floe keeps them instead of reading, building and encoding them again on every request.

What makes an answer stale is a write to the tables it was built from. `DataVersions` watches
every INSERT, UPDATE and DELETE this process sends to the database (SQLAlchemy events) and
bumps a counter per group of tables twice: when the statement runs and again once its
connection is back in the pool (its transaction over), so an answer built while a write was
in flight is never kept past it. Writes by another process (a second server, `floe cleanup
--all`) are not seen: `ttl` bounds how long an answer may lag behind them.

Authentication gets the same treatment: a token's caller is kept for `ttl` seconds, or until a
token or project changes (keystonemiddleware caches Keystone's answers the same way).
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import event

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from floe.services.identity import Caller

# Which answers each table feeds (a cluster's answer shows its template's labels).
GROUPS = {
    "clusters": "clusters",
    "cluster_templates": "clusters",
    "tokens": "identity",
    "projects": "identity",
    "users": "identity",
    "role_assignments": "identity",
    "application_credentials": "identity",
}
_DML = re.compile(r'^\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)', re.IGNORECASE)
_WROTE = "floe_wrote_groups"


class DataVersions:
    """A counter per group of tables, bumped by every write this process makes to them."""

    def __init__(self, engine: Engine):
        self._lock = threading.Lock()
        self._versions = dict.fromkeys(set(GROUPS.values()), 0)
        event.listen(engine, "after_cursor_execute", self._after_execute)
        event.listen(engine, "checkin", self._checkin)  # a pool event, for this engine's pool whatever it becomes

    def get(self, group: str) -> int:
        return self._versions[group]

    def _bump(self, groups) -> None:
        with self._lock:
            for g in groups:
                self._versions[g] += 1

    def _after_execute(self, conn, cursor, statement, parameters, context, executemany) -> None:
        m = _DML.match(statement)
        group = GROUPS.get(m.group(1).lower()) if m else None
        if group is None:
            return
        self._bump((group,))
        conn.info.setdefault(_WROTE, set()).add(group)

    def _checkin(self, dbapi_connection, record) -> None:
        groups = record.info.pop(_WROTE, None)
        if groups:
            self._bump(groups)


@dataclass(frozen=True)
class _Entry:
    version: int
    stored_at: float
    value: object
    size: int


class VersionedCache:
    """Values keyed by request, valid while their group's version is the one they were built at."""

    def __init__(self, versions: DataVersions, group: str, ttl: float = 2.0, max_bytes: int = 64 << 20):
        self.versions, self.group, self.ttl, self.max_bytes = versions, group, ttl, max_bytes
        self._entries: OrderedDict[object, _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def version(self) -> int:
        """Take this before building a value, and pass it to put()."""
        return self.versions.get(self.group)

    def get(self, key: object):
        with self._lock:
            e = self._entries.get(key)
        if e is None or e.version != self.versions.get(self.group) or time.monotonic() - e.stored_at > self.ttl:
            return None
        return e.value

    def put(self, key: object, value: object, version: int, size: int = 1) -> None:
        """Keep `value` if nothing was written since `version` was taken."""
        if version != self.versions.get(self.group) or size > self.max_bytes // 4:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            self._entries[key] = _Entry(version, time.monotonic(), value, size)
            self._bytes += size
            while self._bytes > self.max_bytes or len(self._entries) > 4096:
                _, gone = self._entries.popitem(last=False)
                self._bytes -= gone.size


class ApiCaches:
    """The caches one app keeps: callers by token, and answers to cluster reads."""

    def __init__(self, engine: Engine, ttl: float = 2.0, token_ttl: float = 10.0):
        self.versions = DataVersions(engine)
        self.callers = VersionedCache(self.versions, "identity", ttl=token_ttl, max_bytes=1 << 20)
        self.answers = VersionedCache(self.versions, "clusters", ttl=ttl)

    def caller(self, secret: str) -> tuple[Caller, float | None] | None:
        """The caller a token stands for and when the token expires (epoch seconds; None: never)."""
        return self.callers.get(secret)  # type: ignore[return-value]


# GET paths whose answers are kept: the cluster list, its detail pages and one cluster.
_CLUSTER_READ = re.compile(r"^/v1/clusters(?:/detail|/[^/]+)?$")


def cacheable(scope) -> bool:
    return scope["method"] == "GET" and _CLUSTER_READ.match(scope["path"]) is not None
