"""`floe template …`: cluster templates."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from floe.cli.options import FormatOption, LabelOption, api_client, parse_labels, say, show
from floe.cli.output import OutputFormat, fmt, print_json, stdout_console, table

template_app = typer.Typer(help="Cluster templates.", no_args_is_help=True)

TEMPLATE_COLUMNS = ("NAME", "UUID", "COE", "IMAGE", "FLAVOR", "MASTER FLAVOR", "PUBLIC", "LABELS")



def _template_row(t: dict[str, Any]) -> list[str]:
    return [
        fmt(t.get("name")),
        fmt(t.get("uuid")),
        fmt(t.get("coe")),
        fmt(t.get("image_id")),
        fmt(t.get("flavor_id")),
        fmt(t.get("master_flavor_id")),
        fmt(bool(t.get("public"))),
        fmt(t.get("labels")),
    ]


NetworkOption = Annotated[
    list[str] | None,
    typer.Option("--network", metavar="NETWORK",
                 help="A project network every node attaches to (eth1, eth2, … in order); repeat for more."),
]
DataNetworkOption = Annotated[
    str | None,
    typer.Option("--data-network", metavar="NETWORK", help="The --network that carries Swarm's overlay traffic."),
]


def network_fields(networks: list[str] | None, data_network: str | None, labels: dict[str, str]) -> dict:
    """Magnum's spelling of a node's networks: fixed_network, then labels extra_network_names and
    data_path_network (`labels` is updated in place); the fields to send beside them."""
    networks = list(networks or [])
    if data_network and data_network not in networks:
        networks.append(data_network)
    if not networks:
        return {}
    if len(networks) > 1:
        labels["extra_network_names"] = ",".join(networks[1:])
    if data_network:
        labels["data_path_network"] = data_network
    return {"fixed_network": networks[0]}


@template_app.command("create")
def template_create(
    name: Annotated[str, typer.Argument(help="Template name.")],
    coe: Annotated[str, typer.Option("--coe", help="Container orchestration engine.")] = "swarm",
    image: Annotated[str | None, typer.Option("--image", help="Node image.")] = None,
    flavor: Annotated[str | None, typer.Option("--flavor", help="Worker flavor (floe flavor list).")] = None,
    master_flavor: Annotated[
        str | None, typer.Option("--master-flavor", help="Manager flavor (floe flavor list).")
    ] = None,
    label: LabelOption = None,
    public: Annotated[bool, typer.Option("--public", help="Visible to every project.")] = False,
    network: NetworkOption = None,
    data_network: DataNetworkOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Create a cluster template."""
    labels = parse_labels(label)
    fields = network_fields(network, data_network, labels)
    with api_client() as client:
        created = client.create_template(
            name, coe, image_id=image, flavor_id=flavor, master_flavor_id=master_flavor,
            labels=labels, public=public, **fields,
        )
    show(created, output)


@template_app.command("list")
def template_list(output: FormatOption = OutputFormat.table) -> None:
    """List cluster templates."""
    with api_client() as client:
        templates = client.list_templates()
    if output == OutputFormat.json:
        print_json(templates)
        return
    stdout_console().print(table(TEMPLATE_COLUMNS, (_template_row(t) for t in templates)))


@template_app.command("show")
def template_show(
    name: Annotated[str, typer.Argument(help="Template name or uuid.")],
    output: FormatOption = OutputFormat.table,
) -> None:
    """Show one cluster template."""
    with api_client() as client:
        show(client.get_template(name), output)


@template_app.command("delete")
def template_delete(name: Annotated[str, typer.Argument(help="Template name or uuid.")]) -> None:
    """Delete a cluster template (refused while clusters use it)."""
    with api_client() as client:
        client.delete_template(name)
    say(f"deleted cluster template {name}")
