"""The `floe` command line: run the server, and manage templates, clusters and images through its API.

Every failure reaches the user as one `error: ...` line on stderr and a non-zero exit, never a
traceback (set FLOE_DEBUG=1 to see one for an unexpected error).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.text import Text
from typer.core import TyperGroup

from floe import __version__
from floe.cli.errors import CLIError
from floe.cli.output import (
    OutputFormat,
    fmt,
    health_style,
    node_state_style,
    print_error,
    print_json,
    show_object,
    status_style,
    stderr_console,
    stdout_console,
    styled,
    table,
)
from floe.cli.shares import attach_shares, check_attachable, register_cluster_commands, share_app, wait_attachment
from floe.client import FloeClient, FloeError, resolve_token, resolve_url

try:  # typer >= 0.2x vendors click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer on real click
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError  # type: ignore[no-redef]


def _describe_os_error(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return exc.strerror or str(exc)


class FloeGroup(TyperGroup):
    """The root group: turns every error below it into one `error: ...` line."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            self._usage_error(exc)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, NoArgsIsHelpError):
            raise
        except UsageError as exc:
            self._usage_error(exc)
        except ClickException as exc:
            print_error(exc.format_message())
            raise typer.Exit(exc.exit_code) from None
        except CLIError as exc:
            print_error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except FloeError as exc:
            print_error(str(exc))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            print_error("interrupted")
            raise typer.Exit(130) from None
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # `floe ... | head`: typer exits quietly on a closed pipe
            print_error(_describe_os_error(exc))
            raise typer.Exit(1) from None
        except Exception as exc:
            if os.environ.get("FLOE_DEBUG"):
                raise
            print_error(f"unexpected {type(exc).__name__}: {exc} (set FLOE_DEBUG=1 for a traceback)")
            raise typer.Exit(1) from None

    @staticmethod
    def _usage_error(exc: UsageError) -> NoReturn:
        where = exc.ctx.command_path if exc.ctx is not None else "floe"
        print_error(f"{exc.format_message()} (see `{where} --help`)")
        raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    name="floe",
    cls=FloeGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
template_app = typer.Typer(help="Cluster templates.", no_args_is_help=True)
cluster_app = typer.Typer(help="Clusters.", no_args_is_help=True)
image_app = typer.Typer(help="Container images for clusters.", no_args_is_help=True)
app.add_typer(template_app, name="template")
app.add_typer(cluster_app, name="cluster")
app.add_typer(image_app, name="image")
app.add_typer(share_app, name="share")

FormatOption = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="table for people, json for scripts (the API objects).")
]
LabelOption = Annotated[
    list[str] | None, typer.Option("--label", "-l", metavar="KEY=VALUE", help="A label; repeat for more.")
]
WaitOption = Annotated[bool, typer.Option("--wait", help="Follow progress until the operation ends.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"floe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """floe: real Docker Swarm clusters behind an OpenStack Magnum-shaped API.

    The client commands talk to FLOE_URL (default http://127.0.0.1:9511) with FLOE_TOKEN, or with
    the admin token a local server keeps in $FLOE_HOME/admin-token.
    """


@contextmanager
def _client() -> Iterator[FloeClient]:
    with FloeClient(resolve_url(), resolve_token()) as client:
        yield client


def parse_labels(items: list[str] | None) -> dict[str, str]:
    """`KEY=VALUE` strings to a dict; the value may itself contain `=`."""
    labels: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CLIError(f"invalid label {item!r}: expected KEY=VALUE")
        labels[key] = value
    return labels


# -- server and maintenance -----------------------------------------------------


@app.command("server")
def server() -> None:
    """Run the floe API server and engine in the foreground (settings from FLOE_* variables)."""
    from floe.server import serve

    serve()


@app.command("cleanup")
def cleanup(
    all_: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Remove everything of this FLOE_HOME, without a server (clusters, networks, registry).",
        ),
    ] = False,
    host_wide: Annotated[
        bool,
        typer.Option("--host-wide", help="With --all: every floe object on this host, whatever its FLOE_HOME."),
    ] = False,
    delete_share_data: Annotated[
        bool,
        typer.Option("--delete-share-data", help="With --all: delete the shares' data too (kept by default)."),
    ] = False,
) -> None:
    """Remove leftovers the server no longer tracks (admin); --all purges everything locally.

    --all takes shares offline (unmounts them, frees their loop devices) and keeps their data
    for the next server, unless --delete-share-data.
    """
    if host_wide and not all_:
        raise typer.BadParameter("--host-wide goes with --all")
    if delete_share_data and not all_:
        raise typer.BadParameter("--delete-share-data goes with --all")
    if all_:
        from floe.cleanup import purge_all_local

        removed: list[str] = list(purge_all_local(host_wide=host_wide, delete_share_data=delete_share_data))
    else:
        with _client() as client:
            removed = client.cleanup()
    out = stdout_console()
    if not removed:
        out.print("nothing to clean up")
        return
    for item in removed:
        out.print(Text(f"removed {item}"), soft_wrap=True)


