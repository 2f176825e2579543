"""`floe share …` and `floe cluster attach|detach|shares`: shares through the API (Manila's v2 and floe's)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.text import Text

from floe.cli.errors import CLIError
from floe.cli.output import OutputFormat, fmt, print_json, show_object, stdout_console, styled, table
from floe.client import FloeAPIError, FloeClient, resolve_token, resolve_url

share_app = typer.Typer(help="Shared storage: shares, access rules, where they are mounted.", no_args_is_help=True)
access_app = typer.Typer(help="Who may mount a share (access rules).", no_args_is_help=True)
share_app.add_typer(access_app, name="access")

FormatOption = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="table for people, json for scripts (the API objects).")
]
WaitOption = Annotated[bool, typer.Option("--wait", help="Wait until the change is done (or failed).")]
WAIT_TIMEOUT = 300.0
POLL = 0.3


@contextmanager
def _client() -> Iterator[FloeClient]:
    with FloeClient(resolve_url(), resolve_token()) as client:
        yield client


def share_style(status: str | None) -> str:
    s = (status or "").lower()
    if s == "available":
        return "green"
    if "error" in s:
        return "bold red"
    return "yellow"


def state_style(state: str | None) -> str:
    s = (state or "").lower()
    if s in ("active", "attached"):
        return "green"
    if s == "error":
        return "bold red"
    return "yellow"


def _show(obj: dict[str, Any], output: OutputFormat, styles: dict[str, str] | None = None) -> None:
    if output == OutputFormat.json:
        print_json(obj)
    else:
        stdout_console().print(show_object(obj, styles))


def _say(message: str) -> None:
    stdout_console().print(Text(message), soft_wrap=True)


def _poll(what: str, get: Callable[[], Any], done: Callable[[Any], bool | str]) -> Any:
    """Call `get` until `done(value)` is True (or a string: the failure); CLIError on failure or timeout."""
    deadline = time.monotonic() + WAIT_TIMEOUT
    while True:
        value = get()
        verdict = done(value)
        if isinstance(verdict, str):
            raise CLIError(verdict)
        if verdict:
            return value
        if time.monotonic() > deadline:
            raise CLIError(f"timed out waiting for {what}")
        time.sleep(POLL)


def _wait_share(client: FloeClient, ident: str, gone_ok: bool = False) -> dict[str, Any] | None:
    def get() -> dict[str, Any] | None:
        try:
            return client.get_share(ident)
        except FloeAPIError as exc:
            if exc.status == 404 and gone_ok:
                return None
            raise

    def done(share: dict[str, Any] | None) -> bool | str:
        if share is None:
            return True
        status = str(share.get("status"))
        if "error" in status:
            return f"share {share.get('name') or share.get('id')} is {status}: {share.get('status_reason') or '-'}"
        return status == "available" and not gone_ok

    return _poll(f"share {ident}", get, done)


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
    wait: WaitOption = False,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Create a share."""
    if size <= 0:
        raise CLIError(f"SIZE_GB must be > 0, not {size}")
    with _client() as client:
        share = client.create_share(size, name=name, share_type=share_type, description=description)
        if wait:
            share = _wait_share(client, share["id"]) or share
    _show(share, output, {"status": share_style(share.get("status"))})


@share_app.command("list")
def share_list(output: FormatOption = OutputFormat.table) -> None:
    """List shares."""
    with _client() as client:
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
    with _client() as client:
        obj = client.get_share(share)
        obj["export_locations"] = [loc["path"] for loc in client.export_locations(obj["id"])]
        obj["mounts"] = [f"{m['cluster_name']}:{m['path']} ({m['access_level']}, {m['state']})"
                         for m in client.share_mounts(obj["id"])]
    _show(obj, output, {"status": share_style(obj.get("status"))})


@share_app.command("delete")
def share_delete(
    share: Annotated[str, typer.Argument(help="Share name or id.")],
    force: Annotated[bool, typer.Option("--force", help="Detach it from every cluster first.")] = False,
    wait: WaitOption = False,
) -> None:
    """Delete a share and its data (refused while it is attached, unless --force)."""
    with _client() as client:
        ident = client.get_share(share)["id"]
        client.delete_share(ident, force=force)
        if wait:
            _wait_share(client, ident, gone_ok=True)
            _say(f"share {share} deleted")
            return
    _say(f"Request to delete share {share} has been accepted")


