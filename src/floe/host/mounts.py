"""The host's mount table: read it, bind and move mounts, and remove trees without crossing mounts.

Shares reach a cluster's nodes through mount propagation (see docs/storage.md), and a share's
data is reachable through every mount of it, so anything that deletes a directory tree
that may hold one (a cluster's node directories) must unmount first and must never
descend into a mount: `remove_tree` does both.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from floe.host import commands
from floe.host.errors import HostError


class MountError(Exception):
    """A mount command failed, or a tree could not be removed because something stays mounted."""


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mountinfo."""

    mount_id: int
    parent_id: int
    root: str
    target: str
    options: str
    propagation: str  # e.g. "shared:12 master:3", "" for private
    fstype: str
    source: str

    @property
    def read_only(self) -> bool:
        return "ro" in self.options.split(",")

    @property
    def shared(self) -> bool:
        return "shared:" in self.propagation


def _unescape(field: str) -> str:
    # The kernel writes space, tab, newline and backslash as octal escapes.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mountinfo(pid: int | str = "self") -> list[MountEntry]:
    """The mount table as seen by `pid` (this process by default)."""
    entries: list[MountEntry] = []
    with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            left, _, right = line.rstrip("\n").partition(" - ")
            fields = left.split(" ")
            rest = right.split(" ")
            if len(fields) < 6 or len(rest) < 2:
                continue
            entries.append(
                MountEntry(
                    mount_id=int(fields[0]),
                    parent_id=int(fields[1]),
                    root=_unescape(fields[3]),
                    target=_unescape(fields[4]),
                    options=fields[5],
                    propagation=" ".join(fields[6:]),
                    fstype=rest[0],
                    source=_unescape(rest[1]),
                )
            )
    return entries


def _real(path: str | Path) -> str:
    return os.path.realpath(path)


def mounts_at(path: str | Path) -> list[MountEntry]:
    """Every mount stacked on exactly `path` (the top one last)."""
    target = _real(path)
    return [m for m in mountinfo() if m.target == target]


def is_mount_point(path: str | Path) -> bool:
    return bool(mounts_at(path))


def mounts_under(path: str | Path, include_self: bool = True) -> list[str]:
    """Mount points at or below `path`, deepest first (the order to unmount them in)."""
    root = _real(path)
    prefix = root.rstrip("/") + "/"
    found = {m.target for m in mountinfo() if m.target.startswith(prefix) or (include_self and m.target == root)}
    return sorted(found, key=lambda t: (-t.count("/"), t), reverse=False)


def run(args: Sequence[str], timeout: float = 60) -> str:
    """Run a mount-related command from an argument list; MountError with its stderr on failure."""
    argv = [str(a) for a in args]
    try:
        proc = commands.run(argv, check=False, timeout=timeout)
    except HostError as exc:
        raise MountError(str(exc)) from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise MountError(f"{' '.join(argv)} exited {proc.returncode}: {detail}")
    return proc.stdout


def bind(source: str | Path, target: str | Path) -> None:
    run(["mount", "--bind", str(source), str(target)])


def move(source: str | Path, target: str | Path) -> None:
    run(["mount", "--move", str(source), str(target)])


def ensure_self_bind(path: Path, propagation: str) -> bool:
    """Make `path` a mount point of its own with `propagation` (shared or private); True if it was made now.

    A directory becomes a mount point by a bind onto itself; only then can its
    propagation differ from its parent's.
    """
    if propagation not in ("shared", "private"):
        raise ValueError(propagation)
    path.mkdir(parents=True, exist_ok=True)
    made = False
    if not is_mount_point(path):
        bind(path, path)
        made = True
    top = mounts_at(path)[-1]
    if (propagation == "shared") != top.shared:
        run(["mount", f"--make-{propagation}", str(path)])
    return made


def unmount(path: str | Path, lazy: bool = True) -> None:
    """Unmount `path` (every mount stacked on it). If busy and `lazy`, detach it lazily.

    A lazy unmount only removes the mount from the tree: the filesystem stays alive
    (and its data intact) until its last user is gone.
    """
    while is_mount_point(path):
        try:
            run(["umount", str(path)])
        except MountError:
            if not lazy:
                raise
            run(["umount", "-l", str(path)])


def unmount_tree(path: str | Path) -> list[str]:
    """Unmount everything at or below `path`, deepest first; returns what was unmounted."""
    done: list[str] = []
    for _ in range(8):  # stacked or re-propagated mounts need more than one pass
        targets = mounts_under(path)
        if not targets:
            break
        for target in targets:
            try:
                unmount(target)
            except MountError:
                continue
            done.append(target)
    return done


def remove_tree(path: str | Path) -> bool:
    """Delete a directory tree after unmounting everything in it, never descending into a mount.

    Returns False if `path` did not exist. Raises MountError (leaving the tree in place
    where a mount stays) if something under it cannot be unmounted.
    """
    root = Path(path)
    if not root.exists() and not root.is_symlink():
        return False
    if root.is_symlink() or not root.is_dir():
        root.unlink(missing_ok=True)
        return True
    unmount_tree(root)
    left = mounts_under(root)
    if left:
        raise MountError(f"refusing to delete {root}: still mounted: {', '.join(left)}")
    skipped: list[str] = []
    _remove_contents(str(root), os.lstat(root).st_dev, skipped)
    try:
        os.rmdir(root)
    except FileNotFoundError:
        pass
    except OSError:
        skipped.append(str(root))
    if skipped:
        raise MountError(f"refusing to delete {root}: {', '.join(skipped[:5])} is on another filesystem or busy")
    return True


def _remove_contents(path: str, dev: int, skipped: list[str]) -> None:
    try:
        with os.scandir(path) as it:
            entries = list(it)
    except FileNotFoundError:
        return
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                # A directory on another device is a mount that appeared after the check
                # above (or a filesystem we must not touch): leave it alone.
                if entry.stat(follow_symlinks=False).st_dev != dev:
                    skipped.append(entry.path)
                    continue
                _remove_contents(entry.path, dev, skipped)
                os.rmdir(entry.path)
            else:
                os.unlink(entry.path)
        except FileNotFoundError:
            continue
        except OSError:
            skipped.append(entry.path)


def place(target: Path, make: Callable[[Path], None], staging_root: Path) -> None:
    """Create a mount with `make(dir)` in a private staging directory, then move it onto `target`.

    Propagation copies a mount with the flags it has at the moment it appears; a read-only
    bind made in place appears read-write in the nodes (mount(8) binds first and remounts
    read-only after, and remounts do not propagate). Moving a finished mount in carries its
    flags to every peer and slave.
    """
    staging_root.mkdir(parents=True, exist_ok=True)
    stage = staging_root / uuid.uuid4().hex[:12]
    stage.mkdir()
    try:
        make(stage)
        try:
            move(stage, target)
        except MountError:
            unmount(stage)
            raise
    finally:
        try:
            stage.rmdir()
        except OSError:
            pass
