"""`floe share …`: shares and their access rules, through the API (Manila's v2 and floe's)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from floe.cli.errors import CLIError
from floe.cli.options import ChangeWaitOption, FormatOption, api_client, say, show
from floe.cli.output import (
    OutputFormat,
    fmt,
    print_json,
    share_style,
    state_style,
    stdout_console,
    styled,
    table,
)
from floe.cli.wait import wait_share
from floe.client import FloeAPIError

share_app = typer.Typer(help="Shared storage: shares, access rules, where they are mounted.", no_args_is_help=True)
access_app = typer.Typer(help="Who may mount a share (access rules).", no_args_is_help=True)
share_app.add_typer(access_app, name="access")

# -- shares ----------------------------------------------------------------------------

SHARE_COLUMNS = ("NAME", "ID", "SIZE (GiB)", "TYPE", "PROTOCOL", "STATUS", "ACCESS RULES")


def _share_row(s: dict[str, Any]) -> list[Text | str]:
    return [
        fmt(s.get("name")), fmt(s.get("id")), fmt(s.get("size")), fmt(s.get("share_type_name")),
        fmt(s.get("share_proto")), styled(s.get("status"), share_style(s.get("status"))),
        fmt(s.get("access_rules_status")),
    ]


@share_app.command("create")
def share_create(
    size: Annotated[int, typer.Argument(help="Size in GiB (a hard limit for local shares).", metavar="SIZE_GB")],
    name: Annotated[str | None, typer.Option("--name", "-n", help="Share name (unique in the project).")] = None,
    share_type: Annotated[str, typer.Option("--type", "-t", help="Share type: local or glusterfs.")] = "local",
    description: Annotated[str | None, typer.Option("--description", help="Free text.")] = None,
    wait: ChangeWaitOption = False,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Create a share."""
    if size <= 0:
        raise CLIError(f"SIZE_GB must be > 0, not {size}")
    with api_client() as client:
        share = client.create_share(size, name=name, share_type=share_type, description=description)
        if wait:
            share = wait_share(client, share["id"]) or share
    show(share, output, {"status": share_style(share.get("status"))})


@share_app.command("list")
def share_list(output: FormatOption = OutputFormat.table) -> None:
    """List shares."""
    with api_client() as client:
        shares = client.list_shares()
    if output == OutputFormat.json:
        print_json(shares)
        return
    stdout_console().print(table(SHARE_COLUMNS, (_share_row(s) for s in shares)))


@share_app.command("show")
def share_show(
    share: Annotated[str, typer.Argument(help="Share name or id.")],
    output: FormatOption = OutputFormat.table,
) -> None:
    """Show a share, where clients find it (export locations) and where it is mounted."""
    with api_client() as client:
        obj = client.get_share(share)
        obj["export_locations"] = [loc["path"] for loc in client.export_locations(obj["id"])]
        obj["mounts"] = [f"{m['cluster_name']}:{m['path']} ({m['access_level']}, {m['state']})"
                         for m in client.share_mounts(obj["id"])]
    show(obj, output, {"status": share_style(obj.get("status"))})


@share_app.command("delete")
def share_delete(
    share: Annotated[str, typer.Argument(help="Share name or id.")],
    force: Annotated[bool, typer.Option("--force", help="Detach it from every cluster first.")] = False,
    wait: ChangeWaitOption = False,
) -> None:
    """Delete a share and its data (refused while it is attached, unless --force)."""
    with api_client() as client:
        ident = client.get_share(share)["id"]
        client.delete_share(ident, force=force)
        if wait:
            wait_share(client, ident, gone_ok=True)
            say(f"share {share} deleted")
            return
    say(f"Request to delete share {share} has been accepted")


def _resize(share: str, size: int, wait: bool, extend: bool) -> None:
    with api_client() as client:
        ident = client.get_share(share)["id"]
        (client.extend_share if extend else client.shrink_share)(ident, size)
        if not wait:
            say(f"Request to {'extend' if extend else 'shrink'} share {share} to {size} GiB accepted")
            return
        final = wait_share(client, ident) or {}
    say(f"share {share} is {final.get('status')} with {final.get('size')} GiB")


@share_app.command("extend")
def share_extend(
    share: Annotated[str, typer.Argument(help="Share name or id.")],
    size: Annotated[int, typer.Argument(help="New size in GiB.", metavar="NEW_SIZE_GB")],
    wait: ChangeWaitOption = False,
) -> None:
    """Grow a share."""
    _resize(share, size, wait, extend=True)


