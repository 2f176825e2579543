"""Host objects for the longest names, and per-home names for floe's own infra objects (real netlink).

Needs root and the local provider's programs; skipped otherwise. Uses only 10.170.200.0/21
(test_local.py uses 10.170.0.0/24 for its infra, 10.170.1-9.x and 10.170.64-90.x) and its own
temporary homes, and purges everything it made.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import docker
import pytest

from floe import pki
from floe.engine.steps import node_name
from floe.host import cgroups, firewall, netns, processes
from floe.providers.base import NetworkSpec, NodeSpec, ProviderError, TLSMaterial
from floe.providers.local import LocalProvider, naming, node

pytestmark = pytest.mark.timeout(300)

LONGEST_CLUSTER = "l" + "0123456789" * 6 + "z9"  # 63 characters: the longest name the API accepts
LONGEST_NODE = "n" * 54 + "-master-0"  # 63: a node name may be that long (check_node_name)
SUBNET, GATEWAY, ADDRESS, POOL = "10.170.201.0/24", "10.170.201.1", "10.170.201.2", "10.170.202.0/23"
SHARED_RANGE = "10.170.204.0/24"  # the infra range two homes share below
# The host rules of a home's infra network: loopback may reach it; others may not reach the registry
# or its token endpoint (registry port + 1).
INFRA_RULES = 3


def _skip_unless_local(provider: LocalProvider) -> None:
    try:
        provider.check()
    except ProviderError as exc:
        pytest.skip(f"local provider cannot run here: {exc}")


def _long_home(base: Path, length: int) -> Path:
    """A home path of exactly `length` characters under `base`."""
    pad = length - len(str(base)) - 1
    assert pad > 0, base
    return base / ("h" * pad)


def _traces(provider: LocalProvider, tag: str) -> list[str]:
    found = [f"netns {n}" for n in netns.list_netns() if n.startswith(f"floe-{tag}-")]
    found += [f"link {link}" for link in netns.link_names() if tag in link]
    found += [f"iptables {line}" for line in firewall.listing() if f"floe:{tag}" in line]
    found += [f"cgroup {c}" for c in cgroups.names() if c.startswith(f"floe-{tag}-")]
    found += [f"process {p}" for p in processes.pids_referring_to(str(provider.nodes_dir / tag))]
    found += [f"mount {m}" for m in Path("/proc/mounts").read_text().splitlines() if str(provider.home) in m]
    if (provider.nodes_dir / tag).exists():
        found.append(f"directory {provider.nodes_dir / tag}")
    return found


# -- names ------------------------------------------------------------------------


def test_node_names_fit_every_host_object():
    for cluster in (LONGEST_CLUSTER, "x", "1234567890", "9" * 63):
        name = node_name(cluster, "worker", 123456)
        naming.check_node_name(name)
        assert len(naming.veth_name("abcdef12", name)) <= 15  # IFNAMSIZ - 1
        assert len(naming.netns_name("abcdef12", name)) <= 255 and "/" not in naming.netns_name("abcdef12", name)
        assert len(naming.cgroup_name("abcdef12", name)) <= 255
        assert len(naming.bridge_name("abcdef12")) <= 15
        assert naming.COMMENT_RE.search(f'--comment "{naming.comment("abcdef12")}"')


def test_node_directory_is_the_name_when_it_fits_and_a_short_stable_form_otherwise():
    assert naming.node_dir_name("node-a", 63) == "node-a"
    assert naming.node_dir_name(LONGEST_NODE, 63) == LONGEST_NODE
    short = naming.node_dir_name(LONGEST_NODE, 30)
    assert len(short) == 30 and short == naming.node_dir_name(LONGEST_NODE, 30)
    assert short.startswith(LONGEST_NODE[:19]) and not naming.NODE_NAME_RE.match(short)
    # Two names alike up to the cut get different directories.
    assert naming.node_dir_name("a" * 62 + "b", 30) != naming.node_dir_name("a" * 62 + "c", 30)
    assert naming.node_dir_name(LONGEST_NODE, 11).startswith("_")
    with pytest.raises(ProviderError):
        naming.node_dir_name(LONGEST_NODE, 10)


def test_a_home_too_long_for_any_socket_is_refused_at_check(tmp_path):
    provider = LocalProvider(_long_home(tmp_path, 69), "10.170.200.0/24")
    with pytest.raises(ProviderError, match="FLOE_HOME .* is too long.* at most 68 characters"):
        provider.check()
    longest = LocalProvider(_long_home(tmp_path, 68), "10.170.200.0/24")
    sock = longest._node_paths("abcdef12", LONGEST_NODE).sock
    assert len(str(sock)) == node.MAX_SOCKET_PATH and sock.parent.name.startswith("_")


def test_longest_node_name_under_a_long_home_runs_and_leaves_nothing(tmp_path_factory, monkeypatch):
    # requests lets these variables override the CA a docker client is given.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    base = tmp_path_factory.mktemp("names")
    home = _long_home(base, 60)
    provider = LocalProvider(home, "10.170.200.0/24", registry_port=5000)
    _skip_unless_local(provider)
    tag = secrets.token_hex(4)
    net = NetworkSpec(cluster_tag=tag, name="mgmt", subnet=SUBNET, gateway=GATEWAY)
    ca_cert, ca_key = pki.new_ca(f"floe cluster {tag}", unit=LONGEST_CLUSTER)
    cert, key = pki.issue_server_cert(ca_cert, ca_key, LONGEST_NODE, ips=[ADDRESS], dns=[LONGEST_NODE])
    spec = NodeSpec(cluster_tag=tag, name=LONGEST_NODE, address=ADDRESS, network=net, docker_pool=POOL,
                    tls=TLSMaterial(ca_cert, cert, key), labels={"floe.node": LONGEST_NODE})
    full = provider.nodes_dir / tag / LONGEST_NODE / node.SOCKET_NAME
    assert len(str(full)) > node.MAX_SOCKET_PATH  # what failed before
    try:
        info = provider.start_node(spec)
        sock = Path(info.docker_url.removeprefix("unix://"))
        assert len(str(sock)) <= node.MAX_SOCKET_PATH and sock.parent.parent == provider.nodes_dir / tag
        assert sock.parent.name != LONGEST_NODE and sock.parent.name.startswith(LONGEST_NODE[:8])
        client = provider.docker_client(info)
        facts = client.info()
        assert facts["Name"] == LONGEST_NODE  # the hostname, which Swarm names the node by
        assert f"floe.node={LONGEST_NODE}" in facts["Labels"]
        client.close()
        # Over TLS, checked against the node's certificate for its full name.
        (base / "ca.pem").write_text(ca_cert)
        ckey, csr = pki.new_client_key_and_csr("tester")
        (base / "key.pem").write_text(ckey)
        (base / "cert.pem").write_text(pki.sign_csr(ca_cert, ca_key, csr))
        tls = docker.tls.TLSConfig(client_cert=(str(base / "cert.pem"), str(base / "key.pem")),
                                   ca_cert=str(base / "ca.pem"), verify=True)
        remote = docker.DockerClient(base_url=info.tls_url.replace("tcp://", "https://"), tls=tls)
        try:
            assert remote.info()["Name"] == LONGEST_NODE
        finally:
            remote.close()
        # Another provider (a restarted server) finds and adopts it from its name alone.
        again = LocalProvider(home, "10.170.200.0/24", registry_port=5000)
        assert again.node_info(tag, LONGEST_NODE) == info
        assert again.start_node(spec).pid == info.pid
        assert tag in again.home_cluster_tags()
        assert naming.netns_name(tag, LONGEST_NODE) in netns.list_netns()
        again.stop_node(tag, LONGEST_NODE)
        assert not processes.running(info.pid)
        again.delete_network(net)
        assert _traces(provider, tag) == []
        # Started again and purged from the host alone (as after a lost database).
        info = provider.start_node(spec)
        removed = LocalProvider(home, "10.170.200.0/24").purge_cluster(tag)
        assert any("process" in r for r in removed) and not processes.running(info.pid)
        assert _traces(provider, tag) == []
    finally:
        provider.purge_cluster(tag)
        provider.purge_all(only_this_home=True)
        shutil.rmtree(base, ignore_errors=True)


def test_short_names_keep_their_full_directory(tmp_path):
    """Directories of existing clusters (all of which fit, or they could not have started) do not move."""
    provider = LocalProvider(tmp_path / "h", "10.170.200.0/24")
    paths = provider._node_paths("abcdef12", "node-a")
    assert paths.dir == tmp_path / "h" / "nodes" / "abcdef12" / "node-a" and paths.node == "node-a"


# -- per-home infra names -----------------------------------------------------------


def _infra_state(provider: LocalProvider) -> dict[str, object]:
    comment = naming.infra_comment(provider.home, provider.infra_net)
    return {
        "link": netns.link_exists(naming.infra_link_name(provider.home, provider.infra_net)),
        "rules": len([line for line in firewall.listing() if f'"{comment}"' in line or f" {comment} " in line]),
    }


@pytest.fixture
def short_tmp(tmp_path_factory) -> Path:
    """A temporary directory with a short path: a test's own tmp_path may be too long for a home."""
    return tmp_path_factory.mktemp("ih")


