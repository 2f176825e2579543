"""The `simulated` share backend: shares as directories with a size, no root and no mounts.

For testing and measuring the share engine far beyond what loop devices allow, as the
simulated provider does for nodes. A share is `simulated/<uuid>/` under the storage root:
`data/` (what a test writes there counts as used space) and `state.json` (size, rules).
It cannot mount (it declares no mount capability: a share attached on the simulated provider
never reaches a node), refuses a shrink below the data it holds, and is not listed as a share
type unless a server is configured to offer it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from floe.storage.base import (
    EXTEND,
    ONLINE_EXTEND,
    SHRINK,
    Created,
    ExportLocation,
    ShareBackend,
    ShareRef,
    ShareTypeInfo,
    ShrinkRefused,
    StorageError,
    Usage,
)

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class SimulatedBackend(ShareBackend):
    """Shares as directories under FLOE_HOME/storage/simulated; every call is idempotent."""

    name = "simulated"
    share_proto = "LOCALFS"
    capabilities = frozenset({EXTEND, ONLINE_EXTEND, SHRINK})

    def __init__(self, storage_root: Path):
        self.root = Path(storage_root) / "simulated"

    @classmethod
    def type_info(cls) -> ShareTypeInfo:
        return ShareTypeInfo(
            name=cls.name,
            share_proto=cls.share_proto,
            description="Simulated shares (a directory each, no mounts) for testing floe's control plane.",
            extra_specs={
                "driver_handles_share_servers": "False",
                "share_backend_name": "simulated",
                "storage_protocol": cls.share_proto,
                "snapshot_support": "False",
            },
            capabilities=cls.capabilities,
        )

    def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- one share ----------------------------------------------------------------
    def dir(self, share_id: str) -> Path:
        if not _UUID.match(share_id):
            raise StorageError(f"invalid share id {share_id!r}: expected a lowercase uuid")
        return self.root / share_id

    def _state(self, share: ShareRef) -> dict:
        try:
            return json.loads((self.dir(share.id) / "state.json").read_text())
        except FileNotFoundError:
            raise StorageError(f"share {share.id} does not exist") from None

    def _write(self, share_id: str, state: dict) -> None:
        d = self.dir(share_id)
        tmp = d / "state.json.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, d / "state.json")  # never half a state after a crash

    def create(self, share: ShareRef) -> Created:
        d = self.dir(share.id)
        (d / "data").mkdir(parents=True, exist_ok=True)
        if not (d / "state.json").exists():
            self._write(share.id, {"size_bytes": share.size_bytes, "rules": {}})
        return Created(state={"dir": str(d)}, export_locations=[ExportLocation(path=str(d / "data"))])

    def ensure(self, share: ShareRef) -> None:
        self._state(share)

    def delete(self, share: ShareRef) -> None:
        shutil.rmtree(self.dir(share.id), ignore_errors=True)

    def extend(self, share: ShareRef, new_size_bytes: int) -> dict:
        state = self._state(share)
        state["size_bytes"] = max(state["size_bytes"], new_size_bytes)
        self._write(share.id, state)
        return {"dir": str(self.dir(share.id))}

    def shrink(self, share: ShareRef, new_size_bytes: int) -> dict:
        state = self._state(share)
        used = self.usage(share).used_bytes
        if used > new_size_bytes:
            raise ShrinkRefused(f"{used} bytes of data do not fit in {new_size_bytes} bytes")
        state["size_bytes"] = new_size_bytes
        self._write(share.id, state)
        return {"dir": str(self.dir(share.id))}

    def mount(self, share: ShareRef, target: Path, read_only: bool) -> None:
        raise StorageError("simulated shares cannot be mounted (they are for testing floe's control plane)")

    def is_mounted_at(self, share: ShareRef, target: Path) -> bool:
        return False

    def usage(self, share: ShareRef) -> Usage:
        state = self._state(share)
        used = sum(f.stat().st_size for f in (self.dir(share.id) / "data").rglob("*") if f.is_file())
        return Usage(total_bytes=state["size_bytes"], used_bytes=used)

    def allow(self, share: ShareRef, access_type: str, access_to: str, access_level: str) -> dict:
        state = self._state(share)
        state["rules"][f"{access_type}:{access_to}"] = access_level
        self._write(share.id, state)
        return {}

    def deny(self, share: ShareRef, access_type: str, access_to: str) -> None:
        try:
            state = self._state(share)
        except StorageError:
            return  # a share that is gone has no rules
        state["rules"].pop(f"{access_type}:{access_to}", None)
        self._write(share.id, state)

    # -- cleanup ------------------------------------------------------------------
    def host_objects(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return [f"simulated share {d}" for d in sorted(self.root.iterdir()) if d.is_dir()]

    def purge(self, delete_data: bool = False) -> list[str]:
        found = self.host_objects()
        if delete_data and self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)
            return found
        return []  # nothing is online on the host: there is nothing to take offline
