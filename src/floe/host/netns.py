"""Links, addresses, routes and network namespaces, through netlink (pyroute2)."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from floe.host.errors import HostError

NETNS_DIR = Path("/run/netns")
MAIN_TABLE = 254
RTPROT_STATIC = 4  # what route add/replace through netlink records


def _ignore(code: int, func, *args, **kwargs) -> None:
    try:
        func(*args, **kwargs)
    except NetlinkError as exc:
        if exc.code != code:
            raise


def link_names() -> list[str]:
    """Names of every link in the host namespace."""
    with IPRoute() as ipr:
        return [link.get("ifname") for link in ipr.get_links()]


def link_exists(name: str) -> bool:
    """Whether a link of that name exists in the host namespace."""
    with IPRoute() as ipr:
        return bool(ipr.link_lookup(ifname=name))


def delete_link(name: str) -> bool:
    """Delete a host link (a veth takes its peer with it); False if it was not there."""
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            return False
        _ignore(errno.ENODEV, ipr.link, "del", index=idx[0])
        return True


def ensure_link(name: str, kind: str, address: str, prefixlen: int) -> None:
    """A bridge or dummy link, up, holding `address/prefixlen`."""
    try:
        with IPRoute() as ipr:
            if not ipr.link_lookup(ifname=name):
                _ignore(errno.EEXIST, ipr.link, "add", ifname=name, kind=kind)
            idx = ipr.link_lookup(ifname=name)[0]
            _ignore(errno.EEXIST, ipr.addr, "add", index=idx, address=address, prefixlen=prefixlen)
            ipr.link("set", index=idx, state="up")
    except NetlinkError as exc:
        raise HostError(f"cannot set up {kind} {name} with {address}/{prefixlen}: {exc}") from None


def list_netns() -> list[str]:
    """Names of the named network namespaces (/run/netns)."""
    return netns.listnetns()


def _is_netns_mount(path: Path) -> bool:
    # A named netns is an nsfs bind mount: its device differs from the directory's.
    # A plain file means a crash between creating the mountpoint and binding it.
    try:
        return path.stat().st_dev != path.parent.stat().st_dev
    except OSError:
        return False


def ensure_node_netns(
    ns: str,
    veth: str,
    bridge: str,
    address: str,
    prefixlen: int,
    routes: Sequence[tuple[str, str]],
) -> None:
    """A node's namespace: eth0 (peer of `veth` on `bridge`) with `address`, lo up, only `routes`."""
    path = NETNS_DIR / ns
    if path.exists() and not _is_netns_mount(path):
        path.unlink()
    try:
        # IPRoute(netns=…) creates the namespace when missing, in the same helper process
        # it forks to open its socket there: one fork per node instead of two.
        with IPRoute() as ipr, IPRoute(netns=ns) as nsr:
            bridge_idx = ipr.link_lookup(ifname=bridge)
            if not bridge_idx:
                raise HostError(f"bridge {bridge} is missing: ensure the network first")
            host_idx = ipr.link_lookup(ifname=veth)
            eth0 = nsr.link_lookup(ifname="eth0")
            if eth0 and not host_idx:
                # eth0 without its host side (renamed or foreign): start over.
                nsr.link("del", index=eth0[0])
                eth0 = []
            if not eth0:
                if host_idx:
                    raise HostError(
                        f"host link {veth} exists but is not the peer of {ns}/eth0 (name collision?)"
                    )
                # The peer is created directly inside the namespace: no half-moved state.
                ipr.link(
                    "add", ifname=veth, kind="veth", master=bridge_idx[0],
                    peer={"ifname": "eth0", "net_ns_fd": ns},
                )
                host_idx = ipr.link_lookup(ifname=veth)
                eth0 = nsr.link_lookup(ifname="eth0")
            ipr.link("set", index=host_idx[0], master=bridge_idx[0], state="up")
            # Converge on a restart with another spec: only the wanted address stays on eth0.
            for old in nsr.get_addr(family=socket.AF_INET, index=eth0[0]):
                if (old.get("address"), old["prefixlen"]) != (address, prefixlen):
                    nsr.addr("del", index=eth0[0], address=old.get("address"), prefixlen=old["prefixlen"])
            _ignore(errno.EEXIST, nsr.addr, "add", index=eth0[0], address=address, prefixlen=prefixlen)
            nsr.link("set", index=eth0[0], state="up")
            nsr.link("set", index=nsr.link_lookup(ifname="lo")[0], state="up")
            wanted = set()
            for dst, gateway in routes:
                net = ipaddress.IPv4Network(dst)
                wanted.add((str(net.network_address), net.prefixlen))
                nsr.route("replace", dst=str(net), gateway=gateway, oif=eth0[0])
            # ...and only the wanted static routes, never a default route.
            for route in nsr.get_routes(family=socket.AF_INET, table=MAIN_TABLE):
                key = (route.get("dst") or "0.0.0.0", route["dst_len"])
                if route["dst_len"] == 0 or (route["proto"] == RTPROT_STATIC and key not in wanted):
                    nsr.route("del", dst=f"{key[0]}/{key[1]}", table=MAIN_TABLE)
    except NetlinkError as exc:
        raise HostError(f"cannot set up the network of {ns}: {exc}") from None


