"""`floe login`, `floe logout`, `floe whoami`: who the CLI acts as.

`floe login` gets a Keystone token (password or application credential) and stores it with
who it stands for in `$XDG_CONFIG_HOME/floe/login.json` (mode 0600); every other command then
uses it for that FLOE_URL, unless FLOE_TOKEN is set. The token itself is never printed.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Annotated, Any

import typer

from floe.cli.errors import CLIError
from floe.cli.options import FormatOption, api_client, say
from floe.cli.output import OutputFormat, print_json, show_object, stderr_console, stdout_console
from floe.client import (
    FloeAPIError,
    FloeClient,
    FloeConfigError,
    FloeConnectionError,
    forget_login,
    load_login,
    parse_time,
    resolve_credentials,
    resolve_url,
    save_login,
    show_time,
)

_HEX_ID = re.compile(r"[0-9a-f]{32}")
# Keystone says only this on a failed login (it names no reason, so as not to help guessing).
_GENERIC_401 = "The request you have made requires authentication."


def read_secret(what: str, from_stdin: bool, flag: str, env_var: str | None = None, confirm: bool = False) -> str:
    """A secret from stdin (one line, with `flag`), else `env_var`, else a hidden prompt.

    Never from the command line, where `ps` and shell history would show it.
    """
    if from_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
        if not secret:
            raise CLIError(f"no {what} on stdin")
        return secret
    if env_var and os.environ.get(env_var):
        return os.environ[env_var]
    try:
        # On stderr, so `-f json` output stays clean.
        secret = typer.prompt(what.capitalize(), hide_input=True, confirmation_prompt=confirm, err=True)
    except typer.Abort:
        hint = f" or {env_var}" if env_var else ""
        raise CLIError(f"no {what} given: type it at the prompt, or use {flag}{hint}") from None
    if not secret:
        raise CLIError(f"the {what} must not be empty")
    return str(secret)


def note(message: str) -> None:
    """One line of advice on stderr (stdout stays for results)."""
    stderr_console().print(f"note: {message}", soft_wrap=True, markup=False)


def _role_names(token: dict[str, Any]) -> list[str]:
    return [str(r.get("name") or r.get("id")) for r in token.get("roles") or [] if isinstance(r, dict)]


def _login_failed(exc: FloeAPIError) -> CLIError:
    if exc.status != 401:
        return CLIError(f"login failed: {exc}")
    if exc.detail and exc.detail != _GENERIC_401:
        return CLIError(f"login failed: {exc.detail}")
    return CLIError("login failed: wrong user name, password or credential, or the project is unknown or "
                    "disabled (401 Unauthorized)")


def login(
    username: Annotated[str | None, typer.Option("--username", "-u", help="User name (password login).")] = None,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Project name or id (default: the user's default project).")
    ] = None,
    domain: Annotated[str, typer.Option("--domain", help="The user's and the project's domain.")] = "Default",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin (else FLOE_PASSWORD, else a prompt).")
    ] = False,
    credential_id: Annotated[
        str | None, typer.Option("--application-credential-id", help="Log in with this application credential.")
    ] = None,
    secret_stdin: Annotated[
        bool,
        typer.Option("--secret-stdin",
                     help="Read the credential's secret from stdin (else FLOE_APPLICATION_CREDENTIAL_SECRET, "
                          "else a prompt)."),
    ] = False,
) -> None:
    """Log in to FLOE_URL and store the token for the next commands (file mode 0600)."""
    if credential_id is not None:
        if username or password_stdin or project:
            raise CLIError("--application-credential-id goes alone: the credential names its user and project")
    elif username is None:
        raise CLIError("give --username (password login) or --application-credential-id")
    elif secret_stdin:
        raise CLIError("--secret-stdin goes with --application-credential-id")
    url = resolve_url()
    with FloeClient(url, None) as client:
        try:
            if credential_id is not None:
                secret = read_secret("secret", secret_stdin, "--secret-stdin", "FLOE_APPLICATION_CREDENTIAL_SECRET")
                token_secret, token = client.issue_token_application_credential(credential_id, secret)
            else:
                assert username is not None
                password = read_secret("password", password_stdin, "--password-stdin", "FLOE_PASSWORD")
                try:
                    token_secret, token = client.issue_token_password(
                        username, password, domain=domain, project=project)
                except FloeAPIError as exc:
                    # --project may be an id: try it as one when no project of that name let us in.
                    if exc.status != 401 or project is None or not _HEX_ID.fullmatch(project):
                        raise
                    token_secret, token = client.issue_token_password(
                        username, password, domain=domain, project_id=project)
        except FloeAPIError as exc:
            raise _login_failed(exc) from None
    user = token.get("user") or {}
    scoped = token.get("project") or None
    roles = _role_names(token)
    stored = {
        "url": url,
        "token": token_secret,
        "expires_at": token.get("expires_at"),
        "issued_at": token.get("issued_at"),
        "method": (token.get("methods") or ["?"])[0],
        "user": {"id": user.get("id"), "name": user.get("name"),
                 "domain": (user.get("domain") or {}).get("name")},
        "project": {"id": scoped.get("id"), "name": scoped.get("name")} if scoped else None,
        "roles": roles,
    }
    if token.get("application_credential"):
        stored["application_credential"] = token["application_credential"]
    path = save_login(stored)
    where = f" in project {scoped.get('name')}" if scoped else " with no project"
    say(f"logged in to {url} as {user.get('name')}{where}")
    say(f"roles: {', '.join(roles) or '-'}; expires {show_time(parse_time(token.get('expires_at')))}")
    say(f"token stored in {path}")
    if not scoped:
        note("a token without a project only reaches the identity API: log in with --project")
    if os.environ.get("FLOE_TOKEN", "").strip():
        note("FLOE_TOKEN is set and wins over this login: unset it to use the login")


def logout() -> None:
    """Revoke the stored login's token and forget it."""
    try:
        stored = load_login()
    except FloeConfigError:
        forget_login()  # damaged: nothing to revoke with, but it must go
        say("removed a damaged stored login")
        return
    if stored is None:
        say("not logged in: nothing to do")
        return
    problem = ""
    if not stored.expired():
        try:
            with FloeClient(stored.url, stored.token) as client:
                client.revoke_token(stored.token)
        except FloeAPIError as exc:
            if exc.status not in (401, 404):  # 401/404: already revoked or expired, as wanted
                problem = str(exc)
        except (FloeConnectionError, FloeConfigError) as exc:
            problem = str(exc)
    forget_login()
    if problem:
        raise CLIError(f"forgot the login as {stored.describe()}, but could not revoke its token ({problem}): "
                       f"it stays valid until {show_time(stored.expires_at)}")
    say(f"logged out: {stored.describe()}")


