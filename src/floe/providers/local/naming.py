"""Names of the host objects of the local provider, and validation of what goes into them.

Every host object of a cluster carries its 8-hex-char tag, so a cluster can be found
(and purged) from the host alone: network namespaces, bridges, veths, iptables
comments, cgroups and directories. Everything that ends up in a name or a path is
validated here first, so no caller input can reach a shell or escape a directory.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

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


def comment(tag: str) -> str:
    """iptables comment carried by every rule of a cluster."""
    return f"floe:{tag}"


def infra_link_name(subnet: ipaddress.IPv4Network) -> str:
    """Link (a port-less bridge) holding the infra address: hashed so providers with different ranges coexist."""
    return f"fli{_short_hash(str(subnet), 8)}"


def infra_comment(subnet: ipaddress.IPv4Network) -> str:
    """iptables comment of the infra (registry) rules; never matches COMMENT_RE."""
    return f"floe:infra-{_short_hash(str(subnet), 8)}"
