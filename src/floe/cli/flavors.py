"""`floe flavor …`: the node sizes (vCPUs, RAM, disk, GPUs) clusters, templates and nodegroups
name; everyone lists them, admins create and delete them (through Nova's API at /v2.1)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from floe.cli.options import FormatOption, api_client, say, show
from floe.cli.output import OutputFormat, fmt, print_json, stdout_console, table

flavor_app = typer.Typer(help="Flavors: node sizes (everyone lists them; admins create and delete).",
                         no_args_is_help=True)

FLAVOR_COLUMNS = ("NAME", "ID", "VCPUS", "RAM (MiB)", "DISK (GB)", "GPUS", "PUBLIC")
GPU_SPEC = "floe:gpus"  # the extra spec floe's flavors carry their GPU count in


def gpus_of(flavor: dict[str, Any]) -> int:
    """A flavor's GPUs, from its extra specs (none: 0)."""
    value = (flavor.get("extra_specs") or {}).get(GPU_SPEC, "0")
    return int(value) if str(value).isascii() and str(value).isdigit() else 0


def _row(f: dict[str, Any]) -> list[str]:
    return [fmt(f.get("name")), fmt(f.get("id")), fmt(f.get("vcpus")), fmt(f.get("ram")), fmt(f.get("disk")),
            fmt(gpus_of(f)), fmt(f.get("os-flavor-access:is_public"))]


@flavor_app.command("list")
def flavor_list(
    all_: Annotated[bool, typer.Option("--all", help="Private flavors too (admins).")] = False,
    output: FormatOption = OutputFormat.table,
) -> None:
    """List flavors: name, id, vCPUs, RAM, disk, GPUs."""
    with api_client() as client:
        flavors = client.list_flavors(all_flavors=all_)
    if output == OutputFormat.json:
        print_json(flavors)
        return
    stdout_console().print(table(FLAVOR_COLUMNS, (_row(f) for f in flavors)))


@flavor_app.command("show")
def flavor_show(
    flavor: Annotated[str, typer.Argument(help="Flavor name or id.")],
    output: FormatOption = OutputFormat.table,
) -> None:
    """Show one flavor."""
    with api_client() as client:
        show(client.get_flavor(flavor), output)


@flavor_app.command("create")
def flavor_create(
    name: Annotated[str, typer.Argument(help="Flavor name.")],
    vcpus: Annotated[int, typer.Option("--vcpus", min=1, help="Virtual CPUs of each node.")],
    ram: Annotated[int, typer.Option("--ram", min=1, help="Memory of each node, in MiB.")],
    disk: Annotated[int, typer.Option("--disk", min=0, help="Disk for each node's Docker data, in GB (0: no limit "
                                                            "of its own).")] = 0,
    gpus: Annotated[int, typer.Option("--gpus", min=0, help="Whole host GPUs given to each node.")] = 0,
    flavor_id: Annotated[str | None, typer.Option("--id", help="The flavor's id (default: a uuid).")] = None,
    private: Annotated[bool, typer.Option("--private", help="Visible to admins only.")] = False,
    description: Annotated[str | None, typer.Option("--description", help="A description.")] = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Create a flavor (admins)."""
    with api_client() as client:
        created = client.create_flavor(name, vcpus=vcpus, ram_mb=ram, disk_gb=disk, gpus=gpus, flavor_id=flavor_id,
                                       public=not private, description=description)
    show(created, output)


@flavor_app.command("delete")
def flavor_delete(flavor: Annotated[str, typer.Argument(help="Flavor name or id.")]) -> None:
    """Delete a flavor (admins; refused while a cluster, template or nodegroup names it)."""
    with api_client() as client:
        client.delete_flavor(flavor)
    say(f"deleted flavor {flavor}")
