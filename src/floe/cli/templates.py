"""`floe template …`: cluster templates."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from floe.cli.options import FormatOption, LabelOption, api_client, parse_labels, say, show
from floe.cli.output import OutputFormat, fmt, print_json, stdout_console, table

template_app = typer.Typer(help="Cluster templates.", no_args_is_help=True)

TEMPLATE_COLUMNS = ("NAME", "UUID", "COE", "IMAGE", "FLAVOR", "MASTER FLAVOR", "PUBLIC", "LABELS")

# Stock clients send flavors, so they are accepted and shown; floe does not size nodes by them yet.
_UNSIZED = "(recorded and shown; not enforced yet: a node may use the whole machine)"


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


@template_app.command("create")
def template_create(
    name: Annotated[str, typer.Argument(help="Template name.")],
    coe: Annotated[str, typer.Option("--coe", help="Container orchestration engine.")] = "swarm",
    image: Annotated[str | None, typer.Option("--image", help="Node image.")] = None,
    flavor: Annotated[str | None, typer.Option("--flavor", help=f"Worker flavor {_UNSIZED}")] = None,
    master_flavor: Annotated[str | None, typer.Option("--master-flavor", help=f"Manager flavor {_UNSIZED}")] = None,
    label: LabelOption = None,
    public: Annotated[bool, typer.Option("--public", help="Visible to every project.")] = False,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Create a cluster template."""
    labels = parse_labels(label)
    with api_client() as client:
        created = client.create_template(
            name, coe, image_id=image, flavor_id=flavor, master_flavor_id=master_flavor,
            labels=labels, public=public,
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