def _resize(share: str, size: int, wait: bool, extend: bool) -> None:
    with _client() as client:
        ident = client.get_share(share)["id"]
        (client.extend_share if extend else client.shrink_share)(ident, size)
        if not wait:
            _say(f"Request to {'extend' if extend else 'shrink'} share {share} to {size} GiB accepted")
            return
        final = _wait_share(client, ident) or {}
    _say(f"share {share} is {final.get('status')} with {final.get('size')} GiB")


@share_app.command("extend")
def share_extend(
    share: Annotated[str, typer.Argument(help="Share name or id.")],
    size: Annotated[int, typer.Argument(help="New size in GiB.", metavar="NEW_SIZE_GB")],
    wait: WaitOption = False,
) -> None:
    """Grow a share."""
    _resize(share, size, wait, extend=True)


@share_app.command("shrink")
def share_shrink(
    share: Annotated[str, typer.Argument(help="Share name or id.")],
    size: Annotated[int, typer.Argument(help="New size in GiB.", metavar="NEW_SIZE_GB")],
    wait: WaitOption = False,
) -> None:
    """Shrink a share (only when it is attached nowhere and its data fits)."""
    _resize(share, size, wait, extend=False)


@share_app.command("types")
def share_types(output: FormatOption = OutputFormat.table) -> None:
    """The share types (one per backend) and what they guarantee."""
    with _client() as client:
        types = client.share_types()
    if output == OutputFormat.json:
        print_json(types)
        return
    rows = ([fmt(t["name"]), fmt(t["extra_specs"].get("storage_protocol")), fmt(t.get("description"))]
            for t in types)
    stdout_console().print(table(("NAME", "PROTOCOL", "DESCRIPTION"), rows))


MOUNT_COLUMNS = ("CLUSTER", "PATH", "ACCESS", "STATE", "NODES", "REASON")


def _mount_row(m: dict[str, Any], first: str) -> list[Text | str]:
    return [fmt(m.get(first)), fmt(m.get("path")), fmt(m.get("access_level")),
            styled(m.get("state"), state_style(m.get("state"))), fmt(len(m.get("nodes") or [])),
            fmt(m.get("state_reason"))]


@share_app.command("mounts")
def share_mounts(
    share: Annotated[str, typer.Argument(help="Share name or id.")],
    output: FormatOption = OutputFormat.table,
) -> None:
    """Where a share is mounted: clusters, paths in their nodes, states."""
    with _client() as client:
        mounts = client.share_mounts(share)
    if output == OutputFormat.json:
        print_json(mounts)
        return
    stdout_console().print(table(MOUNT_COLUMNS, (_mount_row(m, "cluster_name") for m in mounts)))


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
    with _client() as client:
        ident = client.get_share(share)["id"]
        rule = client.allow_access(ident, cluster or ip or "", level, "floe_cluster" if cluster else "ip")
    _show(rule, output, {"state": state_style(rule.get("state"))})


@access_app.command("deny")
def access_deny(
    share: Annotated[str, typer.Argument(help="Share name or id.")],
    rule: Annotated[str | None, typer.Argument(help="Access rule id (or use --cluster).")] = None,
    cluster: Annotated[str | None, typer.Option("--cluster", "-c", help="The cluster whose rule goes.")] = None,
) -> None:
    """Withdraw an access rule; the clusters it let in are detached."""
    if (rule is None) == (cluster is None):
        raise CLIError("give exactly one of RULE_ID or --cluster")
    with _client() as client:
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
    _say(f"Request to deny access rule {rule} on share {share} accepted")


@access_app.command("list")
def access_list(
    share: Annotated[str, typer.Argument(help="Share name or id.")],
    output: FormatOption = OutputFormat.table,
) -> None:
    """A share's access rules."""
    with _client() as client:
        rules = client.list_access(client.get_share(share)["id"])
    if output == OutputFormat.json:
        print_json(rules)
        return
    rows = ([fmt(r["id"]), fmt(r["access_type"]), fmt(r["access_to"]), fmt(r["access_level"]),
             styled(r["state"], state_style(r["state"]))] for r in rules)
    stdout_console().print(table(RULE_COLUMNS, rows))


