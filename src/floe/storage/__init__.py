"""Share backends (where shares come from) and the worker that drives them.

Backends are imported lazily, so a host lacking one backend's programs breaks nothing else.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from floe.host import mounts
from floe.storage.base import ShareBackend, ShareTypeInfo, StorageError

DEFAULT_TYPE = "local"
# Share types in the order the API lists them.
BACKEND_NAMES = ("local", "glusterfs")
_TYPE_NAMESPACE = uuid.UUID("6f1d0a3e-8d5c-4f0e-9a49-9b1f4f3c7e21")


def _backend_class(name: str) -> type[ShareBackend]:
    if name == "local":
        from floe.storage.local import LocalBackend

        return LocalBackend
    if name == "glusterfs":
        from floe.storage.glusterfs import GlusterBackend

        return GlusterBackend
    if name == "simulated":
        from floe.storage.simulated import SimulatedBackend

        return SimulatedBackend
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
    """The backends of one floe home, made on first use, each with the result of its host check.

    `storage_subnet` gives the network (a CIDR) where backends that run storage nodes put
    them; the composition root reserves it in floe's address table.
    """

    def __init__(self, home: Path, storage_subnet: Callable[[], str | None] | None = None):
        self.home = Path(home)
        self.storage_subnet = storage_subnet
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
            return cls(storage_root(self.home), subnet=self.storage_subnet() if self.storage_subnet else None)
        return cls(storage_root(self.home))

    def all(self) -> dict[str, ShareBackend]:
        """Every backend that can run here."""
        out = {}
        for name in BACKEND_NAMES:
            try:
                out[name] = self.get(name)
            except StorageError:
                continue
        return out


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
    removed += [f"mount {m}" for m in mounts.unmount_tree(root)]
    return removed
