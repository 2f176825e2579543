"""Helpers for the monitoring-stack tests: loopback ports, Prometheus's HTTP API, leak checks."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from floe.config import Settings
from floe.host import processes

# The ports these tests may use for Prometheus and Alertmanager (kept apart from other tests').
PORT_RANGE = range(19590, 19600)


def free_ports(count: int) -> list[int]:
    """`count` loopback ports of PORT_RANGE nobody listens on now."""
    found = []
    for port in PORT_RANGE:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    raise RuntimeError(f"fewer than {count} free ports in {PORT_RANGE}")


def stack_settings(home: Path, floe_port: int = 9, **kw: Any) -> Settings:
    prom, am = free_ports(2)
    values = {"prometheus_port": prom, "alertmanager_port": am, "scrape_interval": 1, **kw}
    return Settings(home=home, port=floe_port, **values)


def monitoring_pids(home: Path) -> dict[int, list[str]]:
    """Processes (Prometheus, Alertmanager) whose command line names this home's monitoring directory."""
    return processes.pids_with_path(f"{home}/monitoring/")


def query(prometheus: str, promql: str) -> list[dict]:
    """The result of an instant query (Prometheus's /api/v1/query); AssertionError if it is refused."""
    r = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=10)
    body = r.json()
    assert r.status_code == 200 and body.get("status") == "success", (promql, r.status_code, body)
    return body["data"]["result"]


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.25) -> Any:
    """Call `check` until it returns something truthy; AssertionError naming `what` after `timeout`."""
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {last!r})")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def assert_no_leak(home: Path) -> None:
    left = monitoring_pids(home)
    for pid in left:  # a failed test still leaves nothing running
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    assert not left, f"monitoring processes left running: {left}"
