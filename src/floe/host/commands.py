"""Commands on the host: binaries looked up in the system directories, argument lists only (never a shell)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from floe.host.errors import HostError

# Daemons live in sbin on Debian (dockerd, iptables); the floe server may run with a
# user PATH that lacks it, so look there explicitly.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def which(name: str) -> str | None:
    """Absolute path of a binary, looking in the system directories too."""
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}:{SYSTEM_PATH}")


def binary(name: str) -> str:
    """Absolute path of a binary, or HostError naming the missing one."""
    path = which(name)
    if path is None:
        raise HostError(f"{name} not found (looked in PATH and {SYSTEM_PATH})")
    return path


def clean_env() -> dict[str, str]:
    """Environment for the daemons and tools floe starts: no proxies, no DOCKER_* leaks."""
    return {"PATH": SYSTEM_PATH, "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}


def run(args: Sequence[str], *, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a command from an argument list (never a shell); HostError on failure if `check`."""
    try:
        proc = subprocess.run(
            list(args), capture_output=True, text=True, timeout=timeout, env=clean_env(), check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HostError(f"{args[0]} failed: {exc}") from None
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise HostError(f"{' '.join(args[:3])}… exited {proc.returncode}: {detail}")
    return proc


def write_file(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Write atomically (temp file + rename) with the given permissions from the start."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    # Before writing: a leftover temp file keeps its old mode, and the umask may have
    # narrowed the one given to open().
    os.fchmod(fd, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def log_tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
