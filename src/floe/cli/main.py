"""The `floe` command line: the root app, which registers one module per noun.

Operator commands (admin) run the server and clean up the host; login/logout/whoami choose who
the CLI acts as; templates, clusters, nodegroups, images, shares, networks, projects, users, roles
and application credentials go through the API with floe.client. Every failure reaches the user
as one `error: ...` line on stderr and a non-zero exit (see floe.cli.errors).
"""

from __future__ import annotations

from typing import Annotated

import typer

from floe import __version__
from floe.cli import admin, cluster_logs, login
from floe.cli.clusters import cluster_app
from floe.cli.errors import FloeGroup
from floe.cli.flavors import flavor_app
from floe.cli.identity import credential_app, project_app, role_app, user_app
from floe.cli.images import image_app
from floe.cli.jobs import job_app
from floe.cli.monitoring import monitoring_app
from floe.cli.networks import network_app
from floe.cli.nodegroups import nodegroup_app
from floe.cli.shares import share_app
from floe.cli.templates import template_app

app = typer.Typer(
    name="floe",
    cls=FloeGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
admin.register(app)
login.register(app)
app.add_typer(template_app, name="template")
cluster_logs.register(cluster_app)
app.add_typer(cluster_app, name="cluster")
app.add_typer(nodegroup_app, name="nodegroup")
app.add_typer(flavor_app, name="flavor")
app.add_typer(image_app, name="image")
app.add_typer(share_app, name="share")
app.add_typer(network_app, name="network")
app.add_typer(job_app, name="job")
app.add_typer(project_app, name="project")
app.add_typer(user_app, name="user")
app.add_typer(role_app, name="role")
app.add_typer(credential_app, name="credential")
app.add_typer(monitoring_app, name="monitoring")


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

    The client commands talk to FLOE_URL (default http://127.0.0.1:9511) with FLOE_TOKEN, else the
    token `floe login` stored, else the admin token a local server keeps in $FLOE_HOME/admin-token.
    """
