"""Rendering for the CLI: Rich tables for people, plain JSON for machines, one-line errors."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


def _width(stream: Any) -> int | None:
    # Rich assumes 80 columns when not writing to a terminal, which would wrap
    # uuids in piped output; use a wide line unless COLUMNS says otherwise.
    if os.environ.get("COLUMNS"):
        return None
    try:
        return None if stream.isatty() else 200
    except (AttributeError, ValueError):
        return 200


def stdout_console() -> Console:
    """A console on the current stdout (looked up per call so test runners can swap it)."""
    return Console(file=sys.stdout, width=_width(sys.stdout), highlight=False)


def stderr_console() -> Console:
    """A console on the current stderr, for progress and diagnostics."""
    return Console(file=sys.stderr, width=_width(sys.stderr), highlight=False)


def print_error(message: str) -> None:
    """`error: <message>` as exactly one line on stderr."""
    line = " ".join(str(message).split()) or "unknown error"
    text = Text.assemble(("error:", "bold red"), " ", line)
    # soft_wrap keeps Rich from breaking the line at the console width.
    stderr_console().print(text, soft_wrap=True)


def print_json(data: Any) -> None:
    """Exactly the API objects, as indented JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def status_style(status: str | None) -> str:
    """Colour for a Magnum status string (CREATE_COMPLETE, UPDATE_FAILED, ...)."""
    s = (status or "").upper()
    if s.endswith("_COMPLETE"):
        return "green"
    if s.endswith("_FAILED"):
        return "bold red"
    if s.endswith("_IN_PROGRESS"):
        return "yellow"
    return ""


def health_style(health: str | None) -> str:
    """Colour for a health status (HEALTHY, UNHEALTHY, UNKNOWN)."""
    h = (health or "").upper()
    if h == "HEALTHY":
        return "green"
    if h == "UNHEALTHY":
        return "bold red"
    return "dim"


def node_state_style(state: str | None) -> str:
    """Colour for a node's lifecycle state (planned, started, joined, ready, removing, ...)."""
    s = (state or "").lower()
    if s == "ready":
        return "green"
    if s in ("failed", "error"):
        return "bold red"
    if s == "removing":
        return "magenta"
    return "yellow"


def share_style(status: str | None) -> str:
    """Colour for a Manila share status (available, creating, error, ...)."""
    s = (status or "").lower()
    if s == "available":
        return "green"
    if "error" in s:
        return "bold red"
    return "yellow"


def state_style(state: str | None) -> str:
    """Colour for an access rule's or a mount's state (active, attached, error, ...)."""
    s = (state or "").lower()
    if s in ("active", "attached"):
        return "green"
    if s == "error":
        return "bold red"
    return "yellow"


def fmt(value: Any) -> str:
    """One cell: dashes for nothing, k=v for mappings, commas for lists."""
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        if all(not isinstance(v, dict | list) for v in value.values()):
            return ", ".join(f"{k}={v}" for k, v in value.items())
        return json.dumps(value, default=str)
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            return ", ".join(str(v) for v in value)
        return json.dumps(value, default=str)
    return str(value)


def styled(value: Any, style: str) -> Text:
    return Text(fmt(value), style=style)


def table(columns: Sequence[str], rows: Iterable[Sequence[Text | str]], title: str | None = None) -> Table:
    t = Table(title=title, header_style="bold", show_lines=False)
    for column in columns:
        t.add_column(column, overflow="fold")
    for row in rows:
        t.add_row(*row)
    return t


def show_object(obj: dict[str, Any], styles: dict[str, str] | None = None) -> Table:
    """A Field/Value table of one API object, in the API's field order."""
    styles = styles or {}
    t = Table(show_header=True, header_style="bold")
    t.add_column("Field", style="bold", no_wrap=True)
    t.add_column("Value", overflow="fold")
    for key, value in obj.items():
        if key == "links":
            continue  # Magnum's self/bookmark links: noise in a table, kept in -f json
        t.add_row(key, styled(value, styles.get(key, "")))
    return t
