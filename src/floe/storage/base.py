"""The share-backend interface: where shares come from.

A backend turns a share record into storage on the host and mounts it where it is asked
to. Every call is idempotent (called again after a crash it finishes the work or finds
it done) and backends know nothing of the database: the engine's share work hands them a
`ShareRef` and records what they return. Features a backend lacks are declared in
`capabilities`, so a request for them is refused before anything is queued.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path

GIB = 1024**3


class StorageError(Exception):
    """A backend call failed; `temporary` says whether retrying may help."""

    def __init__(self, message: str, temporary: bool = False):
        super().__init__(message)
        self.temporary = temporary


class ShrinkRefused(StorageError):
    """The data on the share does not fit in the size asked for; nothing was changed."""


# Capabilities a backend may declare.
EXTEND = "extend"
ONLINE_EXTEND = "online_extend"  # grows while mounted (else every mount must be gone first)
SHRINK = "shrink"  # offline: every mount of the share must be gone first
READ_ONLY_MOUNTS = "read_only_mounts"
ACCESS_IP = "access_ip"  # access rules of type ip (clients outside floe's clusters)
HARD_SIZE_LIMIT = "hard_size_limit"  # writing past the size fails with ENOSPC at once
REPLICATION = "replication"


@dataclass(frozen=True)
class ShareRef:
    """What a backend knows of a share: its id, size and the state it recorded at create."""

    id: str  # the share's uuid
    size_bytes: int
    state: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ExportLocation:
    """Where a client finds the share (Manila's export location)."""

    path: str
    preferred: bool = True
    is_admin_only: bool = False


@dataclass(frozen=True)
class Created:
    """The result of `create`: state to keep for later calls and the export locations."""

    state: dict
    export_locations: list[ExportLocation]


@dataclass(frozen=True)
class Usage:
    total_bytes: int
    used_bytes: int


@dataclass(frozen=True)
class ShareTypeInfo:
    """A share type as the API shows it: a backend's name, protocol and extra specs."""

    name: str
    share_proto: str
    description: str
    extra_specs: dict[str, str]
    capabilities: frozenset[str]


class ShareBackend(abc.ABC):
    """Where shares come from. `local` (loop-mounted images) is the default."""

    name: str = "abstract"
    share_proto: str = ""
    capabilities: frozenset[str] = frozenset()

    @classmethod
    @abc.abstractmethod
    def type_info(cls) -> ShareTypeInfo:
        """The share type this backend serves (static: no host access)."""

    @abc.abstractmethod
    def check(self) -> None:
        """Raise StorageError with a clear reason if this host cannot run the backend."""

    @abc.abstractmethod
    def create(self, share: ShareRef) -> Created:
        """Make the share's storage and bring it online on the host."""

    @abc.abstractmethod
    def ensure(self, share: ShareRef) -> None:
        """Bring an existing share online again (after a reboot or a cleanup); no data is touched."""

    @abc.abstractmethod
    def delete(self, share: ShareRef) -> None:
        """Destroy the share and its data; missing is fine. Every mount of it must be gone."""

    @abc.abstractmethod
    def extend(self, share: ShareRef, new_size_bytes: int) -> dict:
        """Grow the share online; returns its new state."""

    @abc.abstractmethod
    def shrink(self, share: ShareRef, new_size_bytes: int) -> dict:
        """Shrink the share (ShrinkRefused if the data does not fit); returns its new state."""

    @abc.abstractmethod
    def mount(self, share: ShareRef, target: Path, read_only: bool) -> None:
        """Mount the share on `target` (an empty directory that exists)."""

    @abc.abstractmethod
    def is_mounted_at(self, share: ShareRef, target: Path) -> bool:
        """Whether the mount on `target` is this share (after a crash, a stale mount may be another)."""

    @abc.abstractmethod
    def usage(self, share: ShareRef) -> Usage:
        """Size and used space as the filesystem reports them."""

    def allow(self, share: ShareRef, access_type: str, access_to: str, access_level: str) -> dict:
        """Apply an access rule at the storage itself; returns what to record (e.g. an access key)."""
        return {}

    def deny(self, share: ShareRef, access_type: str, access_to: str) -> None:
        """Withdraw an access rule at the storage itself."""
        return None

    @abc.abstractmethod
    def host_objects(self) -> list[str]:
        """What the backend has on the host (files, loop devices, mounts, daemons), for cleanup."""

    @abc.abstractmethod
    def purge(self, delete_data: bool = False) -> list[str]:
        """Take every share offline on the host; delete their data only if `delete_data`."""
