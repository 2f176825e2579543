"""LocalProvider against the real thing: namespaces, bridges, iptables, dockerd, the registry.

Needs root and the Debian packages listed in LocalProvider.check(); skipped otherwise.
Uses only 10.170.0.0/16 and its own temporary home, and purges everything it made.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import docker
import httpx
import pytest
import requests.exceptions

from floe import pki
from floe.host import cgroups, commands, firewall, netns, processes
from floe.providers.base import NetworkSpec, NodeSpec, ProviderError, TLSMaterial
from floe.providers.local import LocalProvider, naming
from floe.providers.local import node as node_module

INFRA = "10.170.0.0/24"
REGISTRY_PORT = 5000
NODE_NAMES = ("node-a", "node-b", "node-c")

pytestmark = pytest.mark.timeout(300)


def _new_tag() -> str:
    return secrets.token_hex(4)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("floe-local")


@pytest.fixture(scope="module")
def made_tags() -> set[str]:
    """Tags the tests create; the provider fixture purges them whatever happens."""
    return set()


@pytest.fixture(scope="module")
def provider(home, made_tags):
    prov = LocalProvider(home, INFRA, registry_port=REGISTRY_PORT)
    try:
        prov.check()
    except ProviderError as exc:
        pytest.skip(f"local provider cannot run here: {exc}")
    # floe's token realm, which the registry sends every client to (anonymous pulls of library here).
    from floe.config import Settings
    from floe.server import build_runtime, start_registry_realm

    runtime = build_runtime(Settings(home=home), prov, engine=False)
    realm = start_registry_realm(runtime, ensure=False)
    yield prov
    if realm is not None:
        realm.should_exit = True
    runtime.db.dispose()
    for tag in made_tags:
        prov.purge_cluster(tag)
    prov.purge_all(only_this_home=True)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def ca() -> tuple[str, str]:
    return pki.new_ca("floe-test-ca")


@pytest.fixture(scope="module")
def registry_info(provider):
    return provider.ensure_registry()


def _spec(tag: str, index: int, name: str, net: NetworkSpec, ca, registry) -> NodeSpec:
    address = f"10.170.{net.subnet.split('.')[2]}.{index + 2}"
    cert, key = pki.issue_server_cert(ca[0], ca[1], name, ips=[address], dns=[name])
    return NodeSpec(
        cluster_tag=tag, name=name, address=address, network=net,
        docker_pool=f"10.170.{64 + 2 * index}.0/23",
        tls=TLSMaterial(ca_pem=ca[0], cert_pem=cert, key_pem=key), registry=registry,
        labels={"floe.node": name},
    )


@pytest.fixture(scope="module")
def cluster(provider, registry_info, ca, made_tags):
    """One network and three nodes started in parallel."""
    tag = _new_tag()
    made_tags.add(tag)
    net = NetworkSpec(cluster_tag=tag, name="mgmt", subnet="10.170.1.0/24", gateway="10.170.1.1")
    provider.ensure_network(net)
    specs = [_spec(tag, i, name, net, ca, registry_info) for i, name in enumerate(NODE_NAMES)]
    started = time.monotonic()
    with ThreadPoolExecutor(len(specs)) as pool:
        infos = list(pool.map(provider.start_node, specs))
    print(f"\n{len(specs)} nodes started in parallel in {time.monotonic() - started:.2f}s")
    return {"tag": tag, "net": net, "specs": specs, "infos": infos, "ca_key": ca[1]}


def _client_tls(ca, tmp_path: Path, with_cert: bool) -> docker.tls.TLSConfig:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(ca[0])
    if not with_cert:
        return docker.tls.TLSConfig(ca_cert=str(ca_file), verify=True)
    key_pem, csr_pem = pki.new_client_key_and_csr("tester")
    (tmp_path / "key.pem").write_text(key_pem)
    (tmp_path / "cert.pem").write_text(pki.sign_csr(ca[0], ca[1], csr_pem))
    return docker.tls.TLSConfig(
        client_cert=(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")), ca_cert=str(ca_file), verify=True
    )


def _traces(provider: LocalProvider, tag: str) -> list[str]:
    """Whatever of cluster `tag` is still on the host."""
    found = [f"netns {n}" for n in netns.list_netns() if n.startswith(f"floe-{tag}-")]
    found += [f"link {link}" for link in netns.link_names() if tag in link]
    found += [f"iptables {line}" for line in firewall.listing() if f"floe:{tag}" in line]
    found += [f"cgroup {c}" for c in cgroups.names() if c.startswith(f"floe-{tag}-")]
    cluster_dir = provider.nodes_dir / tag
    found += [f"process {p} {argv}" for p, argv in processes.pids_referring_to(str(cluster_dir)).items()]
    found += [f"mount {line}" for line in Path("/proc/mounts").read_text().splitlines()
              if str(provider.home) in line]
    if cluster_dir.exists():
        found.append(f"directory {cluster_dir}")
    return found


# -- validation -----------------------------------------------------------------


@pytest.mark.parametrize("tag", ["ABCDEF12", "abc", "abcdef123", "../../x", "abcdef1;"])
def test_bad_tag_is_refused(provider, tag):
    with pytest.raises(ProviderError):
        provider.node_info(tag, "node-a")
    with pytest.raises(ProviderError):
        provider.purge_cluster(tag)


@pytest.mark.parametrize("name", ["", "-a", "a-", "a_b", "a/b", "../x", "a;reboot", "x" * 64, "a b"])
def test_bad_node_name_is_refused(provider, name, ca):
    with pytest.raises(ProviderError):
        provider.stop_node("abcdef12", name)
    net = NetworkSpec(cluster_tag="abcdef12", name="mgmt", subnet="10.170.9.0/24", gateway="10.170.9.1")
    spec = NodeSpec(cluster_tag="abcdef12", name=name, address="10.170.9.2", network=net,
                    docker_pool="10.170.90.0/23", tls=TLSMaterial("", "", ""))
    with pytest.raises(ProviderError):
        provider.start_node(spec)
    assert not (provider.nodes_dir / "abcdef12").exists()


def test_bad_subnet_and_image_names_are_refused(home):
    with pytest.raises(ProviderError):
        LocalProvider(home, "10.170.0.1/24")
    with pytest.raises(ProviderError):
        LocalProvider(home, "not-a-subnet")
    from floe.providers.local.images import mirror_name

    assert mirror_name("busybox", "library") == ("library/busybox:latest", "busybox:latest")
    assert mirror_name("foo/bar:1", "library") == ("library/foo/bar:1", "library/foo/bar:1")
    assert mirror_name("docker.io/foo/bar:1", "p1") == ("p1/foo/bar:1", "p1/foo/bar:1")
    assert mirror_name("quay.io/x/y:2", "p1") == ("p1/quay.io/x/y:2", "p1/quay.io/x/y:2")
    assert mirror_name("localhost:5000/y", "p1") == ("p1/localhost-5000/y:latest", "p1/localhost-5000/y:latest")
    with pytest.raises(ProviderError):
        mirror_name("Bad Name:1", "p1")


# -- registry -------------------------------------------------------------------


def test_registry_starts_then_is_adopted_quickly(provider):
    started = time.monotonic()
    info = provider.ensure_registry()
    first = time.monotonic() - started
    pid = processes.read_pid(provider.home / "registry" / "registry.pid")
    started = time.monotonic()
    again = LocalProvider(provider.home, INFRA, registry_port=REGISTRY_PORT).ensure_registry()
    second = time.monotonic() - started
    print(f"\nensure_registry: first {first:.3f}s, adopt {second:.3f}s")
    assert again == info and info.address == f"10.170.0.1:{REGISTRY_PORT}" and info.subnet == INFRA
    assert processes.read_pid(provider.home / "registry" / "registry.pid") == pid
    assert second < 0.5
    with httpx.Client(trust_env=False) as client:
        url = f"http://{info.address}/v2/library/busybox/tags/list"
        assert client.get(url).status_code == 401  # token auth: floe's realm decides
        ip, port = provider.registry_token_endpoint()
        token = client.get(f"http://{ip}:{port}/registry/token",
                           params={"scope": "repository:library/busybox:pull"}).json()["token"]
        tags = client.get(url, headers={"Authorization": f"Bearer {token}"}).json()
    assert tags["tags"] == ["latest"]
    # Bound to the infra address only, not to every interface.
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", REGISTRY_PORT), timeout=1):
        pass


# -- nodes ----------------------------------------------------------------------


def test_nodes_answer_on_unix_socket_with_labels(provider, cluster):
    for spec, info in zip(cluster["specs"], cluster["infos"], strict=True):
        assert info.running and info.pid and info.tls_url == f"tcp://{spec.address}:2376"
        client = provider.docker_client(info)
        facts = client.info()
        assert facts["Name"] == spec.name
        assert f"floe.node={spec.name}" in facts["Labels"]
        assert provider.node_info(cluster["tag"], spec.name) == info


def test_docker_clients_ask_the_api_version_once(provider, cluster):
    info = cluster["infos"][0]
    first = provider.docker_client(info)
    assert first.version()["ApiVersion"] == first.api.api_version == provider._api_version
    # Known now: building a client no longer talks to dockerd, so one on a socket that does not
    # exist builds (the SDK's "auto" would fail here) and fails only when used.
    gone = replace(info, docker_url=f"unix://{provider.home}/no-such.sock")
    client = provider.docker_client(gone)
    assert client.api.api_version == provider._api_version
    with pytest.raises(requests.exceptions.ConnectionError):
        client.ping()
    client.close()
    first.close()


def test_daemon_config_and_key_permissions(provider, cluster, registry_info):
    spec = cluster["specs"][0]
    node_dir = provider.nodes_dir / cluster["tag"] / spec.name
    config = json.loads((node_dir / "daemon.json").read_text())
    assert config["bip"] == "10.170.64.1/24"
    assert config["default-address-pools"] == [{"base": "10.170.65.0/24", "size": 26}]
    # TLS on ADDRESS:2376 is the node's TLS proxy's, not dockerd's (so it can take new certificates).
    assert config["hosts"] == [f"unix://{node_dir}/docker.sock"] and "tlsverify" not in config
    assert config["registry-mirrors"] == [f"http://{registry_info.address}"]
    assert config["insecure-registries"] == [registry_info.address]
    assert config["cgroup-parent"] == f"/floe-{cluster['tag']}-{spec.name}"
    assert (node_dir / "tls" / "key.pem").stat().st_mode & 0o777 == 0o600
    assert node_dir.stat().st_mode & 0o777 == 0o700


def test_tls_needs_a_client_certificate(cluster, ca, tmp_path, monkeypatch):
    # requests lets these variables override the CA a docker client is given.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    url = cluster["infos"][0].tls_url.replace("tcp://", "https://")
    with_cert = docker.DockerClient(base_url=url, tls=_client_tls(ca, tmp_path, with_cert=True))
    assert with_cert.ping()
    with pytest.raises(docker.errors.DockerException, match="(?i)bad certificate|certificate required"):
        docker.DockerClient(base_url=url, tls=_client_tls(ca, tmp_path, with_cert=False), timeout=5).ping()


def _proxy_pids(address: str) -> set[int]:
    """The TLS proxies serving `address` (by their argv: tlsproxy.py ADDRESS PORT …)."""
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"tlsproxy.py") for a in argv) and address.encode() in argv:
            pids.add(int(proc.name))
    return pids


def test_a_killed_tls_proxy_comes_back(cluster, ca, tmp_path, monkeypatch):
    """kill -9 of a node's TLS proxy (an exit status the node script's loop once stopped on):
    a new one serves the node again within seconds."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    spec = cluster["specs"][0]
    before = _proxy_pids(spec.address)
    assert len(before) == 1, before
    os.kill(before.pop(), signal.SIGKILL)
    end = time.monotonic() + 15
    while True:
        now = _proxy_pids(spec.address)
        if now:
            break
        assert time.monotonic() < end, "no TLS proxy came back"
        time.sleep(0.1)
    end = time.monotonic() + 15
    while True:
        try:
            assert _tls_client(spec, ca, tmp_path).ping()
            break
        except docker.errors.DockerException:
            assert time.monotonic() < end, "the node did not answer over TLS again"
            time.sleep(0.2)


