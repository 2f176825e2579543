"""Project networks on the local provider, against the real thing: bridges, veths, iptables, dockerd.

Two clusters: `one` (nodes a and b) on project network X, `two` (node c) on network Y, as two
projects would have them. Needs root and what LocalProvider.check() lists; skipped otherwise.
Uses only 10.173.0.0/16 (infra 10.173.0.0/24) and its own temporary home, and leaves nothing.
"""

from __future__ import annotations

import secrets
import shutil
import time
from dataclasses import replace
from pathlib import Path

import docker
import pytest
from pyroute2 import IPRoute

from floe import pki
from floe.host import cgroups, firewall, netns, processes
from floe.providers.base import (
    NetworkSpec,
    NodeNetwork,
    NodeSpec,
    ProjectNetworkSpec,
    ProviderError,
    ProviderWithNetworks,
    TLSMaterial,
)
from floe.providers.local import LocalProvider, naming
from floe.providers.local import networks as project_networks

INFRA = "10.173.0.0/24"
REGISTRY_PORT = 5000
X, Y, Z = "10.173.10.0/24", "10.173.11.0/24", "10.173.12.0/24"

pytestmark = pytest.mark.timeout(300)


def _tag() -> str:
    return secrets.token_hex(4)


def _traces(provider: LocalProvider, tags: set[str]) -> list[str]:
    """Whatever of these clusters or project networks is still on the host."""
    found = [f"netns {n}" for n in netns.list_netns() if any(n.startswith(f"floe-{t}-") for t in tags)]
    found += [f"link {link}" for link in netns.link_names() if any(t in link for t in tags)]
    found += [f"iptables {line}" for line in firewall.listing() if any(t in line for t in tags)]
    found += [f"cgroup {c}" for c in cgroups.names() if any(c.startswith(f"floe-{t}-") for t in tags)]
    for t in tags:
        found += [f"process {p}" for p in processes.pids_referring_to(f"{provider.nodes_dir / t}/")]
    found += [f"marker {d}" for d in (provider.home / "networks").glob("*") if d.name in tags]
    return found


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("floe-netw")


@pytest.fixture(scope="module")
def made() -> set[str]:
    """Tags of the clusters and networks the tests make; purged whatever happens."""
    return set()


@pytest.fixture(scope="module")
def provider(runtime):
    return runtime.provider


@pytest.fixture(scope="module")
def runtime(home, made):
    """floe's runtime over the local provider (no engine): its database and the registry's token realm."""
    prov = LocalProvider(home, INFRA, registry_port=REGISTRY_PORT)
    try:
        prov.check()
    except ProviderError as exc:
        pytest.skip(f"local provider cannot run here: {exc}")
    from floe.config import Settings
    from floe.server import build_runtime, start_registry_realm

    runtime = build_runtime(Settings(home=home), prov, engine=False)
    realm = start_registry_realm(runtime, ensure=False)
    yield runtime
    if realm is not None:
        realm.should_exit = True
    runtime.db.dispose()
    for tag in made:
        prov.purge_cluster(tag)
    prov.purge_all(only_this_home=True)
    leaks = _traces(prov, made)
    shutil.rmtree(home, ignore_errors=True)
    assert leaks == [], f"left on the host: {leaks}"


@pytest.fixture(scope="module")
def registry(provider):
    return provider.ensure_registry()


def _spec(tag: str, third: int, index: int, name: str, registry, networks=()) -> NodeSpec:
    net = NetworkSpec(cluster_tag=tag, name="mgmt", subnet=f"10.173.{third}.0/24", gateway=f"10.173.{third}.1")
    address = f"10.173.{third}.{index + 2}"
    ca_cert, ca_key = pki.new_ca(f"ca-{tag}")
    cert, key = pki.issue_server_cert(ca_cert, ca_key, name, ips=[address], dns=[name])
    return NodeSpec(
        cluster_tag=tag, name=name, address=address, network=net,
        docker_pool=f"10.173.{64 + 2 * (index + 4 * (third - 1))}.0/23",
        tls=TLSMaterial(ca_pem=ca_cert, cert_pem=cert, key_pem=key), registry=registry,
        networks=tuple(networks),
    )


