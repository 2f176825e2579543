"""Share backends (where shares come from) and the registry of the ones a server offers.

Backends are imported lazily, so a host lacking one backend's programs breaks nothing else.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from floe.config import DEFAULT_SHARE_TYPES, SHARE_TYPES
from floe.host import mounts
from floe.storage.base import ShareBackend, ShareTypeInfo, StorageError

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


def share_types(names: tuple[str, ...]) -> list[ShareType]:
    """The share types of backends `names` (whether or not this host can serve them)."""
    out = []
    for name in names:
        try:
            info = _backend_class(name).type_info()
        except (ImportError, KeyError):
            continue
        out.append(ShareType(str(uuid.uuid5(_TYPE_NAMESPACE, name)), info))
    return out


def storage_root(home: Path) -> Path:
    return Path(home) / "storage"


class Backends:
    """The backends one floe home offers (`names`, the first is the default share type), made
    on first use, each with the result of its host check.

    `storage_subnet` gives the network (a CIDR) where backends that run storage nodes put
    them; the composition root reserves it in floe's address table.
    """

    def __init__(self, home: Path, storage_subnet: Callable[[], str | None] | None = None,
                 names: tuple[str, ...] = DEFAULT_SHARE_TYPES):
        unknown = [n for n in names if n not in SHARE_TYPES]
        if unknown or not names:
            raise ValueError(f"unknown share backends {unknown}: floe has {', '.join(SHARE_TYPES)}")
        self.home = Path(home)
        self.storage_subnet = storage_subnet
        self.names = tuple(names)
        self._types = share_types(self.names)
        self._made: dict[str, ShareBackend] = {}
        self._problems: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def default(self) -> str:
        """The share type of a share created without one (Manila's `default`)."""
        return self.names[0]

    def types(self) -> list[ShareType]:
        """The share types offered here, in the order the API lists them."""
        return list(self._types)

    def get(self, name: str) -> ShareBackend:
        """The backend serving share type `name`; StorageError saying why if this host cannot run it
        (or if this server does not offer it)."""
        if name not in self.names:
            raise StorageError(f"share type {name} is not offered by this floe (it offers {', '.join(self.names)})")
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


def purge_host(home: Path, delete_data: bool = False) -> list[str]:
    """Take every share of this home offline on the host (`floe cleanup --all`); data stays unless asked."""
    removed: list[str] = []
    root = storage_root(home)
    if not root.exists():
        return removed
    for name in reversed(SHARE_TYPES):  # gluster before local: its bricks may live under local storage
        try:
            backend = _backend_class(name)(root)
        except ImportError:
            continue
        if os.geteuid() == 0:
            removed += backend.purge(delete_data=delete_data)
    removed += [f"mount {m}" for m in mounts.unmount_tree(root)]
    return removed
