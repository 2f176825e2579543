"""The share-backend contract (src/floe/storage/base.py): every backend passes these.

A new backend is added to `BACKENDS` below and must pass the whole suite. `local` (loop
devices, mounts) and `glusterfs` (three storage nodes in namespaces, glusterd, FUSE; on
10.175.250.0/24 only) need root and run the real thing; `simulated` needs nothing. Each
backend gets its own storage root, and the suite ends by purging it and checking that
nothing is left on the host.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from floe.host import mounts
from floe.storage.base import (
    EXTEND,
    READ_ONLY_MOUNTS,
    SHRINK,
    ShareBackend,
    ShareRef,
    ShareTypeInfo,
    ShrinkRefused,
    StorageError,
)

MIB = 1024 * 1024
SIZE = 32 * MIB
BACKENDS = ("simulated", "local", "glusterfs")
# Backends whose shares can be mounted on the host (the simulated one cannot).
MOUNTABLE = {"local", "glusterfs"}

pytestmark = pytest.mark.timeout(300)


def _make(name: str, root: Path) -> ShareBackend:
    if name == "simulated":
        from floe.storage.simulated import SimulatedBackend

        return SimulatedBackend(root)
    if os.geteuid() != 0:
        pytest.skip(f"the {name} backend needs root (loop devices, namespaces, mounts)")
    if name == "local":
        from floe.storage.local import LocalBackend

        return LocalBackend(root)
    from floe.storage.glusterfs import GlusterBackend

    return GlusterBackend(root, subnet="10.175.250.0/24", replicas=3)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request, tmp_path_factory) -> Iterator[ShareBackend]:
    root = tmp_path_factory.mktemp(f"contract-{request.param}") / "storage"
    b = _make(request.param, root)
    try:
        b.check()
    except StorageError as exc:
        pytest.skip(f"the {request.param} backend cannot run here: {exc}")
    yield b
    mounts.unmount_tree(root)
    b.purge(delete_data=True)
    assert b.host_objects() == [], "purge leaves nothing of the backend on the host"
    assert mounts.mounts_under(root) == []


@pytest.fixture
def share(backend: ShareBackend) -> Iterator[ShareRef]:
    ref = ShareRef(id=str(uuid.uuid4()), size_bytes=SIZE)
    created = backend.create(ref)
    ref = ShareRef(ref.id, ref.size_bytes, dict(created.state))
    yield ref
    backend.delete(ref)


def _mounted(backend: ShareBackend, share: ShareRef, tmp_path: Path, read_only: bool = False) -> Path:
    target = tmp_path / f"m-{uuid.uuid4().hex[:6]}"
    target.mkdir()
    backend.mount(share, target, read_only)
    return target


def test_type_info_is_static_and_names_the_backend(backend: ShareBackend) -> None:
    info = type(backend).type_info()
    assert isinstance(info, ShareTypeInfo)
    assert info.name == backend.name and info.share_proto == backend.share_proto
    assert info.capabilities == backend.capabilities
    assert info.extra_specs.get("share_backend_name") == backend.name
    assert info.extra_specs.get("driver_handles_share_servers") == "False"


def test_create_and_ensure_are_idempotent(backend: ShareBackend, share: ShareRef) -> None:
    again = backend.create(share)  # a crash after create, before its record: create runs again
    assert again.export_locations, "a share has at least one export location"
    backend.ensure(share)
    backend.ensure(share)
    assert backend.usage(share).total_bytes > 0


def test_ensure_of_a_share_that_was_never_made_is_a_clear_error(backend: ShareBackend) -> None:
    with pytest.raises(StorageError):
        backend.ensure(ShareRef(id=str(uuid.uuid4()), size_bytes=SIZE))


def test_ids_that_are_not_uuids_are_refused(backend: ShareBackend) -> None:
    with pytest.raises(StorageError):
        backend.create(ShareRef(id="../../etc", size_bytes=SIZE))


def test_delete_is_idempotent_and_removes_the_share(backend: ShareBackend) -> None:
    ref = ShareRef(id=str(uuid.uuid4()), size_bytes=SIZE)
    backend.create(ref)
    backend.delete(ref)
    backend.delete(ref)  # missing is fine
    with pytest.raises(StorageError):
        backend.ensure(ref)


def test_extend_grows_the_share_when_declared(backend: ShareBackend, share: ShareRef) -> None:
    if EXTEND not in backend.capabilities:
        pytest.skip(f"{backend.name} does not declare {EXTEND}")
    before = backend.usage(share).total_bytes
    backend.extend(share, 2 * SIZE)
    grown = ShareRef(share.id, 2 * SIZE, share.state)
    assert backend.usage(grown).total_bytes > before


def test_shrink_below_the_data_is_refused_and_changes_nothing(backend: ShareBackend, share: ShareRef,
                                                            tmp_path: Path) -> None:
    if SHRINK not in backend.capabilities:
        pytest.skip(f"{backend.name} does not declare {SHRINK}")
    data = 8 * MIB
    if backend.name in MOUNTABLE:
        target = _mounted(backend, share, tmp_path)
        (target / "data.bin").write_bytes(os.urandom(data))
        mounts.unmount(target)  # shrink is offline
    else:
        (Path(share.state["dir"]) / "data" / "data.bin").write_bytes(os.urandom(data))
    before = backend.usage(share).total_bytes
    with pytest.raises(ShrinkRefused):
        backend.shrink(share, 2 * MIB)
    assert backend.usage(share).total_bytes == before


def test_access_rules_apply_and_withdraw_idempotently(backend: ShareBackend, share: ShareRef) -> None:
    extra = backend.allow(share, "ip", "10.175.250.99", "rw")
    assert isinstance(extra, dict)
    backend.deny(share, "ip", "10.175.250.99")
    backend.deny(share, "ip", "10.175.250.99")  # withdrawn already is fine


def test_a_mount_is_the_share_and_keeps_its_data(backend: ShareBackend, share: ShareRef, tmp_path: Path) -> None:
    if backend.name not in MOUNTABLE:
        with pytest.raises(StorageError):
            _mounted(backend, share, tmp_path)
        return
    target = _mounted(backend, share, tmp_path)
    assert backend.is_mounted_at(share, target)
    other = ShareRef(id=str(uuid.uuid4()), size_bytes=SIZE)
    assert not backend.is_mounted_at(other, target), "a mount of one share is not another's"
    (target / "kept.txt").write_text("data outlives mounts\n")
    mounts.unmount(target)
    assert not backend.is_mounted_at(share, target)
    again = _mounted(backend, share, tmp_path)
    assert (again / "kept.txt").read_text() == "data outlives mounts\n"
    mounts.unmount(again)


def test_read_only_mounts_refuse_writes_when_declared(backend: ShareBackend, share: ShareRef,
                                                      tmp_path: Path) -> None:
    if READ_ONLY_MOUNTS not in backend.capabilities:
        pytest.skip(f"{backend.name} does not declare {READ_ONLY_MOUNTS}")
    target = _mounted(backend, share, tmp_path, read_only=True)
    try:
        with pytest.raises(OSError):
            (target / "nope.txt").write_text("x")
    finally:
        mounts.unmount(target)
