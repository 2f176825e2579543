"""Share backends (where shares come from) and the worker that drives them.

Backends are imported lazily, so a host lacking one backend's programs breaks nothing else.
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from floe.storage.base import ShareBackend, ShareTypeInfo, StorageError

if TYPE_CHECKING:
    from floe.runtime import Runtime

DEFAULT_TYPE = "local"
# Share types in the order the API lists them.
BACKEND_NAMES = ("local", "glusterfs")
# Owner of the storage network's address allocation.
STORAGE_OWNER = "floe-storage"
_TYPE_NAMESPACE = uuid.UUID("6f1d0a3e-8d5c-4f0e-9a49-9b1f4f3c7e21")


def _backend_class(name: str) -> type[ShareBackend]:
    if name == "local":
        from floe.storage.local import LocalBackend

        return LocalBackend
    if name == "glusterfs":
        from floe.storage.glusterfs import GlusterBackend

        return GlusterBackend
    raise KeyError(name)


@dataclass(frozen=True)
class ShareType:
    """A share type: a backend's static description with a stable id."""

    id: str
    info: ShareTypeInfo

    @property
    def name(self) -> str:
        return self.info.name


def share_types() -> list[ShareType]:
    """Every share type floe knows (whether or not this host can serve it)."""
    out = []
    for name in BACKEND_NAMES:
        try:
            info = _backend_class(name).type_info()
        except (ImportError, KeyError):
            continue
        out.append(ShareType(str(uuid.uuid5(_TYPE_NAMESPACE, name)), info))
    return out


def storage_root(home: Path) -> Path:
    return Path(home) / "storage"


class Backends:
    """The backends of one floe home, made on first use, each with the result of its host check."""

    def __init__(self, home: Path, runtime: Runtime | None = None):
        self.home = Path(home)
        self.runtime = runtime
        self._made: dict[str, ShareBackend] = {}
        self._problems: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> ShareBackend:
        """The backend serving share type `name`; StorageError saying why if this host cannot run it."""
        with self._lock:
            if name not in self._made and name not in self._problems:
                try:
                    backend = self._make(name)
                    backend.check()
                    self._made[name] = backend
                except KeyError:
                    self._problems[name] = f"there is no share backend named {name}"
                except StorageError as exc:
                    self._problems[name] = str(exc)
            if name in self._problems:
                raise StorageError(f"the {name} share backend cannot run on this host: {self._problems[name]}")
            return self._made[name]

    def _make(self, name: str) -> ShareBackend:
        cls = _backend_class(name)
        if name == "glusterfs":
            from floe.storage.glusterfs import GlusterBackend

            assert issubclass(cls, GlusterBackend)
            return cls(storage_root(self.home), subnet=self._storage_subnet())
        return cls(storage_root(self.home))

    def _storage_subnet(self) -> str | None:
        """The /24 of floe's range where storage nodes live, reserved once in the address table."""
        if self.runtime is None:
            return None
        from sqlalchemy import select

        from floe.db.models import AddressAllocation
        from floe.services import ipam

        with self.runtime.db.session() as s:
            found = s.scalars(select(AddressAllocation.cidr).where(AddressAllocation.owner == STORAGE_OWNER)).first()
            if found is None:
                (net,) = ipam.allocate(s, self.runtime.settings.network, 24, "storage", STORAGE_OWNER)
                found = str(net)
            return found

    def all(self) -> dict[str, ShareBackend]:
        """Every backend that can run here."""
        out = {}
        for name in BACKEND_NAMES:
            try:
                out[name] = self.get(name)
            except StorageError:
                continue
        return out


def backends(runtime: Runtime) -> Backends:
    """The runtime's backends (made once per runtime)."""
    found = runtime.extras.get("share_backends")
    if found is None:
        found = runtime.extras.setdefault("share_backends", Backends(runtime.settings.home, runtime))
    return found


def purge_host(home: Path, delete_data: bool = False) -> list[str]:
    """Take every share of this home offline on the host (`floe cleanup --all`); data stays unless asked."""
    removed: list[str] = []
    root = storage_root(home)
    if not root.exists():
        return removed
    for name in reversed(BACKEND_NAMES):  # gluster first: its bricks may live under local storage
        try:
            backend = _backend_class(name)(root)
        except ImportError:
            continue
        if os.geteuid() == 0:
            removed += backend.purge(delete_data=delete_data)
    from floe.storage import mounts

    removed += [f"mount {m}" for m in mounts.unmount_tree(root)]
    return removed
