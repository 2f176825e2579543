"""What every noun's commands share: the API client, `-f/--format`, `--wait`, `--label`, showing one object."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.text import Text

from floe.cli.errors import CLIError
from floe.cli.output import OutputFormat, print_json, show_object, stdout_console
from floe.client import FloeAPIError, FloeClient, resolve_credentials, resolve_url

FormatOption = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="table for people, json for scripts (the API objects).")
]
LabelOption = Annotated[
    list[str] | None, typer.Option("--label", "-l", metavar="KEY=VALUE", help="A label; repeat for more.")
]
# Two wordings, kept as users know them: a cluster operation shows progress, a share change does not.
WaitOption = Annotated[bool, typer.Option("--wait", help="Follow progress until the operation ends.")]
ChangeWaitOption = Annotated[bool, typer.Option("--wait", help="Wait until the change is done (or failed).")]


@contextmanager
def api_client() -> Iterator[FloeClient]:
    """A client for FLOE_URL with FLOE_TOKEN, the token of `floe login`, or the local server's admin token."""
    credentials = resolve_credentials()
    try:
        with FloeClient(resolve_url(), credentials.token) as client:
            yield client
    except FloeAPIError as exc:
        # A stored login can be revoked behind the user's back (logout elsewhere, a password
        # changed, a role taken away): say what to do rather than a bare 401.
        if exc.status == 401 and credentials.login is not None:
            raise CLIError(f"your login as {credentials.login.describe()} is no longer valid (revoked, or the "
                           f"server no longer knows it): run `floe login`") from None
        raise


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


def show(obj: dict[str, Any], output: OutputFormat, styles: dict[str, str] | None = None) -> None:
    """One API object: a Field/Value table, or exactly the object as JSON."""
    if output == OutputFormat.json:
        print_json(obj)
    else:
        stdout_console().print(show_object(obj, styles))


def say(message: str) -> None:
    """One line on stdout, never wrapped at the console width."""
    stdout_console().print(Text(message), soft_wrap=True)
