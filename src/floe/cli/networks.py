"""`floe network …` (project networks) and `floe cluster network …` (a cluster's), through the API."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from floe.cli.options import FormatOption, WaitOption, api_client, say, show
from floe.cli.output import OutputFormat, print_json, stderr_console, stdout_console, styled, table
from floe.cli.wait import wait_for_cluster

network_app = typer.Typer(
    help="Project networks: extra interfaces (eth1, eth2, …) shared by the nodes of your clusters.",
    no_args_is_help=True,
)
cluster_network_app = typer.Typer(help="The project networks of a cluster.", no_args_is_help=True)

NETWORK_COLUMNS = ("NAME", "UUID", "CIDR", "STATUS", "CLUSTERS")


def _cell(value: Any) -> Text:
    # Text, never a str: names are the user's and must not be read as Rich markup.
    return styled(value, "")


def _network_row(n: dict[str, Any]) -> list[Text]:
    return [_cell(n.get("name")), _cell(n.get("uuid")), _cell(n.get("cidr")),
            styled(n.get("status"), "green" if n.get("status") == "ACTIVE" else "yellow"),
            _cell(n.get("clusters"))]


@network_app.command("create")
def network_create(
    name: Annotated[str, typer.Argument(help="Network name (unique in the project).")],
    cidr: Annotated[
        str | None,
        typer.Option("--cidr", help="An IPv4 network /16 to /29 inside floe's range (default: a free /24)."),
    ] = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Create a project network; clusters attach to it (fixed_network, or `floe cluster network attach`)."""
    with api_client() as client:
        net = client.create_network(name, cidr)
    show(net, output)


@network_app.command("list")
def network_list(output: FormatOption = OutputFormat.table) -> None:
    """List the project's networks."""
    with api_client() as client:
        nets = client.list_networks()
    if output == OutputFormat.json:
        print_json(nets)
        return
    stdout_console().print(table(NETWORK_COLUMNS, (_network_row(n) for n in nets)))


@network_app.command("show")
def network_show(
    network: Annotated[str, typer.Argument(help="Network name or uuid.")],
    output: FormatOption = OutputFormat.table,
) -> None:
    """Show one network and the clusters using it."""
    with api_client() as client:
        net = client.get_network(network)
    show(net, output)


@network_app.command("delete")
def network_delete(network: Annotated[str, typer.Argument(help="Network name or uuid.")]) -> None:
    """Delete a network (refused while a cluster uses it)."""
    with api_client() as client:
        client.delete_network(network)
    say(f"network {network} deleted")


ATTACHED_COLUMNS = ("INTERFACE", "NETWORK", "CIDR", "NETWORK UUID")


@cluster_network_app.command("attach")
def cluster_network_attach(
    cluster: Annotated[str, typer.Argument(help="Cluster name or uuid.")],
    network: Annotated[str, typer.Argument(help="Network name or uuid.")],
    wait: WaitOption = False,
) -> None:
    """Give every node of a running cluster an interface on a network; containers keep running."""
    with api_client() as client:
        attached = client.attach_network(cluster, network)
        # Follow the uuid: a new cluster may take the name meanwhile.
        ident = str(attached.get("cluster_uuid") or cluster)
        if not wait:
            say(f"Request to attach network {network} to cluster {cluster} as {attached.get('interface')} accepted")
            return
        final = wait_for_cluster(client, ident, "UPDATE", stderr_console()) or {}
    say(f"network {network} is {attached.get('interface')} on every node of cluster {cluster} "
        f"({final.get('status')})")


@cluster_network_app.command("list")
def cluster_network_list(
    cluster: Annotated[str, typer.Argument(help="Cluster name or uuid.")],
    output: FormatOption = OutputFormat.table,
) -> None:
    """A cluster's networks, in interface order."""
    with api_client() as client:
        found = client.cluster_networks(cluster)
    if output == OutputFormat.json:
        print_json(found)
        return
    rows = ([_cell(a.get("interface")), _cell(a.get("network_name")), _cell(a.get("cidr")),
             _cell(a.get("network_uuid"))] for a in found)
    stdout_console().print(table(ATTACHED_COLUMNS, rows))
