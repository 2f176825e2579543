"""FLOE_NODE_POLICY against real dockerd: what a tenant can and cannot do on a local node.

Two single-node clusters of the local provider, one `restricted` and one `open`, driven with
the stock docker CLI (and raw API requests for what a naive check would miss). Needs root and
the Debian packages of LocalProvider.check(); skipped otherwise. Uses only 10.172.0.0/16 and
its own temporary home, needs no registry (a busybox image is imported into each node), and
purges everything it made: the policy's plugin and its socket go with the node.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import httpx
import pytest

from floe import pki
from floe.host import cgroups, commands, processes
from floe.providers.base import NetworkSpec, NodeSpec, ProviderError, TLSMaterial
from floe.providers.local import LocalProvider, authz, naming
from tests.providers.test_local import _traces

INFRA = "10.172.0.0/24"
DOCKER = "/usr/bin/docker"  # the client matching the daemon (see docs/architecture.md)
IMAGE = "floe-policy-test/busybox:1"
REFUSED = "authorization denied by plugin floe-policy: floe node policy (restricted)"

pytestmark = pytest.mark.timeout(300)


def _busybox_tar() -> bytes:
    """A rootfs of static busybox and a few applets, for `docker import` (no registry needed)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = Path(commands.binary("busybox")).read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
        for applet in ("sh", "true", "cat", "echo", "sleep", "ls", "id", "ip"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        for directory in ("tmp", "etc", "proc", "sys", "dev", "mnt"):
            entry = tarfile.TarInfo(directory)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(entry)
    return buf.getvalue()


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("floe-policy")


@pytest.fixture(scope="module")
def nodes(home):
    """One node per policy, each its own cluster, with the test image imported."""
    providers = {p: LocalProvider(home, INFRA, node_policy=p) for p in ("restricted", "open")}
    try:
        providers["open"].check()
    except ProviderError as exc:
        pytest.skip(f"local provider cannot run here: {exc}")
    ca_cert, ca_key = pki.new_ca("floe-policy-test")
    made: dict[str, dict] = {}
    try:
        for index, (policy, provider) in enumerate(providers.items(), start=1):
            tag, name, address = secrets.token_hex(4), f"{policy}-0", f"10.172.{index}.2"
            net = NetworkSpec(tag, "mgmt", f"10.172.{index}.0/24", f"10.172.{index}.1")
            cert, key = pki.issue_server_cert(ca_cert, ca_key, name, ips=[address], dns=[name])
            spec = NodeSpec(tag, name, address, net, f"10.172.{62 + 2 * index}.0/23",
                            TLSMaterial(ca_cert, cert, key))
            made[policy] = {"provider": provider, "tag": tag, "name": name, "net": net}
            provider.ensure_network(net)
            started = time.monotonic()
            info = provider.start_node(spec)
            print(f"\n{policy} node started in {time.monotonic() - started:.2f}s")
            made[policy].update(info=info, sock=info.docker_url.removeprefix("unix://"))
            _docker(made[policy], "import", "-", IMAGE, input=_busybox_tar())
        yield made
    finally:
        for node in made.values():
            node["provider"].purge_cluster(node["tag"])
        providers["open"].purge_all(only_this_home=True)
        shutil.rmtree(home, ignore_errors=True)


def _docker(node: dict, *args: str, input: bytes | None = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCKER_HOST": f"unix://{node['sock']}"}
    env.pop("DOCKER_TLS_VERIFY", None)
    proc = subprocess.run([DOCKER, *args], input=input, capture_output=True, env=env, timeout=timeout)
    out = subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())
    if check and out.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({out.returncode}): {out.stderr}")
    return out


def _api(node: dict) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=node["sock"]), base_url="http://docker", timeout=60)


def _policy_pids(node: dict) -> tuple[set[int], set[int]]:
    """(the plugin's processes, the shell loops that restart it) in the node's cgroup."""
    plugin, loops = set(), set()
    for pid in cgroups.members(naming.cgroup_name(node["tag"], node["name"])):
        argv = processes.cmdline(pid)
        if len(argv) > 3 and argv[1:3] == ["-I", "-S"] and argv[3].endswith("/authz.py"):
            plugin.add(pid)
        elif argv[:2] == ["/bin/sh", "-c"] and argv[2] == authz.START_SCRIPT:
            loops.add(pid)
    return plugin, loops


# -- restricted: refused ----------------------------------------------------------------

REFUSED_RUNS = [
    (["--privileged"], "privileged containers refused"),
    (["-v", "/:/host"], "bind mount of / refused"),
    (["--mount", "type=bind,src=/etc,dst=/x"], "bind mount of /etc refused"),
    (["-v", "/mnt:/m"], "bind mount of /mnt refused"),
    (["-v", "/mnt/data/sub:/d"], "bind mount of /mnt/data/sub refused"),
    (["--mount", "type=volume,src=hostroot,dst=/x,volume-opt=type=none,volume-opt=o=bind,volume-opt=device=/"],
     "refused"),
    (["--cap-add", "SYS_ADMIN"], "capability SYS_ADMIN refused"),
    (["--pid", "host"], "--pid host"),
    (["--ipc", "host"], "--ipc host"),
    (["--device", "/dev/fuse"], "devices refused"),
    (["--security-opt", "seccomp=unconfined"], "--security-opt seccomp refused"),
    (["--security-opt", "systempaths=unconfined"], "MaskedPaths refused"),
]


