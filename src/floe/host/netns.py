"""Links, addresses, routes and network namespaces, through netlink (pyroute2)."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
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