def _tls_client(spec: NodeSpec, ca, tmp_path: Path) -> docker.DockerClient:
    url = f"https://{spec.address}:2376"
    return docker.DockerClient(base_url=url, tls=_client_tls(ca, tmp_path, with_cert=True), timeout=10)


def test_renew_node_tls_keeps_dockerd_and_containers(provider, cluster, tmp_path, monkeypatch):
    """New certificates of another CA: the old CA's clients are cut off at once, dockerd and its
    containers are untouched (same pid, same container, same start)."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    spec, info = cluster["specs"][2], cluster["infos"][2]
    old_ca = (spec.tls.ca_pem, None)
    local = provider.docker_client(info)
    # An image made here (no registry needed): busybox-static alone.
    archive = tmp_path / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(commands.binary("busybox"), arcname="bin/busybox")
    local.api.import_image(src=str(archive), repository="floe-sleeper", tag="1")
    box = local.containers.run("floe-sleeper:1", ["/bin/busybox", "sleep", "600"], detach=True)
    started = local.containers.get(box.id).attrs["State"]["StartedAt"]
    dockerd = local.info()["ID"]
    (tmp_path / "old").mkdir()
    old_client = _tls_client(spec, (spec.tls.ca_pem, _ca_key_of(cluster)), tmp_path / "old")
    assert old_client.ping()

    new_ca = pki.new_ca("floe-test-ca rotated")
    cert, key = pki.issue_server_cert(new_ca[0], new_ca[1], spec.name, ips=[spec.address], dns=[spec.name])
    t0 = time.monotonic()
    provider.renew_node_tls(replace(spec, tls=TLSMaterial(new_ca[0], cert, key)))
    print(f"\nnode TLS renewed in {time.monotonic() - t0:.2f}s")
    with pytest.raises((docker.errors.DockerException, requests.exceptions.RequestException)):
        old_client.ping()  # its connection was closed; a new one fails the server's verification
    (tmp_path / "mixed").mkdir()
    mixed = tmp_path / "mixed"
    shutil.copy(tmp_path / "old" / "cert.pem", mixed / "cert.pem")
    shutil.copy(tmp_path / "old" / "key.pem", mixed / "key.pem")
    (mixed / "ca.pem").write_text(new_ca[0])
    stale = docker.tls.TLSConfig(client_cert=(str(mixed / "cert.pem"), str(mixed / "key.pem")),
                                 ca_cert=str(mixed / "ca.pem"), verify=True)
    with pytest.raises(docker.errors.DockerException, match="(?i)unknown ca|bad certificate"):
        # A client certificate of the old CA is refused (the client trusts the new CA's server).
        docker.DockerClient(base_url=f"https://{spec.address}:2376", timeout=10, tls=stale).ping()
    (tmp_path / "new").mkdir()
    fresh = _tls_client(spec, new_ca, tmp_path / "new")
    assert fresh.containers.get(box.id).attrs["State"]["StartedAt"] == started
    assert fresh.info()["ID"] == dockerd
    # Idempotent, and the next start of the node serves the same files.
    provider.renew_node_tls(replace(spec, tls=TLSMaterial(new_ca[0], cert, key)))
    assert fresh.ping()
    box.remove(force=True)
    for c in (old_client, fresh):
        c.close()
    # The module's other tests use this node with the first CA again.
    provider.renew_node_tls(spec)
    assert old_ca[0] == spec.tls.ca_pem


def _ca_key_of(cluster) -> str:
    return cluster["ca_key"]


def test_busybox_runs_from_the_mirror_and_nodes_reach_each_other(provider, cluster):
    a, b = cluster["infos"][0], cluster["infos"][1]
    client = provider.docker_client(a)
    assert client.containers.run("busybox", ["echo", "hello"], remove=True) == b"hello\n"
    out = client.containers.run(
        "busybox", ["ping", "-c", "1", "-W", "2", b.address], network_mode="host", remove=True
    )
    assert b"1 packets received" in out
    # No default route: the world outside floe's networks is unreachable.
    with pytest.raises(docker.errors.ContainerError, match="(?i)unreachable"):
        client.containers.run("busybox", ["ping", "-c", "1", "-W", "1", "192.0.2.1"], network_mode="host",
                              remove=True)


def test_ensure_network_is_idempotent_and_repairs_rule_order(provider, cluster):
    tag, bridge = cluster["tag"], naming.bridge_name(cluster["tag"])

    def tagged() -> list[str]:
        return [line for line in firewall.listing() if f"floe:{tag}" in line]

    provider.ensure_network(cluster["net"])
    rules = tagged()
    assert len(rules) == 7  # forwarding within the bridge, host input (registry, its token endpoint), drops
    accept = next(r for r in rules if "-A FORWARD" in r and "ACCEPT" in r)
    commands.run(["iptables", "-w", "-D", *shlex.split(accept)[1:]])  # as a crash mid-way would leave it
    provider.ensure_network(cluster["net"])
    assert sorted(tagged()) == sorted(rules)
    forward = [r for r in firewall.listing() if r.startswith("-A FORWARD") and bridge in r]
    assert "ACCEPT" in forward[0] and all("DROP" in r for r in forward[1:])


def test_node_has_only_its_subnet_and_the_registry_route(cluster, registry_info):
    for spec in cluster["specs"]:
        routes = netns.routes_in(naming.netns_name(cluster["tag"], spec.name))
        assert not [r for r in routes if r[1] == 0], f"default route in {spec.name}: {routes}"
        assert (registry_info.subnet.split("/")[0], 24, cluster["net"].gateway) in routes


def test_new_provider_adopts_running_nodes(provider, cluster):
    again = LocalProvider(provider.home, INFRA, registry_port=REGISTRY_PORT)
    spec, info = cluster["specs"][1], cluster["infos"][1]
    started = time.monotonic()
    adopted = again.start_node(spec)
    assert time.monotonic() - started < 1.0
    assert adopted.pid == info.pid and adopted.running


def test_killed_node_restarts_with_its_data(provider, cluster):
    spec, info = cluster["specs"][2], cluster["infos"][2]
    client = provider.docker_client(info)
    client.images.pull("busybox", tag="latest")
    processes.kill([info.pid])
    assert processes.wait_gone([info.pid])
    assert not provider.node_info(cluster["tag"], spec.name).running
    restarted = provider.start_node(spec)
    assert restarted.pid != info.pid
    assert provider.docker_client(restarted).images.get("busybox:latest")
    cluster["infos"][2] = restarted


def test_import_image_archive(provider, cluster, tmp_path):
    client = provider.docker_client(cluster["infos"][0])
    image = client.images.pull("busybox", tag="latest")
    image.tag("floetest/tool", "1")
    archive = tmp_path / "tool.tar"
    with open(archive, "wb") as out:
        for chunk in client.images.get("floetest/tool:1").save(named=True):
            out.write(chunk)
    # Into library (what an admin's `floe image import --library` does): pulled anonymously.
    assert provider.import_image_archive(archive, "library") == ["library/floetest/tool:1"]
    other = provider.docker_client(cluster["infos"][1])
    assert other.containers.run("library/floetest/tool:1", ["echo", "ok"], remove=True) == b"ok\n"


def test_stop_node_and_delete_network_leave_nothing(provider, cluster):
    tag = cluster["tag"]
    assert tag in provider.host_cluster_tags()
    started = time.monotonic()
    with ThreadPoolExecutor(len(cluster["specs"])) as pool:
        list(pool.map(lambda s: provider.stop_node(tag, s.name), cluster["specs"]))
    print(f"\n{len(cluster['specs'])} nodes stopped in parallel in {time.monotonic() - started:.2f}s")
    provider.delete_network(cluster["net"])
    provider.stop_node(tag, "node-a")  # missing is fine
    provider.delete_network(cluster["net"])
    assert provider.node_info(tag, "node-a") is None
    assert _traces(provider, tag) == []
    assert not [p for p in processes.pids_referring_to(str(provider.nodes_dir)) if p in
                {i.pid for i in cluster["infos"]}]
    assert tag not in provider.host_cluster_tags()


ORPHAN_STARTER = """
import sys
from pathlib import Path
from floe import pki
from floe.providers.base import NetworkSpec, NodeSpec, RegistryInfo, TLSMaterial
from floe.providers.local import LocalProvider
home, tag, registry = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
ca_cert, ca_key = pki.new_ca("orphan")
cert, key = pki.issue_server_cert(ca_cert, ca_key, "orphan-0", ["10.170.2.2"], [])
net = NetworkSpec(tag, "mgmt", "10.170.2.0/24", "10.170.2.1")
provider = LocalProvider(home, sys.argv[4])
provider.ensure_network(net)
info = provider.start_node(NodeSpec(tag, "orphan-0", "10.170.2.2", net, "10.170.80.0/23",
                                    TLSMaterial(ca_cert, cert, key), RegistryInfo(registry, sys.argv[4])))