@pytest.fixture(scope="module")
def world(provider, registry, made):
    """Cluster one: a (10.173.10.2) and b (.3) on X; cluster two: c (10.173.11.2) on Y."""
    one, two, x, y, z = (_tag() for _ in range(5))
    made.update({one, two, x, y, z})
    provider.ensure_project_network(ProjectNetworkSpec(x, X))
    a = _spec(one, 1, 0, "node-a", registry, [NodeNetwork(x, "eth1", "10.173.10.2", X)])
    b = _spec(one, 1, 1, "node-b", registry, [NodeNetwork(x, "eth1", "10.173.10.3", X)])
    # Y's bridge is made on demand by start_node.
    c = _spec(two, 2, 0, "node-c", registry, [NodeNetwork(y, "eth1", "10.173.11.2", Y)])
    infos = {s.name: provider.start_node(s) for s in (a, b, c)}
    return {"one": one, "two": two, "x": x, "y": y, "z": z, "specs": {"node-a": a, "node-b": b, "node-c": c},
            "infos": infos}


def _run(provider, info, *cmd: str) -> str:
    """A busybox container on the node's own network stack (--network host); its output."""
    client = provider.docker_client(info)
    return client.containers.run("busybox", list(cmd), network_mode="host", remove=True).decode()


def _unreachable(provider, info, address: str) -> bool:
    try:
        out = _run(provider, info, "ping", "-c", "2", "-W", "1", address)
    except docker.errors.ContainerError:
        return True
    return "0 packets received" in out


def _rules(tag: str) -> list[str]:
    return [line for line in firewall.listing() if naming.project_comment(tag) in line]


def _ifindex(name: str) -> int:
    with IPRoute() as ipr:
        return ipr.link_lookup(ifname=name)[0]


# -- validation -------------------------------------------------------------------


def test_local_provider_has_the_capability(provider):
    assert isinstance(provider, ProviderWithNetworks)


@pytest.mark.parametrize("net", [
    NodeNetwork("abcdef12", "eth0", "10.173.10.9", X),  # the cluster's own interface
    NodeNetwork("abcdef12", "lo", "10.173.10.9", X),
    NodeNetwork("abcdef12", "eth1;reboot", "10.173.10.9", X),
    NodeNetwork("abcdef12", "eth1", "10.173.99.9", X),  # not in the subnet
    NodeNetwork("abcdef12", "eth1", "10.173.10.255", X),  # the broadcast address
    NodeNetwork("abcdef12", "eth1", "10.173.10.9", "10.173.10.0/33"),
    NodeNetwork("ABCDEF12", "eth1", "10.173.10.9", X),
    NodeNetwork("../../x1", "eth1", "10.173.10.9", X),
])
def test_bad_node_networks_are_refused_before_anything_changes(provider, world, net):
    links = set(netns.link_names())
    with pytest.raises(ProviderError):
        provider.attach_node_network(world["one"], "node-a", net)
    with pytest.raises(ProviderError):
        provider.start_node(replace(world["specs"]["node-a"], networks=(net,)))
    assert set(netns.link_names()) == links


def test_bad_project_network_specs_are_refused(provider):
    for spec in (ProjectNetworkSpec("xyz", X), ProjectNetworkSpec("abcdef12", "10.173.10.0/24; rm")):
        with pytest.raises(ProviderError):
            provider.ensure_project_network(spec)
    with pytest.raises(ProviderError):
        provider.delete_project_network("flb-1234")


def test_attach_to_a_node_that_is_not_there_is_refused(provider, world):
    with pytest.raises(ProviderError, match="not running"):
        provider.attach_node_network(world["one"], "node-zz", NodeNetwork(world["x"], "eth1", "10.173.10.9", X))
    assert naming.netns_name(world["one"], "node-zz") not in netns.list_netns()  # not made by asking


# -- one network, two nodes ---------------------------------------------------------


def test_bridge_holds_no_host_address_and_forwards_only_within_itself(provider, world):
    bridge = naming.project_bridge_name(world["x"])
    with IPRoute() as ipr:
        assert list(ipr.get_addr(index=_ifindex(bridge))) == []
    assert Path(f"/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6").read_text().strip() == "1"
    assert sorted(netns.bridge_ports(bridge)) == sorted(
        naming.node_net_veth_name(world["one"], n, world["x"]) for n in ("node-a", "node-b"))
    rules = _rules(world["x"])
    assert len(rules) == 4, rules
    forward = [r for r in firewall.listing() if r.startswith("-A FORWARD") and f"{bridge} " in r + " "]
    assert "ACCEPT" in forward[0] and f"-o {bridge}" in forward[0] and all("DROP" in r for r in forward[1:])
    assert any(r.startswith("-A INPUT") and "DROP" in r for r in rules)
    assert world["x"] in provider.project_network_tags()


