"""`floe nodegroup …`: a cluster's groups of alike nodes (flavor, image, labels, taints, bounds)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from floe.cli.errors import CLIError
from floe.cli.flavors import gpus_of
from floe.cli.options import FormatOption, LabelOption, WaitOption, api_client, parse_labels, say, show
from floe.cli.output import OutputFormat, fmt, print_json, status_style, stderr_console, stdout_console, styled, table
from floe.cli.wait import POLL_INTERVAL, poll, wait_for_cluster
from floe.client import FloeAPIError, FloeClient

nodegroup_app = typer.Typer(help="Nodegroups: a cluster's groups of alike nodes.", no_args_is_help=True)

NODEGROUP_COLUMNS = ("NAME", "UUID", "ROLE", "FLAVOR", "NODES", "STATUS", "DEFAULT")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# Magnum's default flavor: what --gpus must at least match when no --flavor is given.
DEFAULT_FLAVOR = "m1.small"


def _row(g: dict[str, Any]) -> list[Text | str]:
    return [fmt(g.get("name")), fmt(g.get("uuid")), fmt(g.get("role")), fmt(g.get("flavor_id")),
            fmt(g.get("node_count")), styled(g.get("status"), status_style(g.get("status"))),
            fmt(g.get("is_default"))]


def _shown(g: dict[str, Any]) -> dict[str, Any]:
    """The group for a table: taints as users write them (key=value:Effect)."""
    taints = g.get("node_taints")
    if isinstance(taints, list):
        g = dict(g, node_taints=[f"{t.get('key')}={t.get('value', '')}:{t.get('effect')}" if isinstance(t, dict)
                                 else str(t) for t in taints])
    return g


def parse_taints(items: list[str] | None) -> list[str]:
    """`KEY[=VALUE]:EFFECT` strings, checked here so a typo fails before anything is sent."""
    out = []
    for item in items or []:
        head, sep, effect = item.rpartition(":")
        if not sep or not head.partition("=")[0] or effect not in TAINT_EFFECTS:
            raise CLIError(f"invalid taint {item!r}: expected KEY[=VALUE]:EFFECT with EFFECT one of "
                           f"{', '.join(TAINT_EFFECTS)}")
        out.append(item)
    return out


def pick_gpu_flavor(flavors: list[dict[str, Any]], gpus: int, base_ref: str | None) -> dict[str, Any]:
    """The smallest public flavor with at least `gpus` GPUs and at least the vCPUs, RAM and disk of
    `base_ref` (a flavor name or id; m1.small when None); CLIError naming what to create if none."""
    ref = base_ref or DEFAULT_FLAVOR
    base = next((f for f in flavors if ref in (f.get("name"), f.get("id"))), None)
    if base is None:
        raise CLIError(f"flavor {ref} could not be found (`floe flavor list` shows them)")
    need = {k: int(base.get(k) or 0) for k in ("vcpus", "ram", "disk")}
    fits = [f for f in flavors if gpus_of(f) >= gpus and all(int(f.get(k) or 0) >= v for k, v in need.items())
            and f.get("os-flavor-access:is_public", True)]
    if not fits:
        raise CLIError(
            f"no public flavor has {gpus} GPU(s) and at least the {need['vcpus']} vCPUs, {need['ram']} MiB RAM and "
            f"{need['disk']} GB disk of {ref}: an admin can create one with `floe flavor create NAME "
            f"--vcpus {need['vcpus']} --ram {need['ram']} --disk {need['disk']} --gpus {gpus}`"
        )
    return min(fits, key=lambda f: (gpus_of(f), int(f.get("vcpus") or 0), int(f.get("ram") or 0),
                                    int(f.get("disk") or 0), str(f.get("name"))))


def wait_for_nodegroup(client: FloeClient, cluster: str, ident: str, action: str) -> dict[str, Any] | None:
    """Poll until the group is `<action>_COMPLETE` (gone, for DELETE); CLIError when it ends *_FAILED.

    Each status change is one line on stderr."""
    console = stderr_console()
    last: list[Any] = [None]

    def get() -> dict[str, Any] | None:
        try:
            return client.get_nodegroup(cluster, ident)
        except FloeAPIError as exc:
            if exc.status == 404 and action == "DELETE":
                return None
            raise

    def done(g: dict[str, Any] | None) -> bool | str:
        if g is None:
            return True
        status = str(g.get("status") or "")
        key = (status, g.get("node_count"), g.get("status_reason"))
        if key != last[0]:
            line = Text(f"{g.get('name')}  ")
            line.append(status, style=status_style(status))
            line.append(f"  nodes {g.get('node_count')}")
            if g.get("status_reason"):
                line.append(f"  {' '.join(str(g['status_reason']).split())}")
            console.print(line, soft_wrap=True)
            last[0] = key
        if status.endswith("_FAILED"):
            return f"{status}: {' '.join(str(g.get('status_reason') or 'no reason given').split())}"
        return status == f"{action}_COMPLETE"

    try:
        return poll(f"nodegroup {ident} of cluster {cluster}", get, done, interval=POLL_INTERVAL)
    except KeyboardInterrupt:
        raise CLIError(f"interrupted: the change of nodegroup {ident} goes on in the server "
                       f"(`floe nodegroup show {cluster} {ident}` to follow it)", exit_code=130) from None


@nodegroup_app.command("create")
def nodegroup_create(
    cluster: Annotated[str, typer.Argument(help="Cluster name or uuid.")],
    name: Annotated[str, typer.Argument(help="Nodegroup name (unique in the cluster).")],
    node_count: Annotated[int, typer.Option("--node-count", min=0, help="Nodes of the group.")] = 1,
    min_count: Annotated[int, typer.Option("--min", min=0, help="Fewest nodes a resize may leave.")] = 0,
    max_count: Annotated[int | None, typer.Option("--max", min=0, help="Most nodes a resize may make.")] = None,
    flavor: Annotated[str | None, typer.Option("--flavor", help="Flavor name or id (default: the cluster's).")] = None,
    gpus: Annotated[int | None, typer.Option(
        "--gpus", min=1, help="GPUs per node: the smallest flavor with them, at least --flavor's size.")] = None,
    image: Annotated[str | None, typer.Option("--image", help="Node image (default: the cluster's).")] = None,
    label: LabelOption = None,
    node_label: Annotated[list[str] | None, typer.Option(
        "--node-label", metavar="KEY=VALUE", help="A Swarm node label of every node; repeat for more.")] = None,
    taint: Annotated[list[str] | None, typer.Option(
        "--taint", metavar="KEY=VALUE:EFFECT", help="A taint (recorded as a node label); repeat for more.")] = None,
    wait: WaitOption = False,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Add a nodegroup to a cluster."""
    labels = parse_labels(label) if label else None
    node_labels = parse_labels(node_label) if node_label else None
    taints = parse_taints(taint) or None
    with api_client() as client:
        if gpus is not None:
            picked = pick_gpu_flavor(client.list_flavors(), gpus, flavor)
            flavor = str(picked["name"])
            say(f"flavor {flavor}: {gpus_of(picked)} GPU(s), {picked.get('vcpus')} vCPUs, {picked.get('ram')} MiB")
        group = client.create_nodegroup(
            cluster, name, node_count=node_count, min_node_count=min_count, max_node_count=max_count,
            flavor_id=flavor, image_id=image, labels=labels, node_labels=node_labels, node_taints=taints,
        )
        if wait:
            group = wait_for_nodegroup(client, cluster, str(group["uuid"]), "CREATE") or group
        elif output == OutputFormat.table:
            say(f"Request to create nodegroup {name} ({group['uuid']}) in cluster {cluster} accepted")
            return
    show(_shown(group) if output == OutputFormat.table else group, output,
         {"status": status_style(group.get("status"))})


