"""`floe monitoring up|down|status`: floe's Prometheus and Alertmanager on this host.

Like `floe server`, these run on the floe host as the server's user, with its FLOE_* settings
(FLOE_HOME, FLOE_PORT, FLOE_PROMETHEUS_PORT, …): the stack is a pair of host daemons of that
home, not something the API manages, so it can be started before the server, inspected while
the server is down, and stopped by `floe cleanup --all`. They reach the monitoring layer only
through the composition root (floe.server), as `floe server` does.
"""

from __future__ import annotations

import typer

from floe.cli.errors import CLIError
from floe.cli.options import say
from floe.cli.output import stdout_console

monitoring_app = typer.Typer(no_args_is_help=True, help="floe's Prometheus and Alertmanager on this host (admin).")


def _stack():
    from floe.server import monitoring_stack

    try:
        return monitoring_stack()  # settings from FLOE_*, as `floe server` reads them
    except ValueError as exc:  # a FLOE_* variable out of its range
        raise CLIError(str(exc)) from None


def _print(states) -> None:
    for daemon in states:
        state = f"running (pid {daemon.pid})" if daemon.running else "stopped"
        say(f"{daemon.name}: {daemon.url}  {state}")


@monitoring_app.command("up")
def up() -> None:
    """Start (or reconfigure) Prometheus and Alertmanager; print their URLs."""
    stack = _stack()
    try:
        states = stack.up()
    except RuntimeError as exc:  # MonitoringError: a program missing, a port taken, …
        raise CLIError(str(exc)) from None
    _print(states)


@monitoring_app.command("down")
def down() -> None:
    """Stop Prometheus and Alertmanager (their data stays in $FLOE_HOME/monitoring)."""
    stopped = _stack().down()
    if not stopped:
        stdout_console().print("nothing was running")
    for item in stopped:
        say(f"stopped {item}")


@monitoring_app.command("status")
def status() -> None:
    """Print Prometheus's and Alertmanager's URLs and whether they run."""
    _print(_stack().status())
