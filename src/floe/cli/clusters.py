"""`floe cluster …`: clusters, their nodes, their Docker TLS bundle and the shares attached to them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from floe.cli.errors import CLIError
from floe.cli.networks import cluster_network_app
from floe.cli.options import (
    ChangeWaitOption,
    FormatOption,
    LabelOption,
    WaitOption,
    api_client,
    parse_labels,
    say,
    show,
)
from floe.cli.output import (
    OutputFormat,
    fmt,
    health_style,
    node_state_style,
    print_json,
    state_style,
    status_style,
    stderr_console,
    stdout_console,
    styled,
    table,
)
from floe.cli.shares import MOUNT_COLUMNS, mount_row
from floe.cli.templates import DataNetworkOption, NetworkOption, network_fields
from floe.cli.wait import wait_attachment, wait_for_cluster
from floe.client import FloeClient, FloeConnectionError

cluster_app = typer.Typer(help="Clusters.", no_args_is_help=True)
cluster_app.add_typer(cluster_network_app, name="network")

CLUSTER_COLUMNS = ("NAME", "UUID", "STATUS", "HEALTH", "MASTERS", "NODES", "API ADDRESS")


def _cluster_row(c: dict[str, Any]) -> list[Text | str]:
    return [
        fmt(c.get("name")),
        fmt(c.get("uuid")),
        styled(c.get("status"), status_style(c.get("status"))),
        styled(c.get("health_status"), health_style(c.get("health_status"))),
        fmt(c.get("master_count")),
        fmt(c.get("node_count")),
        fmt(c.get("api_address")),
    ]


def _cluster_styles(c: dict[str, Any]) -> dict[str, str]:
    return {"status": status_style(c.get("status")), "health_status": health_style(c.get("health_status"))}


def _wait(client: FloeClient, ident: str, action: str) -> dict[str, Any] | None:
    return wait_for_cluster(client, ident, action, stderr_console())


def _check_attachable(client: FloeClient, cluster: str, shares: list[str]) -> None:
    """Before creating a cluster with --share: each share exists and names the cluster in a rule."""
    for share in shares:
        obj = client.get_share(share)
        rules = client.list_access(obj["id"])
        if not any(r["access_to"] == cluster and r["access_type"] in ("floe_cluster", "user")
                   and r["state"] in ("queued_to_apply", "active") for r in rules):
            raise CLIError(
                f"cluster {cluster} has no access to share {share}: run "
                f"`floe share access allow {share} --cluster {cluster}` first"
            )


def _attach_shares(client: FloeClient, cluster: str, shares: list[str], display: str) -> None:
    """Queue the attachment of each share at /mnt/<share name> (the `--share` of `floe cluster create`)."""
    for share in shares:
        m = client.attach_share(cluster, share)
        say(f"share {share} will be mounted at {m['path']} on every node of cluster {display}")


@cluster_app.command("create")
def cluster_create(
    name: Annotated[str, typer.Argument(help="Cluster name.")],
    template: Annotated[str, typer.Option("--template", "-t", help="Cluster template name or uuid.")],
    node_count: Annotated[int, typer.Option("--node-count", min=0, help="Worker nodes.")] = 1,
    master_count: Annotated[int, typer.Option("--master-count", min=1, help="Manager nodes.")] = 1,
    label: LabelOption = None,
    timeout: Annotated[
        int | None, typer.Option("--timeout", min=1, metavar="MINUTES", help="Give up creating after this.")
    ] = None,
    wait: WaitOption = False,
    share: Annotated[
        list[str] | None,
        typer.Option("--share", metavar="SHARE", help="Attach this share at /mnt/SHARE_NAME; repeat for more."),
    ] = None,
    network: NetworkOption = None,
    data_network: DataNetworkOption = None,
    flavor: Annotated[str | None, typer.Option("--flavor", help="Worker flavor (default: the template's).")] = None,
    master_flavor: Annotated[
        str | None, typer.Option("--master-flavor", help="Manager flavor (default: the template's).")
    ] = None,
) -> None:
    """Create a cluster from a template."""
    labels = parse_labels(label)
    fields = network_fields(network, data_network, labels)
    if fields and labels:
        fields["merge_labels"] = True  # the template's labels stay, as without --network
    fields.update({k: v for k, v in (("flavor_id", flavor), ("master_flavor_id", master_flavor)) if v})
    with api_client() as client:
        # Resolve the template first: a clear "not found" beats a failed create, and the
        # request then carries the uuid whatever the user typed.
        template_uuid = str(client.get_template(template)["uuid"])
        if share:
            _check_attachable(client, name, share)  # before anything is created
        uuid = client.create_cluster(
            name, template_uuid, node_count=node_count, master_count=master_count,
            labels=labels, create_timeout=timeout, **fields,
        )
        if share:
            # Recorded now, mounted as soon as the first node has started (every node sees it).
            _attach_shares(client, uuid, share, name)
        if not wait:
            say(f"Request to create cluster {name} ({uuid}) accepted")
            return
        cluster = _wait(client, uuid, "CREATE") or {}
        for ident in share or []:
            wait_attachment(client, uuid, client.get_share(ident)["id"])
    say(f"cluster {name} is {cluster.get('status')} at {fmt(cluster.get('api_address'))}")


@cluster_app.command("list")
def cluster_list(output: FormatOption = OutputFormat.table) -> None:
    """List clusters."""
    with api_client() as client:
        clusters = client.list_clusters()
    if output == OutputFormat.json:
        print_json(clusters)
        return
    stdout_console().print(table(CLUSTER_COLUMNS, (_cluster_row(c) for c in clusters)))


@cluster_app.command("show")
def cluster_show(
    name: Annotated[str, typer.Argument(help="Cluster name or uuid.")],
    output: FormatOption = OutputFormat.table,
) -> None:
    """Show one cluster."""
    with api_client() as client:
        cluster = client.get_cluster(name)
    show(cluster, output, _cluster_styles(cluster))


@cluster_app.command("delete")
def cluster_delete(
    name: Annotated[str, typer.Argument(help="Cluster name or uuid.")],
    wait: WaitOption = False,
) -> None:
    """Delete a cluster and everything it runs."""
    with api_client() as client:
        # Follow the uuid, not the name: a new cluster may take the name meanwhile.
        ident = str(client.get_cluster(name)["uuid"]) if wait else name
        client.delete_cluster(ident)
        if not wait:
            say(f"Request to delete cluster {name} has been accepted")
            return
        _wait(client, ident, "DELETE")
    say(f"cluster {name} deleted")


@cluster_app.command("resize")
def cluster_resize(
    name: Annotated[str, typer.Argument(help="Cluster name or uuid.")],
    node_count: Annotated[int, typer.Option("--node-count", min=0, help="New number of worker nodes.")],
    remove: Annotated[
        list[str] | None,
        typer.Option("--remove", metavar="NODE", help="A node (name or uuid) to remove first; repeat."),
    ] = None,
    requeue: Annotated[
        bool, typer.Option("--requeue", help="Slurm: requeue the jobs of nodes that go instead of waiting for them."),
    ] = False,
    wait: WaitOption = False,
) -> None:
    """Grow or shrink a cluster's workers (a Slurm cluster drains the nodes that go first)."""
    with api_client() as client:
        # Follow the uuid while waiting; the server resolves node names and uuids itself.
        ident = str(client.get_cluster(name)["uuid"])
        client.resize(ident, node_count, remove, requeue)
        if not wait:
            say(f"Request to resize cluster {name} to {node_count} nodes accepted")
            return
        cluster = _wait(client, ident, "UPDATE") or {}
    say(f"cluster {name} is {cluster.get('status')} with {cluster.get('node_count')} nodes")


