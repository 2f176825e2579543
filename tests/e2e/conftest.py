"""End-to-end fixtures: a real `floe server` process (as root), driven by the real CLI and docker client.

Addresses come from 10.180.0.0/16 so these tests never touch the demo's (10.160/12) or the
provider tests' (10.170/16) objects.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

VENV_BIN = Path(sys.executable).parent
FLOE = str(VENV_BIN / "floe")
DOCKER = "/usr/bin/docker"
RANGE = os.environ.get("FLOE_E2E_RANGE", "10.180.0.0/16")  # another /16 lets two runs share a host
PREFIX = RANGE.rsplit(".", 2)[0] + "."  # "10.180."
INFRA_IP = PREFIX + "0.1"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="end-to-end tests need root (namespaces, dockerd)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FloeServer:
    """A `floe server` subprocess with its own FLOE_HOME; can be killed -9 and restarted."""

    def __init__(self, home: Path):
        self.home = home
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "FLOE_HOME": str(home),
            "FLOE_PORT": str(self.port),
            "FLOE_URL": self.url,
            "FLOE_ADDRESS_RANGE": RANGE,
            "FLOE_REGISTRY_PORT": "5000",
        }
        self.env.pop("FLOE_TOKEN", None)
        self.proc: subprocess.Popen | None = None
        self.log = home / "server.log"

    def start(self, **extra_env: str) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        logf = open(self.log, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [FLOE, "server"], env={**self.env, **extra_env}, stdout=logf, stderr=subprocess.STDOUT
        )
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"floe server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("floe server did not answer in 60 s")

    def wait_exit(self, timeout: float = 120) -> int:
        """Wait for the server to die on its own (a failpoint kills it)."""
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill9()

    @property
    def token(self) -> str:
        return (self.home / "admin-token").read_text().strip()

    def api(self, method: str, path: str, **kw) -> httpx.Response:
        headers = {"X-Auth-Token": self.token, "OpenStack-API-Version": "container-infra latest"}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def floe(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        res = subprocess.run([FLOE, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"floe {' '.join(args)} failed ({res.returncode}): {res.stdout}\n{res.stderr}")
        return res

    def cluster(self, name: str) -> dict:
        return json.loads(self.floe("cluster", "show", name, "-f", "json").stdout)

    def wait_status(self, name: str, want: set[str], timeout: float = 300) -> dict:
        end = time.monotonic() + timeout
        c = {}
        while time.monotonic() < end:
            r = self.api("GET", f"/v1/clusters/{name}")
            if r.status_code == 404 and "DELETED" in want:
                return {"status": "DELETED"}
            c = r.json()
            if c.get("status") in want:
                return c
            time.sleep(0.2)
        raise AssertionError(f"cluster {name} did not reach {want}: {c}")


def host_objects(home: Path) -> dict[str, list[str]]:
    """Everything on the host that floe made for clusters under `home` (namespaces, links, rules, processes, mounts)."""
    ns_out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    ns = [n.split()[0] for n in ns_out.splitlines()]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout.splitlines()
    rules = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True).stdout.splitlines()
    procs = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(home / "nodes") in cmd:
                procs.append(f"{pid} {cmd}")
    mounts = [m for m in Path("/proc/mounts").read_text().splitlines() if str(home / "nodes") in m]
    # Loop devices of node disks (flavors): a backing file under the home's nodes.
    loops = []
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            if str(home / "nodes") in backing.read_text():
                loops.append(f"{backing.parent.parent.name} {backing.read_text().strip()}")
        except OSError:
            continue
    return {
        "netns": [n for n in ns if n.startswith("floe-")],
        # Cluster bridges and veths (flb-, fv), nodes' veths on project networks (fn), project bridges (flp-).
        "links": [name for name in (ln.split(":")[1].strip().split("@")[0] for ln in links)
                  if name.startswith(("flb-", "fv", "fn", "flp-"))],
        "loops": loops,
        "iptables": [r for r in rules if "floe:" in r and "floe:infra" not in r],
        "processes": procs,
        "mounts": mounts,
    }


def objects_of(home: Path, tag: str) -> dict[str, list[str]]:
    objs = host_objects(home)
    out = {k: [v for v in vals if tag in v] for k, vals in objs.items() if k != "processes"}
    out["processes"] = [p for p in objs["processes"] if f"/nodes/{tag}" in p]
    return out


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("floe-e2e")
    srv = FloeServer(home)
    srv.start()
    yield srv
    srv.stop()
    subprocess.run([FLOE, "cleanup", "--all"], env=srv.env, capture_output=True, timeout=120)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def _delete_what_a_failed_test_left(request):
    """A test that fails midway leaves its clusters running; delete them (the admin's project)
    so one failure does not cascade into the final leak check. A passing test is left alone:
    what it leaves is for the leak check to find."""
    if "server" not in request.fixturenames:
        yield
        return
    srv: FloeServer = request.getfixturevalue("server")

    def listed() -> set[str] | None:
        try:  # a failed crash test may leave the server stopped: then there is nothing to do here
            return {c["uuid"] for c in srv.api("GET", "/v1/clusters").json().get("clusters", [])}
        except (httpx.HTTPError, ValueError):
            return None

    before = listed()
    yield
    if not request.node.stash.get(_CALL_FAILED, False) or before is None:
        return
    for uuid in (listed() or set()) - before:
        srv.floe("cluster", "delete", uuid, "--wait", check=False)