@pytest.mark.parametrize(("args", "reason"), REFUSED_RUNS, ids=[" ".join(a) for a, _ in REFUSED_RUNS])
def test_restricted_refuses_host_root(nodes, args, reason):
    out = _docker(nodes["restricted"], "run", "--rm", *args, IMAGE, "true", check=False)
    assert out.returncode != 0
    assert REFUSED in out.stderr and reason in out.stderr, out.stderr


def test_restricted_refuses_host_volumes_privileged_exec_and_plugins(nodes):
    node = nodes["restricted"]
    out = _docker(node, "volume", "create", "-o", "type=none", "-o", "o=bind", "-o", "device=/etc", "etc",
                  check=False)
    assert out.returncode != 0 and REFUSED in out.stderr
    _docker(node, "run", "-d", "--name", "idle", IMAGE, "sleep", "300")
    try:
        out = _docker(node, "exec", "--privileged", "idle", "true", check=False)
        assert out.returncode != 0 and "privileged exec refused" in out.stderr
        assert _docker(node, "exec", "idle", "id", "-u").stdout.strip() == "0"  # root in its container, still
    finally:
        _docker(node, "rm", "-f", "idle")
    out = _docker(node, "plugin", "install", "--grant-all-permissions", "vieux/sshfs", check=False)
    assert out.returncode != 0 and "installing or configuring Docker plugins is refused" in out.stderr


def test_restricted_allows_ordinary_work(nodes):
    node = nodes["restricted"]
    assert _docker(node, "run", "--rm", IMAGE, "echo", "plain").stdout == "plain\n"
    # Host networking is the node's own network namespace: its management address, nothing more.
    links = _docker(node, "run", "--rm", "--network", "host", IMAGE, "ip", "-o", "-4", "addr").stdout
    assert "10.172.1.2/24" in links
    # A share's root: the node's /mnt is its cluster's share directory on the host.
    _docker(node, "run", "--rm", "-v", "/mnt/data:/data", IMAGE, "sh", "-c", "echo hi > /data/f")
    _docker(node, "run", "--rm", "--mount", "type=bind,src=/mnt/data,dst=/data,readonly", IMAGE, "cat", "/data/f")
    assert (node["provider"].nodes_dir / node["tag"] / ".mnt" / "data" / "f").read_text() == "hi\n"
    _docker(node, "run", "--rm", "-v", "vol:/v", "--mount", "type=tmpfs,dst=/t", "--cap-add", "NET_BIND_SERVICE",
            "--security-opt", "no-new-privileges", IMAGE, "true")
    _docker(node, "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=8m", "scratch")
    _docker(node, "run", "--rm", "-v", "scratch:/s", IMAGE, "true")
    _docker(node, "volume", "rm", "scratch", "vol")


def test_restricted_refuses_swarm_services_with_host_mounts(nodes):
    node = nodes["restricted"]
    _docker(node, "swarm", "init", "--advertise-addr", node["info"].address, "--default-addr-pool", "10.172.128.0/20")
    for args, reason in [
        (["--mount", "type=bind,src=/etc,dst=/x"], "bind mount of /etc refused"),
        (["--mount", "type=volume,dst=/x,volume-opt=type=none,volume-opt=o=bind,volume-opt=device=/"], "device"),
        (["--cap-add", "SYS_ADMIN"], "capability CAP_SYS_ADMIN refused"),
    ]:
        out = _docker(node, "service", "create", "-d", "--name", "bad", *args, IMAGE, "sleep", "300", check=False)
        assert out.returncode != 0 and REFUSED in out.stderr and reason in out.stderr, out.stderr
    _docker(node, "service", "create", "-d", "--name", "ok", "--network", "host",
            "--mount", "type=bind,src=/mnt/data,dst=/data", IMAGE, "sleep", "300")
    out = _docker(node, "service", "update", "-d", "--mount-add", "type=bind,src=/,dst=/host", "ok", check=False)
    assert out.returncode != 0 and "bind mount of / refused" in out.stderr
    _docker(node, "service", "rm", "ok")