@cluster_app.command("rotate-ca")
def cluster_rotate_ca(
    name: Annotated[str, typer.Argument(help="Cluster name or uuid.")],
    wait: WaitOption = False,
) -> None:
    """Give the cluster a new CA: client certificates of the old one stop working, containers keep
    running. Run `floe cluster config` again afterwards for a new bundle."""
    with api_client() as client:
        ident = client.rotate_ca(name)
        if not wait:
            say(f"Request to rotate the CA of cluster {name} accepted")
            return
        cluster = _wait(client, ident, "UPDATE") or {}
    say(f"cluster {name} is {cluster.get('status')}: get a new bundle with `floe cluster config {name}`")


NODE_COLUMNS = (
    "NAME", "ROLE", "NODEGROUP", "FLAVOR", "NETWORKS", "GPUS", "STATE", "HEALTH", "HEALTH REASON", "SWARM ID", "UUID",
)


def _node_row(n: dict[str, Any]) -> list[Text | str]:
    swarm_id = n.get("swarm_node_id")
    return [
        fmt(n.get("name")),
        fmt(n.get("role")),
        fmt(n.get("nodegroup")),
        fmt(n.get("flavor")),
        # One line per interface: "eth1 fast 10.161.4.2"
        "\n".join(f"{i['name']} {i['network']} {i['address']}" for i in n.get("interfaces") or [])
        or fmt(n.get("address")),
        fmt(len(n.get("gpus") or []) or None),
        styled(n.get("state"), node_state_style(n.get("state"))),
        styled(n.get("health_status"), health_style(n.get("health_status"))),
        fmt(n.get("health_reason")),
        fmt(str(swarm_id)[:12] if swarm_id else None),  # docker's short id, as `docker node ls`
        fmt(n.get("uuid")),
    ]


@cluster_app.command("nodes")
def cluster_nodes(
    name: Annotated[str, typer.Argument(help="Cluster name or uuid.")],
    output: FormatOption = OutputFormat.table,
) -> None:
    """List a cluster's nodes with their state and health."""
    with api_client() as client:
        nodes = client.cluster_nodes(name)
    if output == OutputFormat.json:
        print_json(nodes)
        return
    stdout_console().print(table(NODE_COLUMNS, (_node_row(n) for n in nodes)))


