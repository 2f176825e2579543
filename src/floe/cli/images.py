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
) -> None:
    """Upload images into floe's registry, for every cluster to pull."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    size = file.stat().st_size  # also a clear error for a missing file, before connecting
    console = stderr_console()
    with api_client() as client:
        if not console.is_terminal:
            images = client.import_image(file)
        else:
            with Progress(
                "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), console=console, transient=True,
            ) as progress:
                task = progress.add_task(f"uploading {file.name}", total=size)
                images = client.import_image(file, progress=lambda done: progress.update(task, completed=done))
    if not images:
        stdout_console().print("no images found in the tarball")
        return
    for image in images:
        say(f"imported {image}")