@pytest.fixture
def two_homes(short_tmp):
    """Two floes on one host with the same address range (different registry ports)."""
    a = LocalProvider(short_tmp / "a", SHARED_RANGE, registry_port=5000)
    b = LocalProvider(short_tmp / "b", SHARED_RANGE, registry_port=5001)
    _skip_unless_local(a)
    yield a, b
    for p in (a, b):
        p.purge_infra()
        p._remove_legacy_infra()


def test_two_homes_with_one_range_have_their_own_infra_and_purge_only_theirs(two_homes):
    a, b = two_homes
    assert naming.infra_link_name(a.home, a.infra_net) != naming.infra_link_name(b.home, b.infra_net)
    assert naming.infra_comment(a.home, a.infra_net) != naming.infra_comment(b.home, b.infra_net)
    a.ensure_infra()
    b.ensure_infra()
    assert _infra_state(a) == _infra_state(b) == {"link": True, "rules": INFRA_RULES}
    removed = a.purge_infra()
    assert any("infra link" in r for r in removed)
    assert _infra_state(a) == {"link": False, "rules": 0}
    assert _infra_state(b) == {"link": True, "rules": INFRA_RULES}
    # b's registry address is still a local address of the host.
    assert b.infra_ip in subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True).stdout


def test_two_homes_with_different_ranges_too(short_tmp):
    a = LocalProvider(short_tmp / "a", "10.170.205.0/24")
    b = LocalProvider(short_tmp / "b", "10.170.206.0/24")
    _skip_unless_local(a)
    try:
        a.ensure_infra()
        b.ensure_infra()
        LocalProvider(short_tmp / "a", "10.170.205.0/24").purge_all(only_this_home=True)
        assert _infra_state(a) == {"link": False, "rules": 0}
        assert _infra_state(b) == {"link": True, "rules": INFRA_RULES}
    finally:
        a.purge_infra()
        b.purge_infra()


