"""`floe cluster logs NAME`: a node daemon's log (dockerd by default), its last lines or followed."""

from __future__ import annotations

from typing import Annotated

import typer

from floe.cli.options import api_client

MAX_TAIL = 10_000  # the server's bound (services/logs.py)


def cluster_logs(
    name: Annotated[str, typer.Argument(help="Cluster name or uuid.")],
    node: Annotated[str | None, typer.Option("--node", "-n", help="One node (see `floe cluster nodes`); "
                                             "every node's, each line prefixed with its name, if absent.")] = None,
    daemon: Annotated[str | None, typer.Option("--daemon", "-d", help="dockerd (the default), journald (the "
                                               "node's journal: containers logging with the journald driver), "
                                               "slurmd, slurmctld, munged, …")] = None,
    tail: Annotated[int | None, typer.Option("--tail", min=0, max=MAX_TAIL,
                                             help="Last lines of each log (default 100).")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Then print new lines until Ctrl-C.")] = False,
) -> None:
    """A node daemon's log: dockerd's, the node's journal, or a COE daemon's (slurmd, …)."""
    with api_client() as client:
        if not follow:
            typer.echo(client.cluster_logs(name, node=node, daemon=daemon, tail=tail), nl=False)
            return
        try:
            for line in client.follow_cluster_logs(name, node=node, daemon=daemon, tail=tail):
                typer.echo(line)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None


def register(cluster_app: typer.Typer) -> None:
    cluster_app.command("logs")(cluster_logs)