def test_requests_that_slip_past_a_naive_check(nodes):
    """dockerd applies each of these bodies (shown on the open node); the restricted one refuses them all."""
    create = {"Image": IMAGE, "Cmd": ["true"]}
    tricks = {  # what: (body, extra headers, the HostConfig field dockerd sets, its value)
        "top-level HostConfig fields": ({**create, "Privileged": True}, {}, "Privileged", True),
        "lower-case names": ({**create, "hostconfig": {"privileged": True}}, {}, "Privileged", True),
        "a long s for an s": ({**create, "HostConfig": {"Bind\u017f": ["/:/host"]}}, {}, "Binds", ["/:/host"]),
        "Content-Type with a charset": ({**create, "HostConfig": {"Privileged": True}},
                                        {"Content-Type": "application/json; charset=utf-8"}, "Privileged", True),
    }
    with _api(nodes["open"]) as open_api, _api(nodes["restricted"]) as restricted:
        for what, (body, headers, field, value) in tricks.items():
            data = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **headers}
            made = open_api.post("/v1.41/containers/create", content=data, headers=headers)
            assert made.status_code == 201, (what, made.text)
            shown = open_api.get(f"/containers/{made.json()['Id']}/json").json()["HostConfig"]
            open_api.delete(f"/containers/{made.json()['Id']}?force=1")
            assert shown[field] == value, what
            refused = restricted.post("/v1.41/containers/create", content=data, headers=headers)
            assert refused.status_code == 403 and REFUSED in refused.json()["message"], (what, refused.text)
        for path in ("/v1.41/containers/%63reate", "/containers/create"):
            refused = restricted.post(path, json={"Image": IMAGE, "HostConfig": {"Privileged": True}})
            assert refused.status_code == 403, path
        plain = restricted.post("/v1.41/containers/create", json={"Image": IMAGE, "Cmd": ["true"]})
        assert plain.status_code == 201
        cid = plain.json()["Id"]
        # API < 1.24 would apply a HostConfig given to start (dockerd reads "01.23" as 1.23).
        for version in ("1.23", "01.23"):
            old = restricted.post(f"/v{version}/containers/{cid}/start", json={"Privileged": True})
            assert old.status_code == 403 and "API < 1.24" in old.text, version  # answered in plain text
        restricted.delete(f"/containers/{cid}?force=1")


def test_refusals_are_logged_in_the_node_directory(nodes):
    node = nodes["restricted"]
    log = (node["provider"].nodes_dir / node["tag"] / node["name"] / "policy.log").read_text()
    assert "refused POST /v1.41/containers/create" in log and "privileged containers refused" in log


# -- open: today's behaviour ------------------------------------------------------------


def test_open_node_allows_everything(nodes):
    node = nodes["open"]
    config = json.loads((node["provider"].nodes_dir / node["tag"] / node["name"] / "daemon.json").read_text())
    assert "authorization-plugins" not in config and _policy_pids(node) == (set(), set())
    # Root on the host, as the README says: the host's own files through a bind of /.
    hostname = _docker(node, "run", "--rm", "--pid", "host", "--cap-add", "SYS_ADMIN", "--device", "/dev/fuse",
                       "-v", "/:/host", IMAGE, "cat", "/host/etc/hostname").stdout
    assert hostname == Path("/etc/hostname").read_text()
    # Accepted; whether it then starts depends on the host (a sandbox without every capability
    # cannot give a container all of them).
    _docker(node, "rm", _docker(node, "create", "--privileged", IMAGE, "true").stdout.strip())


# -- the plugin's life ------------------------------------------------------------------


def test_plugin_is_restarted_when_it_dies(nodes):
    node = nodes["restricted"]
    config = json.loads((node["provider"].nodes_dir / node["tag"] / node["name"] / "daemon.json").read_text())
    assert config["authorization-plugins"] == ["floe-policy"]
    plugin, loops = _policy_pids(node)
    assert len(plugin) == 1 and len(loops) == 1
    processes.kill(plugin)
    assert processes.wait_gone(plugin)
    started = time.monotonic()
    out = _docker(node, "run", "--rm", "--privileged", IMAGE, "true", check=False)
    assert out.returncode != 0 and "privileged containers refused" in out.stderr
    print(f"\nfirst request after the plugin died answered in {time.monotonic() - started:.2f}s")
    again, _ = _policy_pids(node)
    assert len(again) == 1 and again != plugin


def test_requests_are_refused_while_the_plugin_is_down(nodes):
    """Fail closed: with the plugin and its restart loop gone, dockerd refuses every request (after ~45 s
    of retries), the harmless ones included. This leaves the node unusable; the next test removes it."""
    node = nodes["restricted"]
    plugin, loops = _policy_pids(node)
    processes.kill(loops | plugin)
    assert processes.wait_gone(loops | plugin)
    started = time.monotonic()
    out = _docker(node, "version", "--format", "{{.Server.Version}}", check=False, timeout=120)
    assert out.returncode != 0 and "plugin floe-policy failed" in out.stderr, out.stderr
    print(f"\nrefused after {time.monotonic() - started:.1f}s with the plugin down")


def test_stopping_nodes_leaves_nothing(nodes):
    pids: set[int] = set()
    for node in nodes.values():
        plugin, loops = _policy_pids(node)
        pids |= plugin | loops
        node["provider"].stop_node(node["tag"], node["name"])
        node["provider"].delete_network(node["net"])
    assert not any(processes.running(p) for p in pids)
    for node in nodes.values():  # once all are stopped: _traces counts any mount under the home
        assert _traces(node["provider"], node["tag"]) == []
        assert node["provider"].node_info(node["tag"], node["name"]) is None
