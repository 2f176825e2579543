"""Lease holders: whose lease may be taken over at once (real processes, real pids)."""

from __future__ import annotations

import os
import subprocess
import sys

from floe.leases import LeaseHolder


def test_who_is_gone() -> None:
    me = LeaseHolder()
    assert me.gone(None) and me.gone("")
    assert not me.gone(me.owner), "our own lease is held"
    assert LeaseHolder().owner != me.owner
    assert me.gone(LeaseHolder().owner), "another holder of this process: an earlier engine, gone"
    assert not me.gone(f"other-host:{os.getpid() + 1}:abcd1234"), "another host's process is not ours to judge"
    assert not me.gone(f"{me.host}:not-a-pid:x")

    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not me.gone(f"{me.host}:{alive.pid}:abcd1234")
    finally:
        alive.kill()
        alive.wait()
    assert me.gone(f"{me.host}:{alive.pid}:abcd1234"), "its process has exited"