@share_app.command("shrink")
def share_shrink(
    share: Annotated[str, typer.Argument(help="Share name or id.")],
    size: Annotated[int, typer.Argument(help="New size in GiB.", metavar="NEW_SIZE_GB")],
    wait: ChangeWaitOption = False,
) -> None:
    """Shrink a share (only when it is attached nowhere and its data fits)."""
    _resize(share, size, wait, extend=False)


@share_app.command("types")
def share_types(output: FormatOption = OutputFormat.table) -> None:
    """The share types (one per backend) and what they guarantee."""
    with api_client() as client:
        types = client.share_types()
    if output == OutputFormat.json:
        print_json(types)
        return
    rows = ([fmt(t["name"]), fmt(t["extra_specs"].get("storage_protocol")), fmt(t.get("description"))]
            for t in types)
    stdout_console().print(table(("NAME", "PROTOCOL", "DESCRIPTION"), rows))


MOUNT_COLUMNS = ("CLUSTER", "PATH", "ACCESS", "STATE", "NODES", "REASON")


def mount_row(m: dict[str, Any], first: str) -> list[Text | str]:
    """A mount as a row; `first` names the first column's field (the cluster's or the share's name)."""
    return [fmt(m.get(first)), fmt(m.get("path")), fmt(m.get("access_level")),
            styled(m.get("state"), state_style(m.get("state"))), fmt(len(m.get("nodes") or [])),
            fmt(m.get("state_reason"))]


@share_app.command("mounts")
def share_mounts(
    share: Annotated[str, typer.Argument(help="Share name or id.")],
    output: FormatOption = OutputFormat.table,
) -> None:
    """Where a share is mounted: clusters, paths in their nodes, states."""
    with api_client() as client:
        mounts = client.share_mounts(share)
    if output == OutputFormat.json:
        print_json(mounts)
        return
    stdout_console().print(table(MOUNT_COLUMNS, (mount_row(m, "cluster_name") for m in mounts)))


# -- access rules --------------------------------------------------------------------------

RULE_COLUMNS = ("ID", "TYPE", "TO", "LEVEL", "STATE")


@access_app.command("allow")
def access_allow(
    share: Annotated[str, typer.Argument(help="Share name or id.")],
    cluster: Annotated[str | None, typer.Option("--cluster", "-c", help="Cluster name or uuid.")] = None,
    ip: Annotated[str | None, typer.Option("--ip", help="An address or network (glusterfs only).")] = None,
    level: Annotated[str, typer.Option("--level", help="rw or ro.")] = "rw",
    output: FormatOption = OutputFormat.table,
) -> None:
    """Let a cluster (or an IP, where the share type allows) mount a share."""
    if (cluster is None) == (ip is None):
        raise CLIError("give exactly one of --cluster or --ip")
    if level not in ("rw", "ro"):
        raise CLIError(f"--level must be rw or ro, not {level!r}")
    with api_client() as client:
        ident = client.get_share(share)["id"]
        rule = client.allow_access(ident, cluster or ip or "", level, "floe_cluster" if cluster else "ip")
    show(rule, output, {"state": state_style(rule.get("state"))})


@access_app.command("deny")
def access_deny(
    share: Annotated[str, typer.Argument(help="Share name or id.")],
    rule: Annotated[str | None, typer.Argument(help="Access rule id (or use --cluster).")] = None,
    cluster: Annotated[str | None, typer.Option("--cluster", "-c", help="The cluster whose rule goes.")] = None,
) -> None:
    """Withdraw an access rule; the clusters it let in are detached."""
    if (rule is None) == (cluster is None):
        raise CLIError("give exactly one of RULE_ID or --cluster")
    with api_client() as client:
        ident = client.get_share(share)["id"]
        if cluster is not None:
            names = {cluster}
            try:
                names.add(str(client.get_cluster(cluster)["uuid"]))
            except FloeAPIError:
                pass  # the rule may name a cluster that no longer (or not yet) exists
            matches = [r for r in client.list_access(ident) if r["access_to"] in names]
            if not matches:
                raise CLIError(f"share {share} has no access rule for cluster {cluster}")
            rule = matches[0]["id"]
        client.deny_access(ident, str(rule))
    say(f"Request to deny access rule {rule} on share {share} accepted")


@access_app.command("list")
def access_list(
    share: Annotated[str, typer.Argument(help="Share name or id.")],
    output: FormatOption = OutputFormat.table,
) -> None:
    """A share's access rules."""
    with api_client() as client:
        rules = client.list_access(client.get_share(share)["id"])
    if output == OutputFormat.json:
        print_json(rules)
        return
    rows = ([fmt(r["id"]), fmt(r["access_type"]), fmt(r["access_to"]), fmt(r["access_level"]),
             styled(r["state"], state_style(r["state"]))] for r in rules)
    stdout_console().print(table(RULE_COLUMNS, rows))
