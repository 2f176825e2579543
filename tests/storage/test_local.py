"""The local share backend against the real thing: sparse images, mkfs, loop devices, mounts.

Needs root; each test uses its own temporary storage root and purges it, and a final
check proves nothing of it is left on the host (no loop device, no mount, no file but
the images it was told to keep).
"""

from __future__ import annotations

import errno
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from floe.host import mounts
from floe.storage.base import ShareRef, ShrinkRefused, StorageError
from floe.storage.local import LocalBackend

MIB = 1024 * 1024

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="loop devices and mounts need root"),
    pytest.mark.timeout(120),
]


def loops_under(root: Path) -> list[str]:
    out = subprocess.run(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if str(root) in line]


@pytest.fixture
def backend(tmp_path: Path):
    b = LocalBackend(tmp_path / "storage")
    try:
        b.check()
    except StorageError as exc:
        pytest.skip(str(exc))
    yield b
    b.purge(delete_data=True)
    assert mounts.mounts_under(tmp_path) == []
    assert loops_under(tmp_path) == []


def new_share(size_mib: int = 64) -> ShareRef:
    return ShareRef(id=str(uuid.uuid4()), size_bytes=size_mib * MIB)


def write(path: Path, size: int, chunk: int = MIB) -> int:
    """Write zeros until `size` bytes or ENOSPC; returns how many bytes were written."""
    done = 0
    with open(path, "wb") as f:
        try:
            while done < size:
                done += f.write(b"\0" * min(chunk, size - done))
            f.flush()
            os.fsync(f.fileno())
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            return -done - 1  # negative: ENOSPC hit after `done` bytes
    return done


def test_create_is_idempotent_and_the_size_is_a_hard_limit(backend: LocalBackend):
    share = new_share(64)
    created = backend.create(share)
    assert backend.create(share) == created  # again: same result, nothing redone
    home = backend.home(share.id)
    assert created.export_locations[0].path == str(home)
    assert mounts.is_mount_point(home)
    image = backend.image(share.id)
    assert image.stat().st_size == 64 * MIB
    assert image.stat().st_blocks * 512 < 16 * MIB  # sparse: only metadata is written
    usage = backend.usage(share)
    assert 50 * MIB < usage.total_bytes <= 64 * MIB
    assert write(home / "big", 100 * MIB) < 0  # ENOSPC before 100 MiB
    assert usage.total_bytes - 8 * MIB < backend.usage(share).used_bytes


def test_ensure_brings_a_share_back_after_a_purge_and_data_survives(backend: LocalBackend):
    share = new_share()
    backend.create(share)
    (backend.home(share.id) / "keep").write_text("precious")
    backend.purge()  # what `floe cleanup --all` does: offline, data kept
    assert not mounts.is_mount_point(backend.home(share.id))
    assert backend.image(share.id).exists()
    assert loops_under(backend.storage_root) == []
    backend.ensure(share)
    assert (backend.home(share.id) / "keep").read_text() == "precious"


def test_extend_online_keeps_data_and_grows_the_limit(backend: LocalBackend):
    share = new_share(32)
    backend.create(share)
    home = backend.home(share.id)
    (home / "a").write_text("before")
    before = backend.usage(share).total_bytes
    backend.extend(share, 96 * MIB)
    after = backend.usage(share).total_bytes
    assert after > before + 56 * MIB
    assert (home / "a").read_text() == "before"
    assert write(home / "fill", 64 * MIB) == 64 * MIB  # did not fit before


def test_shrink_when_the_data_fits_and_refuse_when_not(backend: LocalBackend):
    share = new_share(128)
    backend.create(share)
    home = backend.home(share.id)
    assert write(home / "data", 80 * MIB) == 80 * MIB
    with pytest.raises(ShrinkRefused, match="does not fit"):
        backend.shrink(share, 48 * MIB)
    assert (home / "data").stat().st_size == 80 * MIB  # untouched, still online
    (home / "data").unlink()
    (home / "small").write_text("kept")
    backend.shrink(share, 48 * MIB)
    assert backend.image(share.id).stat().st_size == 48 * MIB
    assert (home / "small").read_text() == "kept"
    assert backend.usage(share).total_bytes <= 48 * MIB


def test_shrink_refuses_while_the_filesystem_is_mounted_elsewhere(backend: LocalBackend, tmp_path: Path):
    share = new_share(64)
    backend.create(share)
    target = tmp_path / "attached"
    target.mkdir()
    backend.mount(share, target, read_only=False)
    try:
        with pytest.raises(StorageError, match="still mounted"):
            backend.shrink(share, 32 * MIB)
        assert mounts.is_mount_point(backend.home(share.id))  # back online
    finally:
        mounts.unmount(target)