def delete_netns(ns: str) -> bool:
    """Remove a named namespace (its interfaces go once no process holds it); False if absent."""
    path = NETNS_DIR / ns
    if not os.path.lexists(path):
        return False
    try:
        netns.remove(ns)
    except FileNotFoundError:
        return False
    return True


def routes_in(ns: str) -> list[tuple[str, int, str | None]]:
    """Main-table IPv4 routes in a namespace as (dst, prefixlen, gateway); for checks and tests."""
    with IPRoute(netns=ns, flags=0) as nsr:
        return [
            (r.get("dst") or "0.0.0.0", r["dst_len"], r.get("gateway"))
            for r in nsr.get_routes(family=socket.AF_INET, table=MAIN_TABLE)
        ]


# -- links with no address of the host's, and extra interfaces of a node -----------------


def _write_sysctl(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except FileNotFoundError:  # IPv6 (or that knob) is not in this kernel: nothing to turn off
        pass
    except OSError as exc:
        raise HostError(f"cannot write {path}: {exc}") from None


def _silence_host(name: str) -> None:
    """Make the host hold no address on link `name` and answer nothing through it.

    No IPv6 (no link-local address either), and ARP never answered for any of the host's
    addresses (arp_ignore 8): with no IPv4 address of its own the host still answers ARP for
    its other addresses on any link by default.
    """
    _write_sysctl(Path(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1\n")
    _write_sysctl(Path(f"/proc/sys/net/ipv4/conf/{name}/arp_ignore"), "8\n")


def ensure_isolated_bridge(name: str) -> None:
    """A port-less bridge, up, holding no address of the host's (see _silence_host).

    Addresses someone added to it are removed: the host must never be reachable on it.
    """
    try:
        with IPRoute() as ipr:
            if not ipr.link_lookup(ifname=name):
                _ignore(errno.EEXIST, ipr.link, "add", ifname=name, kind="bridge")
            idx = ipr.link_lookup(ifname=name)[0]
            _silence_host(name)  # before it is up: no IPv6 link-local address is ever assigned
            for old in ipr.get_addr(index=idx):
                _ignore(errno.EADDRNOTAVAIL, ipr.addr, "del", index=idx, address=old.get("address"),
                        prefixlen=old["prefixlen"])
            ipr.link("set", index=idx, state="up")
    except NetlinkError as exc:
        raise HostError(f"cannot set up bridge {name}: {exc}") from None


def _kind(link) -> str | None:
    info = link.get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info is not None else None


def _alias(link) -> str:
    return link.get_attr("IFLA_IFALIAS") or ""


def ensure_node_link(
    ns: str, ifname: str, veth: str, bridge: str, address: str, prefixlen: int, alias: str,
    reclaim_prefix: str = "floe:",
) -> bool:
    """Interface `ifname` of namespace `ns`, peer of host veth `veth` on `bridge`, up with only
    `address/prefixlen`, labelled `alias` (its ifalias, how delete_node_links finds it).

    Idempotent: a pair that is already there is only converged (address, up, bridge), never
    recreated, so the node's traffic on it is not interrupted. An `ifname` that is not that pair
    is replaced if its alias starts with `reclaim_prefix` (floe made it), refused otherwise.
    Returns whether the pair was created.
    """
    if not _is_netns_mount(NETNS_DIR / ns):
        raise HostError(f"namespace {ns} does not exist: the node is not running")
    created = False
    try:
        # flags=0: never create the namespace (IPRoute(netns=…) would).
        with IPRoute() as ipr, IPRoute(netns=ns, flags=0) as nsr:
            bridge_idx = ipr.link_lookup(ifname=bridge)
            if not bridge_idx:
                raise HostError(f"bridge {bridge} is missing: ensure the network first")
            host = ipr.link_lookup(ifname=veth)
            inner = nsr.link_lookup(ifname=ifname)
            paired = False
            if host and inner:
                h, i = ipr.get_links(host[0])[0], nsr.get_links(inner[0])[0]
                paired = (_kind(i) == "veth" and h.get_attr("IFLA_LINK") == inner[0]
                          and i.get_attr("IFLA_LINK") == host[0])
            if not paired:
                if inner:
                    old = nsr.get_links(inner[0])[0]
                    if not _alias(old).startswith(reclaim_prefix):
                        raise HostError(f"{ns} has an interface {ifname} that floe did not make")
                    _ignore(errno.ENODEV, nsr.link, "del", index=inner[0])  # its host peer goes too
                host = ipr.link_lookup(ifname=veth)
                if host:  # a host side whose peer is elsewhere (another ifname, or half made)
                    _ignore(errno.ENODEV, ipr.link, "del", index=host[0])
                # The peer is created directly inside the namespace: no half-moved state.
                ipr.link("add", ifname=veth, kind="veth", peer={"ifname": ifname, "net_ns_fd": ns})
                created = True
                host, inner = ipr.link_lookup(ifname=veth), nsr.link_lookup(ifname=ifname)
            _silence_host(veth)  # a bridge port: the host needs no address on it either
            ipr.link("set", index=host[0], master=bridge_idx[0], state="up")
            nsr.link("set", index=inner[0], ifalias=alias)
            for old in nsr.get_addr(family=socket.AF_INET, index=inner[0]):
                if (old.get("address"), old["prefixlen"]) != (address, prefixlen):
                    nsr.addr("del", index=inner[0], address=old.get("address"), prefixlen=old["prefixlen"])
            _ignore(errno.EEXIST, nsr.addr, "add", index=inner[0], address=address, prefixlen=prefixlen)
            nsr.link("set", index=inner[0], state="up")
    except NetlinkError as exc:
        raise HostError(f"cannot set up {ifname} of {ns} on {bridge}: {exc}") from None
    return created


def delete_node_links(ns: str, alias_prefix: str) -> list[str]:
    """Delete the interfaces of namespace `ns` whose alias starts with `alias_prefix` (a veth's
    host side goes with it); return them as "IFNAME (ALIAS)". Nothing if `ns` does not exist."""
    if not _is_netns_mount(NETNS_DIR / ns):
        return []
    removed = []
    try:
        with IPRoute(netns=ns, flags=0) as nsr:
            for link in nsr.get_links():
                if _alias(link).startswith(alias_prefix):
                    _ignore(errno.ENODEV, nsr.link, "del", index=link["index"])
                    removed.append(f"{link.get_attr('IFLA_IFNAME')} ({_alias(link)})")
    except NetlinkError as exc:
        raise HostError(f"cannot remove the interfaces of {ns}: {exc}") from None
    return removed


def links_in(ns: str) -> dict[str, dict]:
    """The links of a namespace: name → {"alias", "up", "ipv4": ["a.b.c.d/n", …]}; for checks and tests."""
    out: dict[str, dict] = {}
    with IPRoute(netns=ns, flags=0) as nsr:
        names = {}
        for link in nsr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            names[link["index"]] = name
            out[name] = {"alias": _alias(link), "up": bool(link["flags"] & 1), "ipv4": []}
        for addr in nsr.get_addr(family=socket.AF_INET):
            if addr["index"] in names:
                out[names[addr["index"]]]["ipv4"].append(f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}")
    return out


def bridge_ports(bridge: str) -> list[str]:
    """Names of the host links enslaved to `bridge` ([] if it does not exist)."""
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=bridge)
        if not idx:
            return []
        return [link.get_attr("IFLA_IFNAME") for link in ipr.get_links() if link.get_attr("IFLA_MASTER") == idx[0]]


_CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def socket_in(ns: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket of network namespace `ns` (it stays there: connect and bind happen in `ns`).

    The calling thread enters the namespace only to create the socket and returns at once (a
    network namespace is per thread), so the rest of the process never leaves the host's.
    HostError if the namespace does not exist.
    """
    try:
        target = os.open(NETNS_DIR / ns, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise HostError(f"network namespace {ns} does not exist: {exc.strerror}") from None
    home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            return socket.socket(family, kind)
        finally:
            # Back home, or the thread would do its later work in the node's namespace.
            _setns(home)
    except OSError as exc:
        raise HostError(f"cannot make a socket in network namespace {ns}: {exc}") from None
    finally:
        os.close(target)
        os.close(home)
