"""`floe project|user|role|credential …`: Keystone's projects, users, role assignments and
application credentials.

Projects, users and role assignments are the admins'; anyone manages their own application
credentials. Every command takes names or ids.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from floe.cli.errors import CLIError
from floe.cli.login import note, read_secret
from floe.cli.options import FormatOption, api_client, say, show
from floe.cli.output import OutputFormat, fmt, print_json, stdout_console, table
from floe.client import FloeClient, resolve_credentials

project_app = typer.Typer(help="Projects (admins).", no_args_is_help=True)
user_app = typer.Typer(help="Users (admins).", no_args_is_help=True)
role_app = typer.Typer(help="Roles and who holds them on which project (admins).", no_args_is_help=True)
credential_app = typer.Typer(
    help="Your application credentials: secrets for scripts, with some of your roles in your project.",
    no_args_is_help=True,
)

EnableOption = Annotated[bool | None, typer.Option("--enable/--disable", help="Enabled or disabled.")]
DescriptionOption = Annotated[str | None, typer.Option("--description", help="A description.")]
PasswordPromptOption = Annotated[bool, typer.Option("--password-prompt", help="Ask for the password (hidden).")]
PasswordStdinOption = Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")]
CredentialUserOption = Annotated[
    str | None, typer.Option("--user", help="Another user's credentials (admins; default: yours).")
]


def _label(obj: dict[str, Any]) -> str:
    return f"{obj.get('name')} ({obj.get('id')})"


def _password(prompt: bool, stdin: bool) -> str | None:
    if prompt and stdin:
        raise CLIError("give --password-prompt or --password-stdin, not both")
    if not (prompt or stdin):
        return None
    return read_secret("password", stdin, "--password-stdin", confirm=True)


def _nothing_to_change(fields: dict[str, Any], what: str) -> None:
    if not fields:
        raise CLIError(f"nothing to change: give at least one option (see `floe {what} set --help`)")


# -- projects -----------------------------------------------------------------------------------

PROJECT_COLUMNS = ("ID", "NAME", "ENABLED", "DESCRIPTION")


@project_app.command("list")
def project_list(output: FormatOption = OutputFormat.table) -> None:
    """List projects."""
    with api_client() as client:
        projects = client.list_projects()
    if output == OutputFormat.json:
        print_json(projects)
        return
    rows = ([fmt(p.get("id")), fmt(p.get("name")), fmt(p.get("enabled")), fmt(p.get("description"))]
            for p in projects)
    stdout_console().print(table(PROJECT_COLUMNS, rows))


@project_app.command("create")
def project_create(
    name: Annotated[str, typer.Argument(help="Project name.")],
    description: DescriptionOption = None,
    enable: EnableOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Create a project."""
    with api_client() as client:
        created = client.create_project(name, description=description, enabled=enable is not False)
    show(created, output)


@project_app.command("show")
def project_show(
    project: Annotated[str, typer.Argument(help="Project name or id.")],
    output: FormatOption = OutputFormat.table,
) -> None:
    """Show one project."""
    with api_client() as client:
        show(client.get_project(project), output)


@project_app.command("set")
def project_set(
    project: Annotated[str, typer.Argument(help="Project name or id.")],
    name: Annotated[str | None, typer.Option("--name", help="A new name.")] = None,
    description: DescriptionOption = None,
    enable: EnableOption = None,
) -> None:
    """Change a project (disabling it revokes its tokens)."""
    fields = {key: value for key, value in (("name", name), ("description", description), ("enabled", enable))
              if value is not None}
    _nothing_to_change(fields, "project")
    with api_client() as client:
        updated = client.update_project(client.get_project(project)["id"], **fields)
    say(f"updated project {_label(updated)}")


@project_app.command("delete")
def project_delete(projects: Annotated[list[str], typer.Argument(help="Project names or ids.")]) -> None:
    """Delete projects (refused while they own clusters, templates or shares)."""
    with api_client() as client:
        # Every name is looked up first: a typo in the last one deletes nothing.
        for found in [client.get_project(ident) for ident in projects]:
            client.delete_project(found["id"])
            say(f"deleted project {_label(found)}")


# -- users --------------------------------------------------------------------------------------

USER_COLUMNS = ("ID", "NAME", "ENABLED", "DEFAULT PROJECT", "EMAIL", "DESCRIPTION")


@user_app.command("list")
def user_list(output: FormatOption = OutputFormat.table) -> None:
    """List users."""
    with api_client() as client:
        users = client.list_users()
        if output == OutputFormat.json:
            print_json(users)
            return
        names = {p["id"]: p["name"] for p in client.list_projects()}
    rows = ([fmt(u.get("id")), fmt(u.get("name")), fmt(u.get("enabled")),
             fmt(names.get(u.get("default_project_id") or "", u.get("default_project_id"))),
             fmt(u.get("email")), fmt(u.get("description"))] for u in users)
    stdout_console().print(table(USER_COLUMNS, rows))