def whoami(output: FormatOption = OutputFormat.table) -> None:
    """Show who the CLI acts as: user, project, roles, expiry and where the token comes from."""
    credentials = resolve_credentials()
    with api_client() as client:
        token = client.validate_token(credentials.token)
    if output == OutputFormat.json:
        print_json(token)
        return
    user = token.get("user") or {}
    project = token.get("project") or {}
    source = {"env": "FLOE_TOKEN", "login": f"floe login ({credentials.path})",
              "admin-file": f"admin token file ({credentials.path})"}[credentials.source]
    info: dict[str, Any] = {
        "url": resolve_url(),
        "user": f"{user.get('name')} ({user.get('id')})",
        "domain": (user.get("domain") or {}).get("name"),
        "project": f"{project.get('name')} ({project.get('id')})" if project else None,
        "roles": _role_names(token),
        "methods": token.get("methods"),
        "expires": show_time(parse_time(token.get("expires_at"))),
        "token from": source,
    }
    cred = token.get("application_credential")
    if isinstance(cred, dict):
        info["application credential"] = f"{cred.get('name')} ({cred.get('id')})"
    stdout_console().print(show_object(info))


def register(app: typer.Typer) -> None:
    """Add login, logout and whoami to the root app."""
    app.command("login")(login)
    app.command("logout")(logout)
    app.command("whoami")(whoami)