# -- clusters ------------------------------------------------------------------------------


def check_attachable(client: FloeClient, cluster: str, shares: list[str]) -> None:
    """Before creating a cluster with --share: each share exists and names the cluster in a rule."""
    for share in shares:
        obj = client.get_share(share)
        rules = client.list_access(obj["id"])
        if not any(r["access_to"] == cluster and r["access_type"] in ("floe_cluster", "user")
                   and r["state"] in ("queued_to_apply", "active") for r in rules):
            raise CLIError(
                f"cluster {cluster} has no access to share {share}: run "
                f"`floe share access allow {share} --cluster {cluster}` first"
            )


def wait_attachment(client: FloeClient, cluster: str, share_id: str, gone: bool = False) -> dict[str, Any] | None:
    def get() -> dict[str, Any] | None:
        return next((m for m in client.cluster_shares(cluster) if m["share_id"] == share_id), None)

    def done(m: dict[str, Any] | None) -> bool | str:
        if m is None:
            return True if gone else f"share {share_id} is no longer attached to {cluster}"
        if m["state"] == "error":
            return f"attaching to {cluster} failed: {m.get('state_reason') or '-'}"
        return m["state"] == "attached" and not gone

    return _poll(f"share {share_id} on cluster {cluster}", get, done)


def attach_shares(client: FloeClient, cluster: str, shares: list[str], display: str | None = None) -> None:
    """Queue the attachment of each share at /mnt/<share name> (the `--share` of `floe cluster create`)."""
    for share in shares:
        m = client.attach_share(cluster, share)
        _say(f"share {share} will be mounted at {m['path']} on every node of cluster {display or cluster}")


def register_cluster_commands(cluster_app: typer.Typer) -> None:
    """`floe cluster attach|detach|shares`."""

    @cluster_app.command("attach")
    def cluster_attach(
        cluster: Annotated[str, typer.Argument(help="Cluster name or uuid.")],
        share: Annotated[str, typer.Option("--share", "-s", help="Share name or id.")],
        path: Annotated[
            str | None, typer.Option("--path", help="Where in every node [default: /mnt/SHARE_NAME].")
        ] = None,
        ro: Annotated[bool, typer.Option("--ro", help="Mount it read-only.")] = False,
        wait: WaitOption = False,
        output: FormatOption = OutputFormat.table,
    ) -> None:
        """Mount a share on every node of a cluster (nodes added later too)."""
        with _client() as client:
            m = client.attach_share(cluster, share, path, ro)
            if wait:
                m = wait_attachment(client, cluster, m["share_id"]) or m
        _show(m, output, {"state": state_style(m.get("state"))})

    @cluster_app.command("detach")
    def cluster_detach(
        cluster: Annotated[str, typer.Argument(help="Cluster name or uuid.")],
        share: Annotated[str, typer.Option("--share", "-s", help="Share name or id.")],
        wait: WaitOption = False,
    ) -> None:
        """Unmount a share from every node of a cluster (its data stays)."""
        with _client() as client:
            m = client.detach_share(cluster, share)
            if wait:
                wait_attachment(client, cluster, m["share_id"], gone=True)
                _say(f"share {share} detached from cluster {cluster}")
                return
        _say(f"Request to detach share {share} from cluster {cluster} accepted")

    @cluster_app.command("shares")
    def cluster_shares(
        cluster: Annotated[str, typer.Argument(help="Cluster name or uuid.")],
        output: FormatOption = OutputFormat.table,
    ) -> None:
        """The shares attached to a cluster."""
        with _client() as client:
            found = client.cluster_shares(cluster)
        if output == OutputFormat.json:
            print_json(found)
            return
        columns = ("SHARE", *MOUNT_COLUMNS[1:])
        stdout_console().print(table(columns, (_mount_row(m, "share_name") for m in found)))


__all__ = ["attach_shares", "check_attachable", "register_cluster_commands", "share_app", "wait_attachment"]
