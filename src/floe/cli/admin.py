"""Operator commands on the root app: `floe server` and `floe cleanup`.

These are the only commands that reach past the API: the server runs here, and
`cleanup --all` purges this host's leftovers without one.
"""

from __future__ import annotations

from typing import Annotated

import typer

from floe.cli.options import api_client, say
from floe.cli.output import stdout_console


def server() -> None:
    """Run the floe API server and engine in the foreground (settings from FLOE_* variables)."""
    from floe.server import serve

    serve()


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
        with api_client() as client:
            removed = client.cleanup()
    if not removed:
        stdout_console().print("nothing to clean up")
        return
    for item in removed:
        say(f"removed {item}")


def register(app: typer.Typer) -> None:
    """Put the operator commands on the root app (first in `floe --help`)."""
    app.command("server")(server)
    app.command("cleanup")(cleanup)