print(info.pid)
"""


def test_node_outlives_its_starter_and_purge_cluster_removes_the_orphan(provider, registry_info, made_tags):
    tag = _new_tag()
    made_tags.add(tag)
    # Started by a process that exits, as a floe server that crashed would.
    out = subprocess.run(
        [sys.executable, "-c", ORPHAN_STARTER, str(provider.home), tag, registry_info.address, INFRA],
        capture_output=True, text=True, check=True, timeout=120,
    )
    pid = int(out.stdout.split()[-1])
    forgetful = LocalProvider(provider.home, INFRA, registry_port=REGISTRY_PORT)
    info = forgetful.node_info(tag, "orphan-0")
    assert info is not None and info.running and info.pid == pid
    assert forgetful.docker_client(info).ping()
    assert tag in forgetful.host_cluster_tags() and tag in forgetful.home_cluster_tags()
    # Purged from the host alone, as if the database had lost the cluster.
    removed = forgetful.purge_cluster(tag)
    assert any("process" in r for r in removed) and any("bridge" in r for r in removed)
    assert not processes.running(pid)
    assert _traces(provider, tag) == []
    assert tag not in forgetful.host_cluster_tags()
    assert forgetful.purge_cluster(tag) == []


def test_spec_change_of_flavor_and_restart_idempotence(provider, registry_info, ca, made_tags):
    """A node with a flavor gets cgroup limits; start_node after a lost netns recreates it."""
    tag = _new_tag()
    made_tags.add(tag)
    net = NetworkSpec(cluster_tag=tag, name="mgmt", subnet="10.170.3.0/24", gateway="10.170.3.1")
    spec = replace(_spec(tag, 1, "small-0", net, ca, registry_info), cpus=0.5, memory_mb=512)
    info = provider.start_node(spec)  # the network is created on demand
    cg = naming.cgroup_name(tag, "small-0")
    assert Path(f"/sys/fs/cgroup/cpu/{cg}/cpu.cfs_quota_us").read_text().strip() == "50000"
    assert Path(f"/sys/fs/cgroup/memory/{cg}/memory.limit_in_bytes").read_text().strip() == str(512 << 20)
    assert os.getpid() not in cgroups.members(cg) and info.pid not in cgroups.members(cg)
    provider.stop_node(tag, "small-0")
    provider.delete_network(net)
    assert _traces(provider, tag) == []


def test_renew_restarts_a_node_whose_dockerd_served_tls_itself(provider, registry_info, ca, made_tags):
    """A node started before floe's TLS proxy (dockerd on :2376 itself, which cannot reload its
    certificates) is restarted once in the new layout: its data stays, the new CA is served."""
    tag = _new_tag()
    made_tags.add(tag)
    net = NetworkSpec(cluster_tag=tag, name="mgmt", subnet="10.170.4.0/24", gateway="10.170.4.1")
    spec = _spec(tag, 2, "legacy-0", net, ca, registry_info)
    info = provider.start_node(spec)
    paths = provider._node_paths(tag, "legacy-0")
    # Make it what an older floe started: no proxy, dockerd serving TLS itself.
    assert provider._lock("node", tag, "legacy-0").acquire(timeout=5)
    try:
        members = cgroups.members(naming.cgroup_name(tag, "legacy-0"))
        processes.kill(members | {info.pid})
        assert processes.wait_gone(members | {info.pid})
        config = json.loads(paths.config.read_text())
        config["hosts"] = [f"unix://{paths.sock}", f"tcp://{spec.address}:2376"]
        config.update(tlsverify=True, tlscacert=str(paths.tls_dir / "ca.pem"),
                      tlscert=str(paths.tls_dir / "cert.pem"), tlskey=str(paths.tls_dir / "key.pem"))
        commands.write_file(paths.config, json.dumps(config))
        procs = cgroups.prepare(naming.cgroup_name(tag, "legacy-0"), None, None)
        pid = node_module.launch(naming.netns_name(tag, "legacy-0"), "legacy-0", paths, procs).pid
        node_module.wait_ready(paths, pid)
    finally:
        provider._lock("node", tag, "legacy-0").release()
    assert node_module.dockerd_serves_tls(paths)
    provider.docker_client(provider.node_info(tag, "legacy-0")).volumes.create("kept")

    new_ca = pki.new_ca("legacy rotated")
    cert, key = pki.issue_server_cert(new_ca[0], new_ca[1], spec.name, ips=[spec.address], dns=[spec.name])
    provider.renew_node_tls(replace(spec, tls=TLSMaterial(new_ca[0], cert, key)))
    assert not node_module.dockerd_serves_tls(paths)
    after = provider.node_info(tag, "legacy-0")
    assert after.running and after.pid != pid
    assert "kept" in [v.name for v in provider.docker_client(after).volumes.list()]
    node_module.wait_serving(spec.address, new_ca[0], timeout=5)
    provider.stop_node(tag, "legacy-0")
    provider.delete_network(net)
    assert _traces(provider, tag) == []