def test_read_only_mount(backend: LocalBackend, tmp_path: Path):
    share = new_share()
    backend.create(share)
    (backend.home(share.id) / "f").write_text("x")
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    backend.mount(share, ro, read_only=True)
    backend.mount(share, rw, read_only=False)
    try:
        assert (ro / "f").read_text() == "x"
        with pytest.raises(OSError) as err:
            (ro / "g").write_text("y")
        assert err.value.errno == errno.EROFS
        (rw / "g").write_text("y")
        assert (ro / "g").read_text() == "y"
    finally:
        mounts.unmount(ro)
        mounts.unmount(rw)


def test_delete_removes_everything_of_the_share(backend: LocalBackend):
    share, other = new_share(), new_share()
    backend.create(share)
    backend.create(other)
    backend.delete(share)
    backend.delete(share)  # missing is fine
    assert not backend.image(share.id).exists() and not backend.home(share.id).exists()
    assert [ln for ln in loops_under(backend.storage_root) if share.id in ln] == []
    assert backend.image(other.id).exists() and mounts.is_mount_point(backend.home(other.id))


def test_a_loop_whose_image_was_deleted_is_found_and_detached(backend: LocalBackend, tmp_path: Path):
    """An image removed while attached (by hand, or with a whole FLOE_HOME) keeps its loop
    device: `losetup --associated` no longer finds it, cleanup still must."""
    share = new_share(32)
    backend.create(share)
    os.unlink(backend.image(share.id))
    [line] = loops_under(tmp_path)
    assert "(deleted)" in line
    assert [o for o in backend.host_objects() if "image deleted" in o] == [
        f"loop device {line.split()[0]} ({share.id}.img, image deleted)"]
    other = LocalBackend(tmp_path / "other-storage")  # another home's backend leaves it alone
    assert not [o for o in other.host_objects() if "loop" in o]
    removed = backend.purge()
    assert f"loop device {line.split()[0]} ({share.id}.img, image deleted)" in removed
    # By the share's id: once the storage root's bind is gone the kernel names a deleted
    # image relative to a detached tree, so loops_under(tmp_path) alone would miss it.
    everywhere = subprocess.run(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"],
                                capture_output=True, text=True, check=True).stdout
    assert share.id not in everywhere


def test_bad_ids_and_sizes_are_refused(backend: LocalBackend):
    with pytest.raises(StorageError, match="invalid share id"):
        backend.create(ShareRef(id="../../etc", size_bytes=64 * MIB))
    with pytest.raises(StorageError, match="at least"):
        backend.create(ShareRef(id=str(uuid.uuid4()), size_bytes=MIB))


def test_remove_tree_never_crosses_a_mount(backend: LocalBackend, tmp_path: Path):
    """A cluster directory holding an attached share goes; the share's data does not."""
    share = new_share()
    backend.create(share)
    (backend.home(share.id) / "data").write_text("survives")
    cluster_dir = tmp_path / "nodes" / "cafe0001"
    (cluster_dir / ".mnt" / "s").mkdir(parents=True)
    (cluster_dir / "node-0" / "data").mkdir(parents=True)
    (cluster_dir / "node-0" / "data" / "x").write_text("node file")
    backend.mount(share, cluster_dir / ".mnt" / "s", read_only=False)
    assert mounts.remove_tree(cluster_dir)
    assert not cluster_dir.exists()
    assert (backend.home(share.id) / "data").read_text() == "survives"
    assert mounts.mounts_under(tmp_path / "nodes") == []


def test_extend_while_attached_grows_online_or_says_why_not(backend: LocalBackend, tmp_path: Path):
    from floe.storage.base import ONLINE_EXTEND

    share = new_share(32)
    backend.create(share)
    target = tmp_path / "attached"
    target.mkdir()
    backend.mount(share, target, read_only=False)
    try:
        if ONLINE_EXTEND in backend.capabilities:
            backend.extend(share, 64 * MIB)
            assert backend.usage(share).total_bytes > 48 * MIB
        else:
            with pytest.raises(StorageError, match="still mounted somewhere"):
                backend.extend(share, 64 * MIB)
            assert mounts.is_mount_point(backend.home(share.id))
    finally:
        mounts.unmount(target)
