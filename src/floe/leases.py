"""Lease holders: the name a process writes into a lease column, and whether a holder is gone.

The engine's runner leases every kind of work (operations, shares) the same way: a
compare-and-swap on an owner column holding `host:pid:nonce`. A lease whose holder was a
process on this host that no longer runs is taken over at once instead of waiting for it
to expire (a restarted server resumes its work immediately).
"""

from __future__ import annotations

import os
import socket
import uuid


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


class LeaseHolder:
    """This process as a lease owner (a fresh nonce per holder, so two in one process differ)."""

    def __init__(self) -> None:
        self.host = socket.gethostname()
        self.owner = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def gone(self, owner: str | None) -> bool:
        """True when `owner` holds nothing, or was a process on this host that no longer runs.

        A holder with this process's pid but another nonce is gone too: an earlier engine of
        this process (stopped and replaced) can no longer be working.
        """
        if not owner:
            return True
        host, _, rest = owner.partition(":")
        pid_s, _, _nonce = rest.partition(":")
        if host != self.host or owner == self.owner:
            return False
        try:
            pid = int(pid_s)
        except ValueError:
            return False
        return pid == os.getpid() or not pid_alive(pid)