@nodegroup_app.command("list")
def nodegroup_list(
    cluster: Annotated[str, typer.Argument(help="Cluster name or uuid.")],
    role: Annotated[str | None, typer.Option("--role", help="Only the groups of this role (master, worker).")] = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """List a cluster's nodegroups."""
    with api_client() as client:
        groups = client.list_nodegroups(cluster, role)
    if output == OutputFormat.json:
        print_json(groups)
        return
    stdout_console().print(table(NODEGROUP_COLUMNS, (_row(g) for g in groups)))


@nodegroup_app.command("show")
def nodegroup_show(
    cluster: Annotated[str, typer.Argument(help="Cluster name or uuid.")],
    nodegroup: Annotated[str, typer.Argument(help="Nodegroup name or uuid.")],
    output: FormatOption = OutputFormat.table,
) -> None:
    """Show one nodegroup."""
    with api_client() as client:
        group = client.get_nodegroup(cluster, nodegroup)
    show(_shown(group) if output == OutputFormat.table else group, output,
         {"status": status_style(group.get("status"))})


@nodegroup_app.command("resize")
def nodegroup_resize(
    cluster: Annotated[str, typer.Argument(help="Cluster name or uuid.")],
    nodegroup: Annotated[str, typer.Argument(help="Nodegroup name or uuid.")],
    node_count: Annotated[int, typer.Argument(min=0, help="New number of nodes (within the group's min and max).")],
    wait: WaitOption = False,
) -> None:
    """Grow or shrink a nodegroup."""
    with api_client() as client:
        # Follow the uuids while waiting: a name may be reused meanwhile.
        group = client.get_nodegroup(cluster, nodegroup)
        ident = str(group["uuid"])
        cluster_uuid = client.resize_nodegroup(cluster, ident, node_count)
        if not wait:
            say(f"Request to resize nodegroup {nodegroup} of cluster {cluster} to {node_count} nodes accepted")
            return
        if group.get("is_default"):
            # The default worker group resizes the cluster's own way: the cluster's status tells.
            wait_for_cluster(client, cluster_uuid, "UPDATE", stderr_console())
            group = client.get_nodegroup(cluster_uuid, ident)
        else:
            group = wait_for_nodegroup(client, cluster_uuid, ident, "UPDATE") or {}
    say(f"nodegroup {nodegroup} is {group.get('status')} with {group.get('node_count')} nodes")


@nodegroup_app.command("delete")
def nodegroup_delete(
    cluster: Annotated[str, typer.Argument(help="Cluster name or uuid.")],
    nodegroup: Annotated[str, typer.Argument(help="Nodegroup name or uuid.")],
    wait: WaitOption = False,
) -> None:
    """Delete a nodegroup and its nodes (the default groups stay as long as their cluster)."""
    with api_client() as client:
        ident = str(client.get_nodegroup(cluster, nodegroup)["uuid"]) if wait else nodegroup
        client.delete_nodegroup(cluster, ident)
        if not wait:
            say(f"Request to delete nodegroup {nodegroup} of cluster {cluster} accepted")
            return
        wait_for_nodegroup(client, cluster, ident, "DELETE")
    say(f"nodegroup {nodegroup} deleted")
