"""The monitoring stack's daemons: real Prometheus and Alertmanager started, reconfigured and stopped.

Each test has its own FLOE_HOME under tmp and loopback ports from 19590-19599, and asserts that
no process of that home is left.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from floe.cleanup import purge_all_local
from floe.monitoring.stack import MonitoringError, MonitoringStack, purge_host
from tests.monitoring.stack_helpers import assert_no_leak, monitoring_pids, stack_settings

pytestmark = [
    pytest.mark.skipif(not (shutil.which("prometheus") and shutil.which("prometheus-alertmanager")),
                       reason="Debian's prometheus and prometheus-alertmanager are not installed (make apt)"),
    pytest.mark.timeout(120),
]
FLOE = str(Path(sys.executable).parent / "floe")


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    yield home
    MonitoringStack(stack_settings(home)).down()  # ports differ, the pidfiles do not
    assert_no_leak(home)


def _listening(stack: MonitoringStack) -> set[str]:
    """Where the stack's processes listen (ss), e.g. {'127.0.0.1:19590'}."""
    pids = {d.pid for d in stack.status()}
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    return {line.split()[3] for line in out.splitlines() if any(f"pid={p}," in line for p in pids)}


def test_up_is_idempotent_listens_on_loopback_only_and_down_stops_it(home: Path):
    stack = MonitoringStack(stack_settings(home))
    first = stack.up()
    assert [d.name for d in first] == ["prometheus", "alertmanager"] and all(d.running for d in first)
    assert _listening(stack) == {stack.prometheus_addr, stack.alertmanager_addr}
    r = httpx.get(f"{stack.url('prometheus')}/api/v1/status/flags", timeout=5).json()["data"]
    assert r["storage.tsdb.path"] == str(home / "monitoring/prometheus/data")
    assert r["storage.tsdb.retention.time"] == "15d"
    assert stack.up() == first  # nothing restarted
    assert sorted(monitoring_pids(home)) == sorted(d.pid for d in first)
    stopped = stack.down()
    assert len(stopped) == 2 and not any(d.running for d in stack.status())
    assert stack.down() == []
    assert (home / "monitoring/prometheus/data").is_dir()  # the data stays


def test_changed_settings_reload_or_restart(home: Path):
    settings = stack_settings(home)
    stack = MonitoringStack(settings)
    before = {d.name: d.pid for d in stack.up()}
    # A new scrape interval is a file change: same processes, configuration reread.
    faster = MonitoringStack(stack_settings(home, scrape_interval=2, prometheus_port=settings.prometheus_port,
                                            alertmanager_port=settings.alertmanager_port))
    after = {d.name: d.pid for d in faster.up()}
    assert after == before

    def loaded_interval() -> bool:
        cfg = httpx.get(f"{stack.url('prometheus')}/api/v1/status/config", timeout=5).json()["data"]["yaml"]
        return "scrape_interval: 2s" in cfg

    from tests.monitoring.stack_helpers import wait_for

    wait_for("Prometheus rereads its configuration", loaded_interval, 20)
    # A new retention is a flag: Prometheus restarts, Alertmanager does not.
    longer = MonitoringStack(stack_settings(home, scrape_interval=2, prometheus_retention="3d",
                                            prometheus_port=settings.prometheus_port,
                                            alertmanager_port=settings.alertmanager_port))
    restarted = {d.name: d.pid for d in longer.up()}
    assert restarted["alertmanager"] == before["alertmanager"]
    assert restarted["prometheus"] != before["prometheus"]
    assert sorted(monitoring_pids(home)) == sorted(restarted.values())


def test_a_recycled_pid_is_not_the_daemon(home: Path):
    stack = MonitoringStack(stack_settings(home))
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        stack.directory("prometheus").mkdir(parents=True)
        (stack.directory("prometheus") / "prometheus.pid").write_text(f"{stranger.pid}\n")
        assert stack.pid("prometheus") is None
        states = {d.name: d.pid for d in stack.up()}
        assert states["prometheus"] != stranger.pid
        stack.down()
        assert stranger.poll() is None  # never signalled
    finally:
        stranger.kill()
        stranger.wait()


def test_a_taken_port_is_a_clear_error(home: Path):
    settings = stack_settings(home)
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past earlier tests' TIME_WAIT
        taken.bind(("127.0.0.1", settings.prometheus_port))
        taken.listen()
        with pytest.raises(MonitoringError, match=r"prometheus exited: .*address already in use"):
            MonitoringStack(settings).up(timeout=20)


def test_cleanup_all_stops_this_homes_stack_only(home: Path, tmp_path: Path):
    other_home = tmp_path / "other"
    mine = MonitoringStack(stack_settings(home))
    mine.up()
    other = MonitoringStack(stack_settings(other_home))
    other.up()
    try:
        removed = purge_host(home)
        assert len(removed) == 2 and all(str(home) in item for item in removed), removed
        assert not any(d.running for d in mine.status())
        assert all(d.running for d in other.status())
    finally:
        other.down()
    assert_no_leak(other_home)


@pytest.mark.skipif(os.geteuid() != 0, reason="floe cleanup --all purges host objects: root only")
def test_floe_cleanup_all_stops_the_stack(home: Path):
    stack = MonitoringStack(stack_settings(home))
    stack.up()
    removed = purge_all_local(stack.settings)
    assert sum("prometheus" in item for item in removed) == 2, removed  # prometheus and prometheus-alertmanager
    assert monitoring_pids(home) == {}


def test_the_cli(home: Path):
    settings = stack_settings(home)
    env = {**os.environ, "FLOE_HOME": str(home), "FLOE_PROMETHEUS_PORT": str(settings.prometheus_port),
           "FLOE_ALERTMANAGER_PORT": str(settings.alertmanager_port)}

    def floe(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([FLOE, "monitoring", *args], env=env, capture_output=True, text=True, timeout=60)

    up = floe("up")
    assert up.returncode == 0, up.stderr
    lines = up.stdout.splitlines()
    assert lines[0].startswith(f"prometheus: http://127.0.0.1:{settings.prometheus_port}  running (pid ")
    assert lines[1].startswith(f"alertmanager: http://127.0.0.1:{settings.alertmanager_port}  running (pid ")
    assert floe("status").stdout == up.stdout
    down = floe("down")
    assert down.returncode == 0 and down.stdout.count("stopped ") == 2, down.stdout
    assert "stopped" in floe("status").stdout.splitlines()[0]
    bad = subprocess.run([FLOE, "monitoring", "up"], env={**env, "FLOE_SCRAPE_INTERVAL": "0"},
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.startswith("error: FLOE_SCRAPE_INTERVAL 0 must be from 1 to 3600")


def test_concurrent_ups_start_one_stack(home: Path):
    from concurrent.futures import ThreadPoolExecutor

    settings = stack_settings(home)
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: MonitoringStack(settings).up(), range(3)))
    assert results[0] == results[1] == results[2]
    assert sorted(monitoring_pids(home)) == sorted(d.pid for d in results[0])
