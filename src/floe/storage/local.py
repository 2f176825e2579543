"""The `local` backend: one ext4 image file per share, loop-mounted on the host.

Layout under the storage root (FLOE_HOME/storage, a private mount of its own):

    local/images/<share uuid>.img   the share's data; its size is the share's size
    local/mnt/<share uuid>/         where the share is mounted on the host (its "home")
    stage/                          where attach mounts are made before they move into place

The image's size is a hard limit: ext4 answers ENOSPC when it is full, and this kernel
has no per-directory quotas to do better. Grow is online (truncate, `losetup -c`,
resize2fs); shrink is offline and only when the data fits.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from floe.host import commands, mounts
from floe.storage.base import (
    EXTEND,
    HARD_SIZE_LIMIT,
    ONLINE_EXTEND,
    READ_ONLY_MOUNTS,
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

CAP_SYS_RESOURCE = 24
REQUIRED = ("losetup", "mkfs.ext4", "resize2fs", "e2fsck", "mount", "umount")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Smallest share the backend makes (ext4 needs room for its journal and metadata).
MIN_SIZE = 16 * 1024 * 1024


def _check_id(share_id: str) -> str:
    if not UUID_RE.match(share_id):
        raise StorageError(f"invalid share id {share_id!r}: expected a lowercase uuid")
    return share_id


def _run(args: list[str], timeout: float = 120) -> str:
    try:
        return mounts.run(args, timeout=timeout)
    except mounts.MountError as exc:
        raise StorageError(str(exc)) from None


def _detach(dev: str) -> bool:
    """Detach a loop device; False while a mount still holds it (the kernel frees it when that goes)."""
    try:
        _run(["losetup", "--detach", dev])
        return True
    except StorageError:
        return False


class LocalBackend(ShareBackend):
    """Loop-mounted ext4 images under FLOE_HOME/storage; needs root."""

    name = "local"
    share_proto = "LOCALFS"
    capabilities = frozenset({EXTEND, SHRINK, READ_ONLY_MOUNTS, HARD_SIZE_LIMIT})

    def __init__(self, storage_root: Path):
        # Growing a mounted ext4 needs CAP_SYS_RESOURCE; without it (some sandboxes drop it
        # from the bounding set) a share grows only while nothing has it mounted.
        if _has_capability(CAP_SYS_RESOURCE):
            self.capabilities = self.capabilities | {ONLINE_EXTEND}
        self.storage_root = Path(storage_root).absolute()
        self.root = self.storage_root / "local"
        self.images = self.root / "images"
        self.mnt = self.root / "mnt"
        self.stage = self.storage_root / "stage"

    @classmethod
    def type_info(cls) -> ShareTypeInfo:
        return ShareTypeInfo(
            name=cls.name,
            share_proto=cls.share_proto,
            description="An ext4 image per share, loop-mounted on the floe host: the size is a hard limit, "
            "no replication; visible to every local node.",
            extra_specs={
                "driver_handles_share_servers": "False",
                "share_backend_name": "local",
                "storage_protocol": "LOCALFS",
                "snapshot_support": "False",
                "create_share_from_snapshot_support": "False",
                "revert_to_snapshot_support": "False",
                "mount_snapshot_support": "False",
                "floe:filesystem": "ext4",
                "floe:size_enforcement": "hard",
                "floe:replication": "none",
            },
            capabilities=cls.capabilities,
        )

    # -- paths -------------------------------------------------------------------

    def image(self, share_id: str) -> Path:
        return self.images / f"{_check_id(share_id)}.img"

    def home(self, share_id: str) -> Path:
        return self.mnt / _check_id(share_id)

    def _prepare_root(self) -> None:
        # A private mount of its own: share mounts made here never propagate anywhere,
        # and attach mounts can be moved out of `stage` (a move needs a private parent).
        try:
            mounts.ensure_self_bind(self.storage_root, "private")
        except mounts.MountError as exc:
            raise StorageError(f"cannot prepare {self.storage_root}: {exc}") from None
        for d in (self.images, self.mnt, self.stage):
            d.mkdir(parents=True, exist_ok=True)

    # -- loop devices ------------------------------------------------------------

    def _loops_of(self, image: Path) -> list[str]:
        """Loop devices backed by `image` (usually one)."""
        if not image.exists():
            return []
        out = _run(["losetup", "--noheadings", "--output", "NAME", "--associated", str(image)])
        return [line.strip() for line in out.splitlines() if line.strip()]

    def _attach_loop(self, image: Path) -> str:
        loops = self._loops_of(image)
        if loops:
            return loops[0]
        # Direct I/O: the image's pages are not cached twice (once for the share's filesystem,
        # once for the image file); writes and cold reads run at the raw disk's speed
        # (docs/benchmarks.md). A backing filesystem without O_DIRECT gets a buffered device.
        try:
            return _run(["losetup", "--find", "--show", "--direct-io=on", str(image)]).strip()
        except StorageError:
            return _run(["losetup", "--find", "--show", str(image)]).strip()

    def _orphan_loops(self) -> list[tuple[str, str]]:
        """(device, image name) of loop devices whose image in this backend was removed while
        attached (by hand, or with a whole FLOE_HOME): `--associated` cannot find those, and
        the kernel keeps them until they are detached."""
        listed = json.loads(_run(["losetup", "--json", "--list", "--output", "NAME,BACK-FILE"]) or "{}")
        found = []
        for loop in listed.get("loopdevices", []):
            back = loop.get("back-file") or ""
            deleted = back.endswith(" (deleted)")
            image = Path(back.removesuffix(" (deleted)"))
            if image.parent == self.images and image.suffix == ".img" and (deleted or not image.exists()):
                found.append((loop["name"], image.name))
        return found

    def _detach_loops(self, image: Path) -> None:
        for dev in self._loops_of(image):
            _detach(dev)

    # -- interface ---------------------------------------------------------------

    def check(self) -> None:
        if os.geteuid() != 0:
            raise StorageError("the local share backend must run as root (it attaches loop devices and mounts)")
        missing = [b for b in REQUIRED if commands.which(b) is None]
        if missing:
            raise StorageError(f"missing programs: {', '.join(missing)} (Debian packages: mount, e2fsprogs)")
        if not Path("/dev/loop-control").exists():
            raise StorageError("this kernel has no loop devices (/dev/loop-control is missing)")

    def create(self, share: ShareRef) -> Created:
        if share.size_bytes < MIN_SIZE:
            raise StorageError(f"a local share needs at least {MIN_SIZE // 2**20} MiB")
        self._prepare_root()
        image = self.image(share.id)
        if not image.exists():
            # Formatted under a temporary name, renamed when complete: an image that
            # exists is always a whole filesystem, whatever crash happens meanwhile.
            tmp = image.with_name(f".{image.name}.tmp")
            with open(tmp, "wb") as f:
                f.truncate(share.size_bytes)
            _run(["mkfs.ext4", "-q", "-F", "-m", "0", "-L", share.id[:16],
                  "-E", "lazy_itable_init=1,lazy_journal_init=1", str(tmp)])
            os.replace(tmp, image)
        self.ensure(share)
        return Created(
            state={"image": str(image), "filesystem": "ext4"},
            export_locations=[ExportLocation(path=str(self.home(share.id)))],
        )

    def ensure(self, share: ShareRef) -> None:
        image = self.image(share.id)
        if not image.exists():
            raise StorageError(f"the image of share {share.id} is missing: {image}")
        self._prepare_root()
        home = self.home(share.id)
        home.mkdir(exist_ok=True)
        if mounts.is_mount_point(home):
            return
        dev = self._attach_loop(image)
        try:
            _run(["mount", "-t", "ext4", "-o", "noatime", dev, str(home)])
        except StorageError:
            self._detach_loops(image)
            raise

    def delete(self, share: ShareRef) -> None:
        home = self.home(share.id)
        image = self.image(share.id)
        if home.exists():
            try:
                mounts.unmount(home)
            except mounts.MountError as exc:
                raise StorageError(str(exc), temporary=True) from None
            home.rmdir()
        self._detach_loops(image)
        image.unlink(missing_ok=True)
        image.with_name(f".{image.name}.tmp").unlink(missing_ok=True)

    def extend(self, share: ShareRef, new_size_bytes: int) -> dict:
        self.ensure(share)
        image = self.image(share.id)
        dev = self._attach_loop(image)
        if ONLINE_EXTEND in self.capabilities:
            self._grow_image(image, dev, new_size_bytes)
            _run(["resize2fs", dev], timeout=600)  # online grow of the mounted filesystem
        else:
            with self._offline(share, dev, "extend"):
                self._grow_image(image, dev, new_size_bytes)
                _run(["resize2fs", dev], timeout=600)
        return {"image": str(image), "filesystem": "ext4"}

    @staticmethod
    def _grow_image(image: Path, dev: str, new_size_bytes: int) -> None:
        if image.stat().st_size < new_size_bytes:
            with open(image, "r+b") as f:
                f.truncate(new_size_bytes)
        _run(["losetup", "--set-capacity", dev])

    @contextmanager
    def _offline(self, share: ShareRef, dev: str, what: str) -> Iterator[None]:
        """Unmount the share's home, check nothing else holds it, fsck; online again afterwards."""
        try:
            mounts.unmount(self.home(share.id), lazy=False)
        except mounts.MountError as exc:
            raise StorageError(f"cannot take the share offline to {what} it: {exc}", temporary=True) from None
        try:
            self._check_unused(dev, what)
            # e2fsck exits 1 when it fixed something: that is fine before a resize.
            try:
                _run(["e2fsck", "-f", "-p", dev], timeout=600)
            except StorageError as exc:
                if "exited 1:" not in str(exc):
                    raise
            yield
        finally:
            self.ensure(share)

    def shrink(self, share: ShareRef, new_size_bytes: int) -> dict:
        self.ensure(share)
        image = self.image(share.id)
        dev = self._attach_loop(image)
        block = os.statvfs(self.home(share.id)).f_frsize
        minimum = self._minimum_blocks(dev) * block
        if new_size_bytes < max(minimum, MIN_SIZE):
            used = self.usage(share).used_bytes
            raise ShrinkRefused(
                f"the data does not fit: {used / 2**30:.2f} GiB in use needs a filesystem of at least "
                f"{minimum / 2**30:.2f} GiB"
            )
        with self._offline(share, dev, "shrink"):
            _run(["resize2fs", dev, f"{new_size_bytes // 1024}K"], timeout=600)
            _run(["losetup", "--detach", dev])
            with open(image, "r+b") as f:
                f.truncate(new_size_bytes)
        return {"image": str(image), "filesystem": "ext4"}

    def _minimum_blocks(self, dev: str) -> int:
        out = _run(["resize2fs", "-P", dev])
        m = re.search(r"minimum size of the filesystem:\s*(\d+)", out)
        if not m:
            raise StorageError(f"resize2fs -P gave no minimum size: {out.strip()}")
        return int(m.group(1))

    @staticmethod
    def _check_unused(dev: str, what: str) -> None:
        """Refuse an offline change while the filesystem is mounted anywhere (another namespace too)."""
        try:
            fd = os.open(dev, os.O_RDONLY | os.O_EXCL)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise StorageError(
                    f"cannot {what} the share offline: it is still mounted somewhere (a cluster or a container "
                    "holds it); detach it everywhere and try again"
                ) from None
            raise StorageError(f"cannot open {dev}: {exc.strerror}") from None
        os.close(fd)

    def mount(self, share: ShareRef, target: Path, read_only: bool) -> None:
        self.ensure(share)
        home = self.home(share.id)

        def make(where: Path) -> None:
            mounts.bind(home, where)
            if read_only:
                _run(["mount", "-o", "remount,bind,ro", str(where)])

        try:
            mounts.place(target, make, self.stage)
        except mounts.MountError as exc:
            raise StorageError(str(exc)) from None

    def is_mounted_at(self, share: ShareRef, target: Path) -> bool:
        home = self.home(share.id)
        try:
            return mounts.is_mount_point(target) and os.stat(target).st_dev == os.stat(home).st_dev
        except OSError:
            return False

    def usage(self, share: ShareRef) -> Usage:
        home = self.home(share.id)
        if not mounts.is_mount_point(home):
            raise StorageError(f"share {share.id} is not online")
        st = os.statvfs(home)
        return Usage(total_bytes=st.f_blocks * st.f_frsize, used_bytes=(st.f_blocks - st.f_bfree) * st.f_frsize)

    # -- cleanup -----------------------------------------------------------------

    def _images(self) -> list[Path]:
        return sorted(self.images.glob("*.img")) if self.images.is_dir() else []

    def host_objects(self) -> list[str]:
        found = [f"image {p}" for p in self._images()]
        for image in self._images():
            found += [f"loop device {dev} ({image.name})" for dev in self._loops_of(image)]
        found += [f"loop device {dev} ({name}, image deleted)" for dev, name in self._orphan_loops()]
        found += [f"mount {t}" for t in mounts.mounts_under(self.storage_root)]
        return found

    def purge(self, delete_data: bool = False) -> list[str]:
        """Unmount every share and detach its loop device; the images stay unless `delete_data`."""
        # Found before unmounting: a deleted image's path reads from its mount, and once the
        # storage root's bind is gone the kernel names it relative to a detached tree.
        orphans = self._orphan_loops()
        removed = [f"mount {t}" for t in mounts.unmount_tree(self.storage_root)]
        for image in self._images():
            loops = self._loops_of(image)
            self._detach_loops(image)
            removed += [f"loop device {dev}" for dev in loops]
            if delete_data:
                image.unlink(missing_ok=True)
                removed.append(f"image {image}")
        for dev, name in orphans:
            if _detach(dev):
                removed.append(f"loop device {dev} ({name}, image deleted)")
        for d in (self.mnt, self.stage):
            if d.is_dir():
                try:
                    mounts.remove_tree(d)
                    removed.append(f"directory {d}")
                except mounts.MountError:
                    pass
        if delete_data and self.root.is_dir():
            try:
                mounts.remove_tree(self.root)
                removed.append(f"directory {self.root}")
            except mounts.MountError:
                pass
        return removed


def _has_capability(bit: int) -> bool:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> bit & 1)
    except (OSError, ValueError):
        pass
    return False