@cluster_app.command("config")
def cluster_config(
    name: Annotated[str, typer.Argument(help="Cluster name or uuid.")],
    directory: Annotated[
        Path | None,
        typer.Option("--dir", "-d", help="Where to write the files [default: ./NAME-config]."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing bundle.")] = False,
) -> None:
    """Write Docker TLS client files and print the shell line that uses them.

    Run again, it renews a bundle it wrote once its certificate nears expiry or the cluster's
    CA was rotated. Use it as: eval $(floe cluster config NAME)
    """
    from floe.cli.clusterconfig import write_cluster_config

    with api_client() as client:
        config = write_cluster_config(client, name, directory, force)
    # stdout carries only the export line, so `eval $(...)` works; the note goes to stderr.
    stderr_console().print(Text(config.note()), soft_wrap=True)
    typer.echo(config.export_line())


# -- shares on a cluster ------------------------------------------------------------------


@cluster_app.command("attach")
def cluster_attach(
    cluster: Annotated[str, typer.Argument(help="Cluster name or uuid.")],
    share: Annotated[str, typer.Option("--share", "-s", help="Share name or id.")],
    path: Annotated[
        str | None, typer.Option("--path", help="Where in every node [default: /mnt/SHARE_NAME].")
    ] = None,
    ro: Annotated[bool, typer.Option("--ro", help="Mount it read-only.")] = False,
    wait: ChangeWaitOption = False,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Mount a share on every node of a cluster (nodes added later too)."""
    with api_client() as client:
        m = client.attach_share(cluster, share, path, ro)
        if wait:
            m = wait_attachment(client, cluster, m["share_id"]) or m
    show(m, output, {"state": state_style(m.get("state"))})


@cluster_app.command("detach")
def cluster_detach(
    cluster: Annotated[str, typer.Argument(help="Cluster name or uuid.")],
    share: Annotated[str, typer.Option("--share", "-s", help="Share name or id.")],
    wait: ChangeWaitOption = False,
) -> None:
    """Unmount a share from every node of a cluster (its data stays)."""
    with api_client() as client:
        m = client.detach_share(cluster, share)
        if wait:
            wait_attachment(client, cluster, m["share_id"], gone=True)
            say(f"share {share} detached from cluster {cluster}")
            return
    say(f"Request to detach share {share} from cluster {cluster} accepted")


@cluster_app.command("shares")
def cluster_shares(
    cluster: Annotated[str, typer.Argument(help="Cluster name or uuid.")],
    output: FormatOption = OutputFormat.table,
) -> None:
    """The shares attached to a cluster."""
    with api_client() as client:
        found = client.cluster_shares(cluster)
    if output == OutputFormat.json:
        print_json(found)
        return
    columns = ("SHARE", *MOUNT_COLUMNS[1:])
    stdout_console().print(table(columns, (mount_row(m, "share_name") for m in found)))


EVENT_COLUMNS = ("ID", "TIME", "KIND", "LEVEL", "MESSAGE")
_LEVEL_STYLES = {"info": "", "warning": "yellow", "error": "bold red"}


def _event_row(e: dict[str, Any]) -> list[Text | str]:
    return [
        fmt(e.get("id")),
        fmt(str(e.get("time") or "")[:23].replace("T", " ")),
        fmt(e.get("kind")),
        styled(e.get("level"), _LEVEL_STYLES.get(str(e.get("level")), "")),
        fmt(e.get("message")),
    ]


def _event_line(e: dict[str, Any]) -> Text:
    line = Text(f"{str(e.get('time') or '')[:23].replace('T', ' ')}  {e.get('kind')}  ")
    line.append(str(e.get("message") or ""), style=_LEVEL_STYLES.get(str(e.get("level")), ""))
    return line


@cluster_app.command("events")
def cluster_events(
    name: Annotated[str, typer.Argument(help="Cluster name or uuid (also of a cluster just deleted).")],
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many of the newest events.")] = 50,
    follow: Annotated[bool, typer.Option("--follow", help="Then print new events as they happen.")] = False,
    output: FormatOption = OutputFormat.table,
) -> None:
    """What happened to a cluster: operations and their steps, failures, health changes,
    auto-healing and resizes (with --follow, live, until Ctrl-C)."""
    with api_client() as client:
        found = client.cluster_events(name, limit=limit)
        if output == OutputFormat.json and not follow:
            print_json(found)
            return
        if output == OutputFormat.json:
            for e in found:
                stdout_console().print_json(data=e)
        elif follow:
            for e in found:
                stdout_console().print(_event_line(e), soft_wrap=True)
        else:
            stdout_console().print(table(EVENT_COLUMNS, (_event_row(e) for e in found)))
        if not follow:
            return
        last = found[-1]["id"] if found else None
        try:
            while True:
                try:
                    for e in client.events_stream(cluster=name, last_id=last):
                        if e.get("kind") == "stream.ready":
                            continue
                        last = e["id"]
                        if output == OutputFormat.json:
                            stdout_console().print_json(data=e)
                        else:
                            stdout_console().print(_event_line(e), soft_wrap=True)
                except FloeConnectionError:
                    time.sleep(1.0)  # the server restarted or went quiet: resume after the last event
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
