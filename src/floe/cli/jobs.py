"""`floe job …`: batch jobs on a Slurm cluster across a chosen number of its compute nodes, through the API."""

from __future__ import annotations

import codecs
import sys
import time
from typing import Annotated, Any

import typer
from rich.text import Text

from floe.cli.errors import CLIError
from floe.cli.options import FormatOption, api_client, say, show
from floe.cli.output import OutputFormat, fmt, print_json, stderr_console, stdout_console, styled, table
from floe.client import FloeClient

job_app = typer.Typer(
    help="Batch jobs on a Slurm cluster: a command run on each of N compute nodes, in an image if you like.",
    no_args_is_help=True,
)

# Slurm's states that do not change again (UNKNOWN: Slurm forgot the job before floe saw it end).
FINAL = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
         "PREEMPTED", "TIMEOUT", "SPECIAL_EXIT", "UNKNOWN"}
POLL = 0.5
JOB_COLUMNS = ("ID", "NAME", "STATE", "EXIT", "NODES", "NODE LIST", "IMAGE", "COMMAND", "SUBMITTED")

ClusterArg = Annotated[str, typer.Argument(help="Cluster name or uuid.")]
JobArg = Annotated[str, typer.Argument(help="Job id (Slurm's) or uuid.")]


def job_style(state: str | None) -> str:
    s = (state or "").upper()
    if s == "COMPLETED":
        return "green"
    if s in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
        return "yellow"
    if s == "CANCELLED":
        return "magenta"
    return "bold red"


def _row(j: dict[str, Any]) -> list[Text]:
    return [styled(j.get("id"), ""), styled(j.get("name"), ""), styled(j.get("state"), job_style(j.get("state"))),
            styled(j.get("exit_code"), ""), styled(j.get("nodes"), ""), styled(j.get("node_list"), ""),
            styled(j.get("image"), ""), Text(" ".join(j.get("command") or [])),
            styled(j.get("created_at"), "")]


def _follow(client: FloeClient, cluster: str, job: str, follow: bool) -> str:
    """Write the job's output to stdout (until it ends, with `follow`); returns its last state."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    offset, state = 0, ""
    while True:
        data, size, state = client.job_output(cluster, job, offset)
        if data:
            offset += len(data)
            sys.stdout.write(decoder.decode(data))
            sys.stdout.flush()
        if offset < size:
            continue  # more is there already
        if not follow or state in FINAL:
            # One more read once it ended: the last lines may land as the state changes.
            if follow:
                data, _, _ = client.job_output(cluster, job, offset)
                sys.stdout.write(decoder.decode(data, final=True))
                sys.stdout.flush()
            return state
        time.sleep(POLL)


def _exit_for(job: dict[str, Any]) -> int:
    """The job's exit code when it ran to its end, 1 when it was stopped another way."""
    if job.get("state") in ("COMPLETED", "FAILED") and isinstance(job.get("exit_code"), int):
        return min(int(job["exit_code"]), 255)
    return 0 if job.get("state") == "COMPLETED" else 1


@job_app.command("submit")
def job_submit(
    cluster: ClusterArg,
    command: Annotated[list[str] | None, typer.Argument(help="The command, after `--`: run once on each node.",
                                                        show_default=False)] = None,
    nodes: Annotated[int, typer.Option("--nodes", "-N", min=1, help="Compute nodes to run on.")] = 1,
    image: Annotated[str | None, typer.Option("--image", help="Run the command in this image (busybox, "
                                                              "<project id>/tool:1.0, …).")] = None,
    share: Annotated[list[str] | None, typer.Option(
        "--share", help="A share attached to the cluster, at /mnt/NAME in the container; repeat for more.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Job name (default: the command's name).")] = None,
    mpi: Annotated[bool, typer.Option("--mpi", help="Launch with srun --mpi=pmix (an MPI program).")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Show the output until the job ends; exit with its "
                                                      "exit code.")] = False,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Submit COMMAND to run on each of N compute nodes of a Slurm cluster: floe job submit c -N 3 -- hostname"""
    if not command:
        raise CLIError("give the command to run after `--`, e.g. floe job submit CLUSTER --nodes 2 -- hostname")
    with api_client() as client:
        job = client.submit_job(cluster, command, nodes=nodes, image=image, shares=share or [], name=name, mpi=mpi)
        job_id = str(job["id"])
        if not wait:
            if output == OutputFormat.json:
                print_json(job)
            else:
                say(f"job {job_id} ({job['name']}) submitted to cluster {cluster} on {job['nodes']} node(s)")
            return
        stderr_console().print(Text(f"job {job_id} submitted; waiting for it to end"), soft_wrap=True)
        if output != OutputFormat.json:
            _follow(client, cluster, job_id, follow=True)
        while (job := client.get_job(cluster, job_id)).get("state") not in FINAL:
            time.sleep(POLL)
    if output == OutputFormat.json:
        print_json(job)
    else:
        stderr_console().print(Text(f"job {job_id} {job.get('state')} (exit code {fmt(job.get('exit_code'))})"),
                               soft_wrap=True)
    raise typer.Exit(_exit_for(job))


@job_app.command("list")
def job_list(cluster: ClusterArg, output: FormatOption = OutputFormat.table) -> None:
    """The jobs submitted through floe to a cluster, with their state now."""
    with api_client() as client:
        found = client.list_jobs(cluster)
    if output == OutputFormat.json:
        print_json(found)
        return
    stdout_console().print(table(JOB_COLUMNS, (_row(j) for j in found)))


@job_app.command("show")
def job_show(cluster: ClusterArg, job: JobArg, output: FormatOption = OutputFormat.table) -> None:
    """One job: its state, exit code, nodes, times and command."""
    with api_client() as client:
        found = client.get_job(cluster, job)
    show(found, output, {"state": job_style(found.get("state"))})


@job_app.command("cancel")
def job_cancel(cluster: ClusterArg, job: JobArg) -> None:
    """Cancel a job (a job that already ended is left as it is)."""
    with api_client() as client:
        found = client.cancel_job(cluster, job)
    say(f"job {found.get('id')} cancel requested ({found.get('state')})")


@job_app.command("logs")
def job_logs(
    cluster: ClusterArg, job: JobArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep showing output until the job ends.")] = False,
) -> None:
    """The job's output: stdout and stderr of every node, as they wrote it."""
    with api_client() as client:
        _follow(client, cluster, job, follow)
