"""Project networks of the local provider: one isolated bridge per network, a veth per node on it.

A project network is a port-less bridge `flp-<network tag>` that holds no address of the host's
(no IPv4, IPv6 off, the host's ARP silent on it) and whose iptables rules, tagged
`floe:pn-<network tag>`, forward only between its own ports and drop whatever enters the host
from it. Nodes on it reach each other and nothing else: not the host, not the outside, not
another network (another project's is another bridge).

A node's interface on it is a veth pair: `ethN` in the node's namespace, labelled with the
network's comment as its ifalias (how a node's interfaces are found again when it goes), and
`fn<cluster tag><hash of node and network>` on the bridge (how a purge finds them by cluster).

This floe's networks are marked by a directory home/networks/<tag>, made before the bridge and
removed after it: another floe's networks on the same host are never this one's orphans.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
from pathlib import Path

from floe.host import firewall, netns
from floe.providers.base import NodeNetwork, ProjectNetworkSpec, ProviderError
from floe.providers.local import naming

NETWORKS_DIR = "networks"
# Inside a node: eth0 is the cluster's management network; project networks are eth1, eth2, …
IFNAME_RE = re.compile(r"^eth[1-9][0-9]{0,4}$")
# A node's project-network interfaces carry their network's comment as ifalias: this is its prefix.
ALIAS_PREFIX = naming.project_comment("")


def rules(bridge: str) -> list[firewall.Rule]:
    """Forward only within the bridge; nothing from it reaches the host (ACCEPT before DROPs)."""
    return [
        ("FORWARD", ["-i", bridge, "-o", bridge, "-j", "ACCEPT"]),
        ("FORWARD", ["-i", bridge, "-j", "DROP"]),
        ("FORWARD", ["-o", bridge, "-j", "DROP"]),
        ("INPUT", ["-i", bridge, "-j", "DROP"]),
    ]


def check_spec(net: ProjectNetworkSpec) -> tuple[str, ipaddress.IPv4Network]:
    """The network's tag and subnet, validated (ProviderError otherwise)."""
    tag = naming.check_tag(net.tag)
    try:
        subnet = ipaddress.IPv4Network(net.subnet)
    except (ValueError, TypeError) as exc:
        raise ProviderError(f"invalid subnet {net.subnet!r} of project network {tag}: {exc}") from None
    return tag, subnet


def check_node_network(net: NodeNetwork) -> tuple[str, ipaddress.IPv4Network, ipaddress.IPv4Address]:
    """A node interface's network tag, subnet and address, validated (ProviderError otherwise)."""
    tag, subnet = check_spec(ProjectNetworkSpec(net.network_tag, net.subnet))
    if not isinstance(net.ifname, str) or not IFNAME_RE.match(net.ifname):
        raise ProviderError(f"invalid interface name {net.ifname!r}: expected eth1, eth2, … (eth0 is the cluster's)")
    try:
        address = ipaddress.IPv4Address(net.address)
    except (ValueError, TypeError) as exc:
        raise ProviderError(f"invalid address {net.address!r} on project network {tag}: {exc}") from None
    if address not in subnet or (subnet.prefixlen < 31 and address in (subnet.network_address,
                                                                       subnet.broadcast_address)):
        raise ProviderError(f"address {address} is not a host address of {subnet}")
    return tag, subnet, address


def _marker(home: Path, tag: str) -> Path:
    return home / NETWORKS_DIR / tag


def ensure(home: Path, tag: str) -> None:
    """The network's bridge and rules (idempotent); the caller holds the network's lock."""
    # The marker first: it is what makes the bridge this home's, even if floe dies right after.
    _marker(home, tag).mkdir(parents=True, exist_ok=True, mode=0o700)
    bridge = naming.project_bridge_name(tag)
    netns.ensure_isolated_bridge(bridge)
    firewall.ensure(rules(bridge), naming.project_comment(tag), top=True)


def delete(home: Path, tag: str) -> list[str]:
    """Remove the network's node veths, bridge, rules and marker; missing is fine. Returns what went."""
    bridge = naming.project_bridge_name(tag)
    removed = []
    # A node still on it would keep an interface leading nowhere: its veth goes with the bridge.
    for port in netns.bridge_ports(bridge):
        if naming.NODE_NET_VETH_RE.match(port) and netns.delete_link(port):
            removed.append(f"veth {port}")
    if netns.delete_link(bridge):
        removed.append(f"bridge {bridge}")
    removed += [f"iptables {r}" for r in firewall.delete_tagged(naming.project_comment(tag))]
    marker = _marker(home, tag)
    if marker.exists():
        shutil.rmtree(marker, ignore_errors=True)
        removed.append(f"directory {marker}")
    return removed


def home_tags(home: Path) -> set[str]:
    """Tags of the project networks of this home (its markers)."""
    root = home / NETWORKS_DIR
    if not root.is_dir():
        return set()
    return {d.name for d in root.iterdir() if naming.TAG_RE.match(d.name) and d.is_dir()}


def host_tags() -> set[str]:
    """Tags of every floe project network on the host, whatever home made it (bridges, rules)."""
    tags = {m.group(1) for link in netns.link_names() if (m := naming.PROJECT_BRIDGE_RE.match(link))}
    for line in firewall.listing():
        if m := naming.PROJECT_COMMENT_RE.search(line):
            tags.add(m.group(1))
    return tags


def attach(cluster_tag: str, name: str, net: NodeNetwork) -> bool:
    """The node's interface on `net` (see netns.ensure_node_link); the bridge must exist.

    The caller holds the node's lock and has validated `net`. True if the pair was made now.
    """
    _, subnet, address = check_node_network(net)
    return netns.ensure_node_link(
        naming.netns_name(cluster_tag, name), net.ifname,
        naming.node_net_veth_name(cluster_tag, name, net.network_tag),
        naming.project_bridge_name(net.network_tag), str(address), subnet.prefixlen,
        alias=naming.project_comment(net.network_tag),
        reclaim_prefix=ALIAS_PREFIX,
    )


def detach_all(cluster_tag: str, name: str) -> list[str]:
    """Remove every project-network interface of the node (their host sides go with them)."""
    return [f"interface {x}" for x in netns.delete_node_links(naming.netns_name(cluster_tag, name), ALIAS_PREFIX)]


def purge_cluster_veths(cluster_tag: str) -> list[str]:
    """Every host-side veth of the cluster's nodes on project networks, found by name."""
    removed = []
    for link in netns.link_names():
        if (m := naming.NODE_NET_VETH_RE.match(link)) and m.group(1) == cluster_tag and netns.delete_link(link):
            removed.append(f"veth {link}")
    return removed