def _make_legacy_infra(provider: LocalProvider) -> None:
    """What an older floe made: the range-only link and comment, and the registry's config."""
    netns.ensure_link(
        naming.legacy_infra_link_name(provider.infra_net), "bridge", provider.infra_ip, provider.infra_net.prefixlen
    )
    firewall.ensure(provider._infra_rules(), naming.legacy_infra_comment(provider.infra_net), top=False)
    provider._registry_paths.dir.mkdir(parents=True)
    provider._registry_paths.config.write_text("{}\n")


def _legacy_rules(provider: LocalProvider) -> list[str]:
    return [line for line in firewall.listing() if naming.legacy_infra_comment(provider.infra_net) in line]


def test_an_upgraded_home_still_cleans_up_its_old_infra_names(two_homes):
    a, b = two_homes
    _make_legacy_infra(a)
    legacy = naming.legacy_infra_link_name(a.infra_net)
    assert netns.link_exists(legacy) and len(_legacy_rules(a)) == INFRA_RULES
    removed = a.purge_infra()  # `floe cleanup --all` right after the upgrade
    assert f"infra link {legacy}" in removed
    assert not netns.link_exists(legacy) and _legacy_rules(a) == []


def test_an_upgraded_home_moves_to_its_own_names_at_start(two_homes):
    a, b = two_homes
    _make_legacy_infra(a)
    b.ensure_infra()  # another, already upgraded home on the same range
    a.ensure_infra()
    assert not netns.link_exists(naming.legacy_infra_link_name(a.infra_net)) and _legacy_rules(a) == []
    assert _infra_state(a) == _infra_state(b) == {"link": True, "rules": INFRA_RULES}
    a.purge_infra()
    assert _infra_state(a) == {"link": False, "rules": 0} and _infra_state(b) == {"link": True, "rules": INFRA_RULES}


def test_a_home_whose_path_ends_like_another_does_not_claim_its_clusters(tmp_path):
    mine = tmp_path / "floe"
    theirs = Path(f"{tmp_path}/other{mine}")  # ends with ".../floe": its nodes path contains mine
    tag = secrets.token_hex(4)
    arg = f"{theirs}/nodes/{tag}/node-a/daemon.json"
    assert f"{mine}/nodes/{tag}/" in arg
    proc = subprocess.Popen(["sh", "-c", "sleep 30; :", "floe-test", "--config-file", arg])
    try:
        deadline = time.monotonic() + 5
        while not processes.pids_referring_to(arg) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert tag in LocalProvider(theirs, "10.170.207.0/24").home_cluster_tags()
        assert tag not in LocalProvider(mine, "10.170.207.0/24").home_cluster_tags()
        assert proc.pid not in processes.pids_with_path(f"{mine}/nodes/{tag}/")
    finally:
        proc.kill()
        proc.wait()
    assert os.path.exists(tmp_path)
