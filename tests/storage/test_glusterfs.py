"""The glusterfs share backend against the real thing: three storage nodes in namespaces, each with
its own glusterd, a replica-3 volume per share, FUSE mounts, Gluster's quota as the size.

Needs root and glusterfs-server; uses 10.175.251.0/24 and its own storage root, and removes
every process, namespace, link and rule it made.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from floe.host import mounts
from floe.storage.base import ShareRef, ShrinkRefused, StorageError
from floe.storage.glusterfs import GlusterBackend

MIB = 1024 * 1024
SUBNET = "10.175.251.0/24"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="namespaces, glusterd and FUSE mounts need root"),
    pytest.mark.timeout(240),
]


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory):
    b = GlusterBackend(tmp_path_factory.mktemp("gluster") / "storage", subnet=SUBNET, replicas=3)
    try:
        b.check()
    except StorageError as exc:
        pytest.skip(str(exc))
    yield b
    mounts.unmount_tree(b.storage_root)
    b.purge(delete_data=True)
    assert b.host_objects() == []
    left = subprocess.run(["pgrep", "-f", str(b.root)], capture_output=True, text=True).stdout.split()
    assert left == [], left
    assert mounts.mounts_under(b.storage_root) == []


def test_replicated_share_mount_quota_and_delete(backend: GlusterBackend, tmp_path: Path):
    share = ShareRef(id=str(uuid.uuid4()), size_bytes=32 * MIB)
    created = backend.create(share)
    assert backend.create(share) == created  # idempotent
    volume = backend.volume(share.id)
    assert created.export_locations[0].path == f"10.175.251.2:/{volume}"
    assert "Number of Bricks: 1 x 3 = 3" in backend.gluster("volume", "info", volume).stdout

    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    backend.mount(share, rw, read_only=False)
    backend.mount(share, ro, read_only=True)
    try:
        assert backend.is_mounted_at(share, rw)
        (rw / "hello").write_text("replicated")
        for i in range(3):  # one copy per storage node
            assert (backend.brick(i, volume) / "hello").read_text() == "replicated"
        assert (ro / "hello").read_text() == "replicated"
        with pytest.raises(OSError) as err:
            (ro / "nope").write_text("x")
        assert err.value.errno == errno.EROFS
        # The size is the quota: writing past it fails (EDQUOT, or ENOSPC), within about a second
        # of writes (Gluster checks usage that often near the limit).
        with pytest.raises(OSError) as err:
            with open(rw / "big", "wb") as f:
                for _ in range(200):
                    f.write(b"\0" * MIB)
                    f.flush()
                    os.fsync(f.fileno())
        assert err.value.errno in (errno.EDQUOT, errno.ENOSPC)
        assert (rw / "big").stat().st_size < 150 * MIB
        (rw / "big").unlink()
        _write_when_quota_allows(rw / "fill", 24 * MIB)
        with pytest.raises(ShrinkRefused):
            backend.shrink(share, 16 * MIB)
        (rw / "fill").unlink()
        backend.extend(share, 96 * MIB)
        assert 64 * MIB < os.statvfs(rw).f_blocks * os.statvfs(rw).f_frsize <= 96 * MIB
    finally:
        mounts.unmount(rw)
        mounts.unmount(ro)

    backend.allow(share, "ip", "10.175.99.7", "rw")
    assert "10.175.99.7" in backend.gluster("volume", "get", volume, "auth.allow").stdout
    backend.deny(share, "ip", "10.175.99.7")
    assert "10.175.99.7" not in backend.gluster("volume", "get", volume, "auth.allow").stdout

    backend.delete(share)
    backend.delete(share)  # missing is fine
    assert backend.gluster("volume", "info", volume, check=False).returncode != 0
    assert not backend.brick(0, volume).exists()


def test_pool_survives_a_restart_of_its_nodes(backend: GlusterBackend, tmp_path: Path):
    """Killing every storage node (what a reboot does) loses nothing: ensure brings the volume back."""
    share = ShareRef(id=str(uuid.uuid4()), size_bytes=32 * MIB)
    backend.create(share)
    target = tmp_path / "t"
    target.mkdir()
    backend.mount(share, target, read_only=False)
    (target / "kept").write_text("data")
    mounts.unmount(target)
    assert backend.stop_pool()
    backend.ensure(share)
    backend.mount(share, target, read_only=False)
    try:
        assert (target / "kept").read_text() == "data"
    finally:
        mounts.unmount(target)
    backend.delete(share)


def _write_when_quota_allows(path: Path, size: int, timeout: float = 15.0) -> None:
    """Gluster's quota accounting lags a deletion (seen in CI: EDQUOT right after an unlink freed
    the space): retry until it has caught up, bounded."""
    end = time.monotonic() + timeout
    while True:
        try:
            path.write_bytes(b"\0" * size)
            return
        except OSError as exc:
            if exc.errno != errno.EDQUOT or time.monotonic() > end:
                raise
            time.sleep(0.5)