def test_nodes_on_a_network_see_eth1_and_reach_each_other(provider, world):
    a, b = world["infos"]["node-a"], world["infos"]["node-b"]
    shown = _run(provider, a, "ip", "-4", "-o", "addr", "show", "dev", "eth1")
    assert "inet 10.173.10.2/24" in shown
    out = _run(provider, a, "ping", "-c", "1", "-W", "2", "10.173.10.3")
    assert "1 packets received" in out
    assert "1 packets received" in _run(provider, b, "ping", "-c", "1", "-W", "2", "10.173.10.2")
    links = netns.links_in(naming.netns_name(world["one"], "node-a"))
    assert links["eth1"]["alias"] == naming.project_comment(world["x"]) and links["eth1"]["up"]


def test_attach_is_idempotent_and_converges(provider, world):
    spec = world["specs"]["node-a"]
    veth = naming.node_net_veth_name(world["one"], "node-a", world["x"])
    before = _ifindex(veth)
    t0 = time.monotonic()
    provider.attach_node_network(world["one"], "node-a", spec.networks[0])
    provider.attach_node_network(world["one"], "node-a", spec.networks[0])
    print(f"\nattach of an existing interface: {(time.monotonic() - t0) / 2 * 1000:.0f} ms")
    assert _ifindex(veth) == before  # the same pair: traffic on it never stopped
    # Adopting the running node with its networks changes nothing either.
    assert provider.start_node(spec).pid == world["infos"]["node-a"].pid
    assert _ifindex(veth) == before
    # Someone removed the address inside the node: the next attach puts it back.
    ns = naming.netns_name(world["one"], "node-a")
    with IPRoute(netns=ns, flags=0) as nsr:
        nsr.addr("del", index=nsr.link_lookup(ifname="eth1")[0], address="10.173.10.2", prefixlen=24)
    provider.attach_node_network(world["one"], "node-a", spec.networks[0])
    assert netns.links_in(ns)["eth1"]["ipv4"] == ["10.173.10.2/24"]
    assert _ifindex(veth) == before


def test_attaching_a_second_network_keeps_workloads_running(provider, world):
    a, b = world["infos"]["node-a"], world["infos"]["node-b"]
    client = provider.docker_client(a)
    box = client.containers.run("busybox", ["sleep", "600"], detach=True)
    try:
        started = client.containers.get(box.id).attrs["State"]["StartedAt"]
        dockerd = client.info()["ID"]
        t0 = time.monotonic()
        for name, address in (("node-a", "10.173.12.2"), ("node-b", "10.173.12.3")):
            provider.attach_node_network(world["one"], name, NodeNetwork(world["z"], "eth2", address, Z))
        print(f"\nsecond network attached to 2 running nodes in {time.monotonic() - t0:.2f}s")
        again = client.containers.get(box.id)
        assert again.status == "running" and again.attrs["State"]["StartedAt"] == started
        assert again.attrs["RestartCount"] == 0 and client.info()["ID"] == dockerd
        assert provider.node_info(world["one"], "node-a").pid == a.pid
        assert "inet 10.173.12.2/24" in _run(provider, a, "ip", "-4", "-o", "addr", "show", "dev", "eth2")
        assert "1 packets received" in _run(provider, b, "ping", "-c", "1", "-W", "2", "10.173.12.2")
        # eth1 is as it was.
        assert "1 packets received" in _run(provider, a, "ping", "-c", "1", "-W", "2", "10.173.10.3")
    finally:
        box.remove(force=True)


# -- isolation --------------------------------------------------------------------------


def test_networks_are_isolated_from_each_other_and_from_the_host(provider, world):
    a, c = world["infos"]["node-a"], world["infos"]["node-c"]
    assert "inet 10.173.11.2/24" in _run(provider, c, "ip", "-4", "-o", "addr", "show", "dev", "eth1")
    # No route: X's node cannot even try Y's addresses.
    assert _unreachable(provider, a, "10.173.11.2")
    ns = naming.netns_name(world["one"], "node-a")
    # Force the packets onto X's bridge (on-link routes through eth1): Y's node is not on it,
    # and neither floe's infra address nor the cluster gateway (the host's) answers there.
    targets = ("10.173.11.2/32", "10.173.0.1/32", "10.173.1.1/32")
    with IPRoute(netns=ns, flags=0) as nsr:
        eth1 = nsr.link_lookup(ifname="eth1")[0]
        for dst in targets:
            nsr.route("replace", dst=dst, oif=eth1)
    try:
        for dst in targets:
            assert _unreachable(provider, a, dst.split("/")[0]), dst
        # The host never answered ARP on the bridge: no host link address learned in the node.
        with IPRoute(netns=ns, flags=0) as nsr:
            # Entries with a link address: REACHABLE, STALE, DELAY or PROBE.
            learned = {n.get_attr("NDA_DST") for n in nsr.get_neighbours(ifindex=eth1)
                       if n.get_attr("NDA_LLADDR") and n["state"] & 0x1E}
        assert not learned & {"10.173.0.1", "10.173.1.1", "10.173.11.2"}, learned
    finally:
        with IPRoute(netns=ns, flags=0) as nsr:
            for dst in targets:
                nsr.route("del", dst=dst, oif=eth1)
    # The node's own cluster network is untouched by all this.
    assert "1 packets received" in _run(provider, a, "ping", "-c", "1", "-W", "2", "10.173.1.3")


