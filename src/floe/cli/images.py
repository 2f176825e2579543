"""`floe image …`: container images in floe's registry, for clusters to pull."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from floe.cli.options import api_client, say
from floe.cli.output import stderr_console, stdout_console

image_app = typer.Typer(help="Container images for clusters.", no_args_is_help=True)


@image_app.command("import")
def image_import(
    file: Annotated[Path, typer.Argument(help="A `docker save` tarball.", metavar="FILE.tar")],
    library: Annotated[bool, typer.Option(
        "--library", help="Into the public library namespace, pulled by every cluster (admins only)."
    )] = False,
) -> None:
    """Upload images into your project's namespace of floe's registry, for your clusters to pull.

    Use them by the names printed (`<project id>/NAME:TAG`); a docker client set up by
    `floe cluster config` sends the cluster's pull credential (`docker stack deploy
    --with-registry-auth` passes it on to the nodes).
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    size = file.stat().st_size  # also a clear error for a missing file, before connecting
    console = stderr_console()
    with api_client() as client:
        if not console.is_terminal:
            images = client.import_image(file, library=library)
        else:
            with Progress(
                "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), console=console, transient=True,
            ) as progress:
                task = progress.add_task(f"uploading {file.name}", total=size)
                images = client.import_image(
                    file, progress=lambda done: progress.update(task, completed=done), library=library
                )
    if not images:
        stdout_console().print("no images found in the tarball")
        return
    for image in images:
        say(f"imported {image}")