# -- templates -------------------------------------------------------------------

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


def _show(obj: dict[str, Any], output: OutputFormat, styles: dict[str, str] | None = None) -> None:
    if output == OutputFormat.json:
        print_json(obj)
    else:
        stdout_console().print(show_object(obj, styles))


@template_app.command("create")
def template_create(
    name: Annotated[str, typer.Argument(help="Template name.")],
    coe: Annotated[str, typer.Option("--coe", help="Container orchestration engine.")] = "swarm",
    image: Annotated[str | None, typer.Option("--image", help="Node image.")] = None,
    flavor: Annotated[str | None, typer.Option("--flavor", help="Worker flavor.")] = None,
    master_flavor: Annotated[str | None, typer.Option("--master-flavor", help="Manager flavor.")] = None,
    label: LabelOption = None,
    public: Annotated[bool, typer.Option("--public", help="Visible to every project.")] = False,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Create a cluster template."""
    labels = parse_labels(label)
    with _client() as client:
        created = client.create_template(
            name, coe, image_id=image, flavor_id=flavor, master_flavor_id=master_flavor,
            labels=labels, public=public,
        )
    _show(created, output)


@template_app.command("list")
def template_list(output: FormatOption = OutputFormat.table) -> None:
    """List cluster templates."""
    with _client() as client:
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
    with _client() as client:
        _show(client.get_template(name), output)


@template_app.command("delete")
def template_delete(name: Annotated[str, typer.Argument(help="Template name or uuid.")]) -> None:
    """Delete a cluster template (refused while clusters use it)."""
    with _client() as client:
        client.delete_template(name)
    stdout_console().print(Text(f"deleted cluster template {name}"), soft_wrap=True)


# -- clusters --------------------------------------------------------------------

CLUSTER_COLUMNS = ("NAME", "UUID", "STATUS", "HEALTH", "MASTERS", "NODES", "API ADDRESS")
CLUSTER_STYLES = {"status": "", "health_status": ""}


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
    from floe.cli.wait import wait_for_cluster

    return wait_for_cluster(client, ident, action, stderr_console())


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
) -> None:
    """Create a cluster from a template."""
    labels = parse_labels(label)
    with _client() as client:
        # Resolve the template first: a clear "not found" beats a failed create, and the
        # request then carries the uuid whatever the user typed.
        template_uuid = str(client.get_template(template)["uuid"])
        if share:
            check_attachable(client, name, share)  # before anything is created
        uuid = client.create_cluster(
            name, template_uuid, node_count=node_count, master_count=master_count,
            labels=labels, create_timeout=timeout,
        )
        out = stdout_console()
        if share:
            # Recorded now, mounted as soon as the first node has started (every node sees it).
            attach_shares(client, uuid, share, name)
        if not wait:
            out.print(Text(f"Request to create cluster {name} ({uuid}) accepted"), soft_wrap=True)
            return
        cluster = _wait(client, uuid, "CREATE") or {}
        for ident in share or []:
            wait_attachment(client, uuid, client.get_share(ident)["id"])
    out.print(Text(f"cluster {name} is {cluster.get('status')} at {fmt(cluster.get('api_address'))}"),
              soft_wrap=True)


@cluster_app.command("list")
def cluster_list(output: FormatOption = OutputFormat.table) -> None:
    """List clusters."""
    with _client() as client:
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
    with _client() as client:
        cluster = client.get_cluster(name)
    _show(cluster, output, _cluster_styles(cluster))


@cluster_app.command("delete")
def cluster_delete(
    name: Annotated[str, typer.Argument(help="Cluster name or uuid.")],
    wait: WaitOption = False,
) -> None:
    """Delete a cluster and everything it runs."""
    with _client() as client:
        # Follow the uuid, not the name: a new cluster may take the name meanwhile.
        ident = str(client.get_cluster(name)["uuid"]) if wait else name
        client.delete_cluster(ident)
        out = stdout_console()
        if not wait:
            out.print(Text(f"Request to delete cluster {name} has been accepted"), soft_wrap=True)
            return
        _wait(client, ident, "DELETE")
    out.print(Text(f"cluster {name} deleted"), soft_wrap=True)


@cluster_app.command("resize")
def cluster_resize(
    name: Annotated[str, typer.Argument(help="Cluster name or uuid.")],
    node_count: Annotated[int, typer.Option("--node-count", min=0, help="New number of worker nodes.")],
    remove: Annotated[
        list[str] | None,
        typer.Option("--remove", metavar="NODE", help="A node (name or uuid) to remove first; repeat."),
    ] = None,
    wait: WaitOption = False,
) -> None:
    """Grow or shrink a cluster's workers."""
    with _client() as client:
        # Follow the uuid while waiting; the server resolves node names and uuids itself.
        ident = str(client.get_cluster(name)["uuid"])
        client.resize(ident, node_count, remove)
        out = stdout_console()
        if not wait:
            message = f"Request to resize cluster {name} to {node_count} nodes accepted"
            out.print(Text(message), soft_wrap=True)
            return
        cluster = _wait(client, ident, "UPDATE") or {}
    out.print(Text(f"cluster {name} is {cluster.get('status')} with {cluster.get('node_count')} nodes"),
              soft_wrap=True)


NODE_COLUMNS = ("NAME", "ROLE", "ADDRESS", "STATE", "HEALTH", "HEALTH REASON", "SWARM ID", "UUID")


def _node_row(n: dict[str, Any]) -> list[Text | str]:
    swarm_id = n.get("swarm_node_id")
    return [
        fmt(n.get("name")),
        fmt(n.get("role")),
        fmt(n.get("address")),
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
    with _client() as client:
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

    Use it as: eval $(floe cluster config NAME)
    """
    from floe.cli.clusterconfig import write_cluster_config

    with _client() as client:
        config = write_cluster_config(client, name, directory, force)
    # stdout carries only the export line, so `eval $(...)` works; the note goes to stderr.
    stderr_console().print(Text(f"wrote ca.pem, cert.pem, key.pem to {config.directory}"), soft_wrap=True)
    typer.echo(config.export_line())


# -- images ----------------------------------------------------------------------


@image_app.command("import")
def image_import(
    file: Annotated[Path, typer.Argument(help="A `docker save` tarball.", metavar="FILE.tar")],
) -> None:
    """Upload images into floe's registry, for every cluster to pull."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    size = file.stat().st_size  # also a clear error for a missing file, before connecting
    console = stderr_console()
    with _client() as client:
        if not console.is_terminal:
            images = client.import_image(file)
        else:
            with Progress(
                "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), console=console, transient=True,
            ) as progress:
                task = progress.add_task(f"uploading {file.name}", total=size)
                images = client.import_image(file, progress=lambda done: progress.update(task, completed=done))
    out = stdout_console()
    if not images:
        out.print("no images found in the tarball")
        return
    for image in images:
        out.print(Text(f"imported {image}"), soft_wrap=True)


register_cluster_commands(cluster_app)  # after the cluster commands above, so `--help` lists them first