# -- teardown ---------------------------------------------------------------------------------


def test_stop_node_removes_its_interfaces_and_purge_finds_them_by_name(provider, world):
    one, x, z = world["one"], world["x"], world["z"]
    b_veths = [naming.node_net_veth_name(one, "node-b", t) for t in (x, z)]
    assert all(netns.link_exists(v) for v in b_veths)
    provider.stop_node(one, "node-b")
    assert not any(netns.link_exists(v) for v in b_veths)
    assert netns.link_exists(naming.project_bridge_name(x))  # a still uses it
    # A host side left alone (as a crash between its creation and the node's death might leave
    # one) is found by its name when the cluster is purged.
    ghost = naming.node_net_veth_name(one, "ghost", x)
    with IPRoute() as ipr:
        ipr.link("add", ifname=ghost, kind="veth", peer=f"fltg{one[:6]}")
    assert one in provider.host_cluster_tags()
    removed = provider.purge_cluster(one)
    assert f"veth {ghost}" in removed
    assert not netns.link_exists(naming.node_net_veth_name(one, "node-a", x))
    assert _traces(provider, {one}) == []
    # The networks stay until deleted; deleting them takes bridge, rules and marker.
    for tag in (x, z):
        assert netns.bridge_ports(naming.project_bridge_name(tag)) == []
        provider.delete_project_network(tag)
        provider.delete_project_network(tag)  # missing is fine
        assert _rules(tag) == [] and not netns.link_exists(naming.project_bridge_name(tag))
        assert tag not in provider.project_network_tags()


def test_deleting_a_network_still_in_use_takes_its_node_interfaces(provider, world):
    two, y = world["two"], world["y"]
    veth = naming.node_net_veth_name(two, "node-c", y)
    assert netns.link_exists(veth)
    provider.delete_project_network(y)
    assert not netns.link_exists(veth) and not netns.link_exists(naming.project_bridge_name(y))
    # The node runs on; the next attach makes the network and the interface again.
    provider.attach_node_network(two, "node-c", world["specs"]["node-c"].networks[0])
    assert netns.link_exists(veth) and y in provider.project_network_tags()
    provider.stop_node(two, "node-c")
    provider.delete_network(world["specs"]["node-c"].network)
    assert not netns.link_exists(veth)
    # purge_project_networks is what `floe cleanup --all` runs for this home.
    assert any(f"bridge {naming.project_bridge_name(y)}" == r for r in provider.purge_project_networks())
    assert _traces(provider, {two, y}) == []
    assert project_networks.home_tags(provider.home) == set()


def test_cleanup_removes_only_the_networks_the_database_forgot(provider, runtime, made):
    from floe.db.models import Network
    from floe.services import identity, maintenance

    known, orphan = _tag(), _tag()
    made.update({known, orphan})
    with runtime.db.session() as s:
        project = identity.create_project(s, "netw-cleanup")
        s.add(Network(project_id=project.id, name="kept", cidr="10.173.30.0/24", host_tag=known))
    provider.ensure_project_network(ProjectNetworkSpec(known, "10.173.30.0/24"))
    provider.ensure_project_network(ProjectNetworkSpec(orphan, "10.173.31.0/24"))
    # Another floe's network on the same host (no marker in this home) is never this one's orphan.
    stranger = _tag()
    made.add(stranger)
    netns.ensure_isolated_bridge(naming.project_bridge_name(stranger))
    try:
        removed = maintenance.cleanup_orphans(runtime)
        assert f"project network {orphan}" in removed
        assert not netns.link_exists(naming.project_bridge_name(orphan)) and _rules(orphan) == []
        assert netns.link_exists(naming.project_bridge_name(known)) and len(_rules(known)) == 4
        assert netns.link_exists(naming.project_bridge_name(stranger))
        assert provider.project_network_tags() >= {known} and orphan not in provider.project_network_tags()
        assert not [r for r in maintenance.cleanup_orphans(runtime) if "project network" in r]
    finally:
        netns.delete_link(naming.project_bridge_name(stranger))
        provider.delete_project_network(known)
    assert _traces(provider, {known, orphan, stranger}) == []
