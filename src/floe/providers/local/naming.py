"""Names of the host objects of the local provider, and validation of what goes into them.

Every host object of a cluster carries its 8-hex-char tag, so a cluster can be found
(and purged) from the host alone: network namespaces, bridges, veths, iptables
comments, cgroups and directories. Everything that ends up in a name or a path is
validated here first, so no caller input can reach a shell or escape a directory.

floe's own infra objects (the registry's link and rules) have no tag: their names
derive from the home and the address range, so two floes on one host never share one.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from pathlib import Path

from floe.providers.base import ProviderError

TAG_RE = re.compile(r"^[0-9a-f]{8}$")
# RFC 1123 label: what a hostname component may be.
NODE_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")

# Discovery patterns: group 1 is the cluster tag.
NETNS_RE = re.compile(r"^floe-([0-9a-f]{8})-")
CGROUP_RE = NETNS_RE
BRIDGE_RE = re.compile(r"^flb-([0-9a-f]{8})$")
VETH_RE = re.compile(r"^fv([0-9a-f]{8})[0-9a-f]{5}$")
COMMENT_RE = re.compile(r"--comment \"?floe:([0-9a-f]{8})\"?(?:\s|$)")
INFRA_LINK_RE = re.compile(r"^fli[0-9a-f]{8}$")
# Project networks: group 1 is the network's tag (never a cluster's: other prefixes).
PROJECT_BRIDGE_RE = re.compile(r"^flp-([0-9a-f]{8})$")
PROJECT_COMMENT_RE = re.compile(r"--comment \"?floe:pn-([0-9a-f]{8})\"?(?:\s|$)")
# Host side of a node's interface on a project network: group 1 is the cluster's tag.
NODE_NET_VETH_RE = re.compile(r"^fn([0-9a-f]{8})[0-9a-f]{5}$")
# Hex digits of the hash in a shortened node directory name (see node_dir_name).
SHORT_DIR_HASH = 10


def check_tag(tag: str) -> str:
    """Return `tag` if it is a cluster tag (8 lowercase hex chars), else raise ProviderError."""
    if not isinstance(tag, str) or not TAG_RE.match(tag):
        raise ProviderError(f"invalid cluster tag {tag!r}: expected 8 lowercase hex characters")
    return tag


def check_node_name(name: str) -> str:
    """Return `name` if it is a DNS label (a valid hostname), else raise ProviderError."""
    if not isinstance(name, str) or not NODE_NAME_RE.match(name):
        raise ProviderError(
            f"invalid node name {name!r}: expected a DNS label (letters, digits, '-', at most 63 chars)"
        )
    return name


def _short_hash(text: str, length: int) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:length]


def netns_name(tag: str, name: str) -> str:
    """Network namespace of a node."""
    return f"floe-{tag}-{name}"


def cgroup_name(tag: str, name: str) -> str:
    """cgroup (in every hierarchy) holding a node's daemons and containers."""
    return f"floe-{tag}-{name}"


def bridge_name(tag: str) -> str:
    """Host bridge of a cluster network (15 chars max, the kernel's limit)."""
    return f"flb-{tag}"


def veth_name(tag: str, name: str) -> str:
    """Host side of a node's veth: node names are too long for IFNAMSIZ, so hash them."""
    return f"fv{tag}{_short_hash(name, 5)}"


def project_bridge_name(tag: str) -> str:
    """Host bridge of a project network, from the network's tag (12 chars)."""
    return f"flp-{tag}"


def project_comment(tag: str) -> str:
    """iptables comment of a project network's rules; never matches COMMENT_RE (not a cluster's)."""
    return f"floe:pn-{tag}"


def node_net_veth_name(cluster_tag: str, name: str, network_tag: str) -> str:
    """Host side of node `name`'s veth on project network `network_tag` (15 chars, IFNAMSIZ's limit).

    It carries the cluster's tag, so purge_cluster finds it; the node and the network are hashed
    together (a node has one interface per network).
    """
    return f"fn{cluster_tag}{_short_hash(f'{name}|{network_tag}', 5)}"


def comment(tag: str) -> str:
    """iptables comment carried by every rule of a cluster."""
    return f"floe:{tag}"


def node_dir_name(name: str, room: int) -> str:
    """Directory of a node under home/nodes/TAG/: its name if `room` characters allow it.

    A longer one (a long home and a long node name would overflow a unix socket's path)
    becomes a prefix of the name, "_" and a hash of it: deterministic, so every later call
    finds the same directory, and never a DNS label, so never another node's full name.
    """
    if len(name) <= room:
        return name
    digest = f"_{_short_hash(name, SHORT_DIR_HASH)}"
    if room < len(digest):
        raise ProviderError(f"no room for a node directory under a home this long (node {name})")
    return name[: room - len(digest)] + digest


def _home_key(home: Path | str) -> str:
    # The real path: the same home reached through a symlink names the same objects.
    return os.path.realpath(home)


def infra_link_name(home: Path | str, subnet: ipaddress.IPv4Network) -> str:
    """Link (a port-less bridge) holding the infra address, unique per home and range."""
    return f"fli{_short_hash(f'{_home_key(home)}|{subnet}', 8)}"


def infra_comment(home: Path | str, subnet: ipaddress.IPv4Network) -> str:
    """iptables comment of the infra (registry) rules, unique per home and range; never matches COMMENT_RE."""
    return f"floe:infra-{_short_hash(f'{_home_key(home)}|{subnet}', 8)}"


def legacy_infra_link_name(subnet: ipaddress.IPv4Network) -> str:
    """The infra link's name before it depended on the home (shared by homes with one range)."""
    return f"fli{_short_hash(str(subnet), 8)}"


def legacy_infra_comment(subnet: ipaddress.IPv4Network) -> str:
    """The infra rules' comment before it depended on the home."""
    return f"floe:infra-{_short_hash(str(subnet), 8)}"