@user_app.command("create")
def user_create(
    name: Annotated[str, typer.Argument(help="User name.")],
    password_prompt: PasswordPromptOption = False,
    password_stdin: PasswordStdinOption = False,
    project: Annotated[str | None, typer.Option("--project", help="Default project (name or id).")] = None,
    email: Annotated[str | None, typer.Option("--email", help="Email address.")] = None,
    description: DescriptionOption = None,
    enable: EnableOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Create a user (give a role with `floe role add` so they can log in to a project)."""
    password = _password(password_prompt, password_stdin)
    with api_client() as client:
        project_id = client.get_project(project)["id"] if project else None
        created = client.create_user(name, password=password, default_project_id=project_id, email=email,
                                     description=description, enabled=enable is not False)
    show(created, output)
    if password is None:
        note("this user has no password: set one with `floe user set --password-prompt` to let them log in")


@user_app.command("show")
def user_show(
    user: Annotated[str, typer.Argument(help="User name or id.")],
    output: FormatOption = OutputFormat.table,
) -> None:
    """Show one user."""
    with api_client() as client:
        show(client.get_user(user), output)


@user_app.command("set")
def user_set(
    user: Annotated[str, typer.Argument(help="User name or id.")],
    name: Annotated[str | None, typer.Option("--name", help="A new name.")] = None,
    password_prompt: PasswordPromptOption = False,
    password_stdin: PasswordStdinOption = False,
    project: Annotated[str | None, typer.Option("--project", help="Default project (name or id).")] = None,
    email: Annotated[str | None, typer.Option("--email", help="Email address.")] = None,
    description: DescriptionOption = None,
    enable: EnableOption = None,
) -> None:
    """Change a user (a new password or disabling revokes their tokens)."""
    fields: dict[str, Any] = {key: value for key, value in (
        ("name", name), ("email", email), ("description", description), ("enabled", enable)) if value is not None}
    password = _password(password_prompt, password_stdin)
    if password is not None:
        fields["password"] = password
    if project is None:
        _nothing_to_change(fields, "user")
    with api_client() as client:
        if project is not None:
            fields["default_project_id"] = client.get_project(project)["id"]
        updated = client.update_user(client.get_user(user)["id"], **fields)
    say(f"updated user {_label(updated)}")


@user_app.command("delete")
def user_delete(users: Annotated[list[str], typer.Argument(help="User names or ids.")]) -> None:
    """Delete users (their tokens, roles and application credentials go with them)."""
    with api_client() as client:
        # Every name is looked up first: a typo in the last one deletes nothing.
        for found in [client.get_user(ident) for ident in users]:
            client.delete_user(found["id"])
            say(f"deleted user {_label(found)}")


# -- roles --------------------------------------------------------------------------------------

ProjectOption = Annotated[str, typer.Option("--project", help="Project name or id.")]
UserOption = Annotated[str, typer.Option("--user", help="User name or id.")]
RoleArgument = Annotated[str, typer.Argument(help="Role name or id (reader, member, admin).")]


@role_app.command("list")
def role_list(output: FormatOption = OutputFormat.table) -> None:
    """List the roles (admin implies member, member implies reader)."""
    with api_client() as client:
        roles = client.list_roles()
    if output == OutputFormat.json:
        print_json(roles)
        return
    stdout_console().print(table(("ID", "NAME"), ([fmt(r.get("id")), fmt(r.get("name"))] for r in roles)))


def _grant_parts(client: FloeClient, project: str, user: str, role: str) -> tuple[dict, dict, dict]:
    return client.get_project(project), client.get_user(user), client.get_role(role)


@role_app.command("add")
def role_add(role: RoleArgument, project: ProjectOption, user: UserOption) -> None:
    """Give a user a role on a project."""
    with api_client() as client:
        p, u, r = _grant_parts(client, project, user, role)
        client.grant_role(p["id"], u["id"], r["id"])
    say(f"user {u['name']} has role {r['name']} on project {p['name']}")


@role_app.command("remove")
def role_remove(role: RoleArgument, project: ProjectOption, user: UserOption) -> None:
    """Take a role on a project from a user (their tokens there are revoked)."""
    with api_client() as client:
        p, u, r = _grant_parts(client, project, user, role)
        client.revoke_role(p["id"], u["id"], r["id"])
    say(f"user {u['name']} no longer has role {r['name']} on project {p['name']}")


@role_app.command("assignments")
def role_assignments(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's (name or id).")] = None,
    project: Annotated[str | None, typer.Option("--project", help="Only on this project (name or id).")] = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """List who holds which role on which project."""
    with api_client() as client:
        user_id = client.get_user(user)["id"] if user else None
        project_id = client.get_project(project)["id"] if project else None
        found = client.list_role_assignments(user_id=user_id, project_id=project_id)
    if output == OutputFormat.json:
        print_json(found)
        return

    def name(ref: dict[str, Any]) -> str:
        return fmt(ref.get("name") or ref.get("id"))

    rows = ([name(a.get("role") or {}), name(a.get("user") or {}),
             name((a.get("scope") or {}).get("project") or {})] for a in found)
    stdout_console().print(table(("ROLE", "USER", "PROJECT"), rows))


# -- application credentials --------------------------------------------------------------------

CREDENTIAL_COLUMNS = ("ID", "NAME", "PROJECT ID", "ROLES", "EXPIRES", "UNRESTRICTED", "DESCRIPTION")
_DURATION = re.compile(r"(\d+)([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_expiry(value: str) -> str:
    """`--expires`: ISO 8601 (UTC unless it names a zone) or a duration from now (90m, 12h, 30d, 2w)."""
    text = value.strip()
    match = _DURATION.fullmatch(text)
    if match:
        when = datetime.now(UTC) + timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    else:
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise CLIError(f"invalid --expires {value!r}: give an ISO 8601 time (2030-01-31T12:00:00Z) "
                           f"or a duration (90m, 12h, 30d, 2w)") from None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _owner(client: FloeClient, user: str | None) -> str:
    """The user whose credentials to act on: `user` (name or id), else the caller."""
    if user:
        return str(client.get_user(user)["id"])
    return str(client.validate_token(resolve_credentials().token)["user"]["id"])


def _show_credential(c: dict[str, Any], output: OutputFormat) -> None:
    """One credential; in a table its roles are names (JSON keeps the API's objects)."""
    if output == OutputFormat.table:
        c = {**c, "roles": [r.get("name") for r in c.get("roles") or []]}
    show(c, output)


def _credential_row(c: dict[str, Any]) -> list[str]:
    return [
        fmt(c.get("id")), fmt(c.get("name")), fmt(c.get("project_id")),
        fmt([r.get("name") for r in c.get("roles") or []]),
        fmt(c.get("expires_at") or "never"), fmt(bool(c.get("unrestricted"))), fmt(c.get("description")),
    ]


@credential_app.command("list")
def credential_list(user: CredentialUserOption = None, output: FormatOption = OutputFormat.table) -> None:
    """List application credentials."""
    with api_client() as client:
        found = client.list_credentials(_owner(client, user))
    if output == OutputFormat.json:
        print_json(found)
        return
    stdout_console().print(table(CREDENTIAL_COLUMNS, (_credential_row(c) for c in found)))


@credential_app.command("create")
def credential_create(
    name: Annotated[str, typer.Argument(help="Credential name (unique among yours).")],
    role: Annotated[
        list[str] | None,
        typer.Option("--role", help="A role it gets (repeat; default: all of yours in your project)."),
    ] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="When it stops working: ISO 8601 (UTC) or 90m, 12h, 30d, 2w.")
    ] = None,
    unrestricted: Annotated[
        bool, typer.Option("--unrestricted", help="May make and delete other credentials (dangerous).")
    ] = False,
    description: DescriptionOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Create an application credential in your current project; its secret is shown only now."""
    expires_at = parse_expiry(expires) if expires is not None else None
    with api_client() as client:
        created = client.create_credential(_owner(client, None), name, description=description,
                                           expires_at=expires_at, roles=role, unrestricted=unrestricted)
    _show_credential(created, output)
    note(f"the secret is shown only now: keep it safe. Log in with it: "
         f"floe login --application-credential-id {created.get('id')} --secret-stdin")


@credential_app.command("show")
def credential_show(
    credential: Annotated[str, typer.Argument(help="Credential name or id.")],
    user: CredentialUserOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Show one application credential (never its secret)."""
    with api_client() as client:
        found = client.get_credential(_owner(client, user), credential)
    _show_credential(found, output)


@credential_app.command("delete")
def credential_delete(
    credentials: Annotated[list[str], typer.Argument(help="Credential names or ids.")],
    user: CredentialUserOption = None,
) -> None:
    """Delete application credentials (the tokens they issued are revoked)."""
    with api_client() as client:
        owner = _owner(client, user)
        for found in [client.get_credential(owner, ident) for ident in credentials]:
            client.delete_credential(owner, found["id"])
            say(f"deleted application credential {_label(found)}")
