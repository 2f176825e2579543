"""`floe login|logout|whoami` and `floe project|user|role|credential …` against the real API."""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from floe.cli.main import app
from floe.client import FloeAPIError, FloeClient, load_login, save_login
from tests.cli.conftest import LiveServer, assert_one_line_error

Run = Callable[..., Result]


@pytest.fixture
def cli(live_server: LiveServer, runner: CliRunner) -> Run:
    """`floe ARGS...` as the admin (FLOE_TOKEN); `input=` feeds stdin, keywords override the environment."""

    def run(*args: str, input: str | None = None, **env: str | None) -> Result:
        result = runner.invoke(app, list(args), input=input, env=live_server.env(**env))
        assert live_server.token not in result.output
        return result

    return run


@pytest.fixture
def no_admin(tmp_path: Path) -> dict[str, str | None]:
    """Environment with neither FLOE_TOKEN nor an admin token file: only a stored login can serve."""
    home = tmp_path / "empty-home"
    home.mkdir()
    return {"FLOE_TOKEN": None, "FLOE_HOME": str(home)}


def _suffix() -> str:
    return uuid.uuid4().hex[:8]


def _api(server: LiveServer, method: str, path: str, token: str | None = None, **kwargs) -> httpx.Response:
    headers = {"X-Auth-Token": token or server.token, **kwargs.pop("headers", {})}
    return httpx.request(method, server.url + path, headers=headers, timeout=10, **kwargs)


def _login_path(config: Path) -> Path:
    return config / "floe" / "login.json"


def _member(cli: Run, name: str, project: str, password: str = "s3cret-pw", role: str = "member") -> None:
    """An admin makes `project` (if needed) and a user holding `role` there."""
    made = cli("project", "create", project)
    assert made.exit_code == 0 or "409" in made.output, made.output
    created = cli("user", "create", name, "--password-stdin", "--project", project, input=password + "\n")
    assert created.exit_code == 0, created.output
    added = cli("role", "add", role, "--project", project, "--user", name)
    assert added.exit_code == 0, added.output


def _login(cli: Run, user: str, project: str, password: str = "s3cret-pw", **env: str | None) -> Result:
    return cli("login", "-u", user, "-p", project, "--password-stdin", input=password + "\n", **env)


# -- login, whoami, logout ----------------------------------------------------------------------

def test_password_login_stores_a_private_token(cli: Run, live_server: LiveServer, no_admin, login_config_dir):
    s = _suffix()
    user, project = f"alice-{s}", f"team-{s}"
    _member(cli, user, project)

    result = _login(cli, user, project, **no_admin)
    assert result.exit_code == 0, result.output
    assert f"as {user} in project {project}" in result.stdout
    assert "member" in result.stdout and "expires" in result.stdout
    assert "s3cret-pw" not in result.output

    path = _login_path(login_config_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    stored = json.loads(path.read_text())
    assert stored["url"] == live_server.url
    assert stored["user"]["name"] == user and stored["project"]["name"] == project
    assert "member" in stored["roles"] and stored["expires_at"]
    token = stored["token"]
    assert token not in result.output
    # The stored token is a working one, of that user in that project.
    assert _api(live_server, "GET", "/v1/clustertemplates", token=token).status_code == 200

    who = cli("whoami", **no_admin)
    assert who.exit_code == 0, who.output
    assert user in who.stdout and project in who.stdout and "floe login" in who.stdout
    assert token not in who.output
    listed = cli("template", "list", **no_admin)
    assert listed.exit_code == 0, listed.output

    # FLOE_TOKEN still wins over the login.
    as_admin = cli("whoami", "-f", "json", FLOE_HOME=no_admin["FLOE_HOME"])
    assert as_admin.exit_code == 0, as_admin.output
    assert json.loads(as_admin.stdout)["user"]["name"] == "admin"
    # A note says so when logging in with FLOE_TOKEN set.
    again = _login(cli, user, project)
    assert again.exit_code == 0 and "FLOE_TOKEN is set" in again.stderr


def test_password_from_prompt_or_env(cli: Run, no_admin):
    s = _suffix()
    user, project = f"bob-{s}", f"team-{s}"
    _member(cli, user, project, password="pr0mpt-pw")
    prompted = cli("login", "-u", user, "-p", project, input="pr0mpt-pw\n", **no_admin)
    assert prompted.exit_code == 0, prompted.output
    assert "pr0mpt-pw" not in prompted.output  # hidden input is not echoed
    from_env = cli("login", "--username", user, "--project", project, FLOE_PASSWORD="pr0mpt-pw", **no_admin)
    assert from_env.exit_code == 0, from_env.output


def test_admin_logs_in_with_the_bootstrap_password(cli: Run, live_server: LiveServer, no_admin):
    password_file = live_server.home / "admin-password"
    if not password_file.is_file():
        pytest.skip("FLOE_ADMIN_PASSWORD was set: no admin-password file")
    result = cli("login", "-u", "admin", "-p", "admin", "--password-stdin", input=password_file.read_text(),
                 **no_admin)
    assert result.exit_code == 0, result.output
    assert "admin" in result.stdout
    assert cli("project", "list", **no_admin).exit_code == 0


def test_login_failures_are_one_line_and_store_nothing(cli: Run, no_admin, login_config_dir):
    s = _suffix()
    user, project = f"carol-{s}", f"team-{s}"
    _member(cli, user, project)
    cli("project", "create", f"other-{s}")
    cases = [
        (("-u", user, "-p", project), "wrong-pw", "login failed"),
        (("-u", f"nobody-{s}", "-p", project), "s3cret-pw", "login failed"),
        (("-u", user, "-p", f"missing-{s}"), "s3cret-pw", "login failed"),
        (("-u", user, "-p", f"other-{s}"), "s3cret-pw", "login failed"),  # no role there
    ]
    for args, password, fragment in cases:
        result = cli("login", *args, "--password-stdin", input=password + "\n", **no_admin)
        line = assert_one_line_error(result, fragment, exit_code=1)
        assert password not in line
    assert_one_line_error(cli("login", "--password-stdin", input="x\n", **no_admin), "--username")
    assert_one_line_error(cli("login", "-u", user, "--password-stdin", input="\n", **no_admin), "no password")
    assert_one_line_error(cli("login", "--application-credential-id", "x", "-u", user, **no_admin), "alone")
    assert not _login_path(login_config_dir).exists()
    assert_one_line_error(cli("template", "list", **no_admin), "floe login", "FLOE_TOKEN")


def test_expired_stored_login(cli: Run, live_server: LiveServer, no_admin, login_config_dir):
    path = _login_path(login_config_dir)
    path.parent.mkdir(parents=True)
    stored = {"url": live_server.url, "token": "floe_expired-secret-xyz", "expires_at": "2020-01-02T03:04:05.000000Z",
              "user": {"id": "u1", "name": "dave"}, "project": {"id": "p1", "name": "lab"}, "roles": ["member"]}
    path.write_text(json.dumps(stored))
    result = cli("template", "list", **no_admin)
    line = assert_one_line_error(result, "your login as dave in project lab", "expired at 2020-01-02 03:04:05 UTC",
                                 "floe login")
    assert "floe_expired-secret-xyz" not in result.output and "floe_expired" not in line
    # Expired means an error, even with the admin token file at hand: no silent change of identity.
    assert_one_line_error(cli("template", "list", FLOE_TOKEN=None, FLOE_HOME=str(live_server.home)), "expired")
    # A login stored for another server is not used here.
    path.write_text(json.dumps({**stored, "url": "http://127.0.0.1:1"}))
    assert cli("template", "list", FLOE_TOKEN=None, FLOE_HOME=str(live_server.home)).exit_code == 0
    # logout forgets an expired login without asking the server.
    path.write_text(json.dumps(stored))
    out = cli("logout", **no_admin)
    assert out.exit_code == 0, out.output
    assert not path.exists()
    assert cli("logout", **no_admin).stdout.startswith("not logged in")
    # A damaged file is named, and logout clears it.
    path.write_text("{not json")
    assert_one_line_error(cli("template", "list", **no_admin), "damaged", str(path))
    assert cli("logout", **no_admin).exit_code == 0 and not path.exists()


def test_logout_revokes_and_revoked_logins_say_so(cli: Run, live_server: LiveServer, no_admin, login_config_dir):
    s = _suffix()
    user, project = f"erin-{s}", f"team-{s}"
    _member(cli, user, project)
    assert _login(cli, user, project, **no_admin).exit_code == 0
    path = _login_path(login_config_dir)
    token = json.loads(path.read_text())["token"]

    out = cli("logout", **no_admin)
    assert out.exit_code == 0, out.output
    assert f"logged out: {user}" in out.stdout
    assert not path.exists()
    assert _api(live_server, "GET", "/v1/clustertemplates", token=token).status_code == 401

    # Revoked behind the CLI's back (here: an admin revokes it): the message says what to do.
    assert _login(cli, user, project, **no_admin).exit_code == 0
    token = json.loads(path.read_text())["token"]
    revoked = _api(live_server, "DELETE", "/identity/v3/auth/tokens", headers={"X-Subject-Token": token})
    assert revoked.status_code == 204
    result = cli("template", "list", **no_admin)
    assert_one_line_error(result, f"your login as {user} in project {project}", "no longer valid", "floe login")
    assert token not in result.output
    # logout still forgets it (the token is already gone on the server).
    assert cli("logout", **no_admin).exit_code == 0 and not path.exists()


def test_application_credential_login(cli: Run, live_server: LiveServer, no_admin, tmp_path: Path):
    s = _suffix()
    user, project = f"fay-{s}", f"team-{s}"
    _member(cli, user, project)
    person = {**no_admin, "XDG_CONFIG_HOME": str(tmp_path / "person")}
    robot = {**no_admin, "XDG_CONFIG_HOME": str(tmp_path / "robot")}
    assert _login(cli, user, project, **person).exit_code == 0

    made = cli("credential", "create", "ci", "--role", "member", "--expires", "30d", "--description", "für CI",
               "-f", "json", **person)
    assert made.exit_code == 0, made.output
    cred = json.loads(made.stdout)
    assert cred["secret"] and [r["name"] for r in cred["roles"]] == ["member"] and cred["expires_at"]
    assert "shown only now" in made.stderr

    login = cli("login", "--application-credential-id", cred["id"], "--secret-stdin", input=cred["secret"] + "\n",
                **robot)
    assert login.exit_code == 0, login.output
    assert f"as {user} in project {project}" in login.stdout
    assert cred["secret"] not in login.output
    stored = json.loads(_login_path(tmp_path / "robot").read_text())
    assert stored["method"] == "application_credential"
    assert stat.S_IMODE(_login_path(tmp_path / "robot").stat().st_mode) == 0o600
    who = cli("whoami", **robot)
    assert who.exit_code == 0 and "ci (" in who.stdout, who.output
    assert cli("template", "list", **robot).exit_code == 0
    # The secret can come from the environment too.
    again = cli("login", "--application-credential-id", cred["id"],
                FLOE_APPLICATION_CREDENTIAL_SECRET=cred["secret"], **robot)
    assert again.exit_code == 0, again.output
    # A token from an application credential may not make more of them (Keystone's rule).
    assert_one_line_error(cli("credential", "create", "more", **robot), "403")

    listed = cli("credential", "list", **person)
    assert listed.exit_code == 0 and "ci" in listed.stdout and cred["id"] in listed.stdout
    shown = json.loads(cli("credential", "show", "ci", "-f", "json", **person).stdout)
    assert shown["id"] == cred["id"] and "secret" not in shown
    # Deleting the credential revokes the tokens it issued.
    deleted = cli("credential", "delete", "ci", **person)
    assert deleted.exit_code == 0 and cred["id"] in deleted.stdout, deleted.output
    assert_one_line_error(cli("template", "list", **robot), "no longer valid", "floe login")
    wrong = cli("login", "--application-credential-id", cred["id"], "--secret-stdin", input=cred["secret"] + "\n",
                **robot)
    assert_one_line_error(wrong, "login failed")


def test_credential_bad_input(cli: Run):
    s = _suffix()
    assert_one_line_error(cli("credential", "create", f"x-{s}", "--expires", "tomorrow"), "invalid --expires")
    assert_one_line_error(cli("credential", "create", f"x-{s}", "--expires", "2001-01-01"), "past")
    assert_one_line_error(cli("credential", "create", f"x-{s}", "--role", f"nope-{s}"), "404")
    made = cli("credential", "create", f"dup-{s}", "--role", "reader")
    assert made.exit_code == 0, made.output
    assert_one_line_error(cli("credential", "create", f"dup-{s}"), "409")
    assert_one_line_error(cli("credential", "show", f"missing-{s}"), "no application credential", f"missing-{s}")
    assert cli("credential", "delete", f"dup-{s}").exit_code == 0


# -- projects, users, roles ---------------------------------------------------------------------

def test_project_commands(cli: Run, live_server: LiveServer):
    s = _suffix()
    name = f"Équipe-日本-{s}"
    made = cli("project", "create", name, "--description", "données", "-f", "json")
    assert made.exit_code == 0, made.output
    project = json.loads(made.stdout)
    assert project["name"] == name and project["description"] == "données" and project["enabled"] is True
    pid = project["id"]

    listed = cli("project", "list")
    assert listed.exit_code == 0 and name in listed.stdout and pid in listed.stdout
    api = _api(live_server, "GET", "/identity/v3/projects").json()["projects"]
    assert json.loads(cli("project", "list", "-f", "json").stdout) == api
    for ident in (name, pid):
        shown = cli("project", "show", ident, "-f", "json")
        assert shown.exit_code == 0 and json.loads(shown.stdout)["id"] == pid, shown.output

    assert_one_line_error(cli("project", "create", name), "409")
    assert_one_line_error(cli("project", "show", f"missing-{s}"), "no project", f"missing-{s}")
    assert_one_line_error(cli("project", "set", name), "nothing to change")

    renamed = f"équipe-2-{s}"
    changed = cli("project", "set", name, "--name", renamed, "--description", "neu", "--disable")
    assert changed.exit_code == 0 and renamed in changed.stdout, changed.output
    after = _api(live_server, "GET", f"/identity/v3/projects/{pid}").json()["project"]
    assert (after["name"], after["description"], after["enabled"]) == (renamed, "neu", False)

    assert_one_line_error(cli("project", "delete", "admin"), "403")
    # Every name is looked up before anything is deleted.
    assert_one_line_error(cli("project", "delete", renamed, f"missing-{s}"), "no project")
    assert cli("project", "show", pid).exit_code == 0
    deleted = cli("project", "delete", renamed)
    assert deleted.exit_code == 0 and pid in deleted.stdout, deleted.output
    assert_one_line_error(cli("project", "show", pid), "404")


def test_user_commands(cli: Run, live_server: LiveServer, no_admin):
    s = _suffix()
    project, name = f"Zoë-lab-{s}", f"Zoë-{s}"
    assert cli("project", "create", project).exit_code == 0
    made = cli("user", "create", name, "--password-prompt", "--project", project, "--email", "z@example.org",
               "-f", "json", input="first-pw\nfirst-pw\n")
    assert made.exit_code == 0, made.output
    assert "first-pw" not in made.stdout
    user = json.loads(made.stdout)
    assert user["name"] == name and user["email"] == "z@example.org" and "password" not in user
    assert "default_project_id" in user

    listed = cli("user", "list")
    assert listed.exit_code == 0 and name in listed.stdout and project in listed.stdout
    assert json.loads(cli("user", "show", user["id"], "-f", "json").stdout)["name"] == name
    assert_one_line_error(cli("user", "create", name), "409")
    assert_one_line_error(cli("user", "create", f"u-{s}", "--project", f"missing-{s}"), "no project")
    assert_one_line_error(cli("user", "create", f"u-{s}", "--password-prompt", "--password-stdin"), "not both")
    assert_one_line_error(cli("user", "show", f"missing-{s}"), "no user")
    # Nothing was made by the refused creates.
    assert _api(live_server, "GET", "/identity/v3/users", params={"name": f"u-{s}"}).json()["users"] == []

    assert cli("role", "add", "member", "--project", project, "--user", name).exit_code == 0
    # The unicode user logs in to the unicode project (the default project: no --project).
    first = cli("login", "-u", name, "--password-stdin", input="first-pw\n", **no_admin)
    assert first.exit_code == 0 and f"as {name} in project {project}" in first.stdout, first.output

    # A new password revokes the user's tokens; the new one works.
    changed = cli("user", "set", name, "--password-stdin", "--description", "lab lead", input="second-pw\n")
    assert changed.exit_code == 0, changed.output
    assert_one_line_error(cli("template", "list", **no_admin), "no longer valid")
    assert_one_line_error(cli("login", "-u", name, "--password-stdin", input="first-pw\n", **no_admin),
                          "login failed")
    assert cli("login", "-u", name, "--password-stdin", input="second-pw\n", **no_admin).exit_code == 0

    renamed = f"zoe-{s}"
    assert cli("user", "set", name, "--name", renamed, "--disable").exit_code == 0
    after = _api(live_server, "GET", f"/identity/v3/users/{user['id']}").json()["user"]
    assert (after["name"], after["enabled"], after["description"]) == (renamed, False, "lab lead")
    deleted = cli("user", "delete", renamed)
    assert deleted.exit_code == 0 and user["id"] in deleted.stdout, deleted.output
    assert_one_line_error(cli("user", "show", user["id"]), "404")


def test_role_commands(cli: Run, live_server: LiveServer):
    s = _suffix()
    project, user = f"roles-{s}", f"gus-{s}"
    assert cli("project", "create", project).exit_code == 0
    assert cli("user", "create", user).exit_code == 0

    roles = cli("role", "list")
    assert roles.exit_code == 0 and all(r in roles.stdout for r in ("admin", "member", "reader"))
    added = cli("role", "add", "reader", "--project", project, "--user", user)
    assert added.exit_code == 0 and f"user {user} has role reader on project {project}" in added.stdout
    assert cli("role", "add", "reader", "--project", project, "--user", user).exit_code == 0  # idempotent

    mine = cli("role", "assignments", "--user", user)
    assert mine.exit_code == 0 and "reader" in mine.stdout and project in mine.stdout, mine.output
    as_json = json.loads(cli("role", "assignments", "--project", project, "-f", "json").stdout)
    assert [(a["role"]["name"], a["user"]["name"]) for a in as_json] == [("reader", user)]

    assert_one_line_error(cli("role", "add", f"boss-{s}", "--project", project, "--user", user), "no role")
    assert_one_line_error(cli("role", "add", "member", "--project", f"missing-{s}", "--user", user), "no project")
    assert_one_line_error(cli("role", "add", "member", "--project", project), "--user", exit_code=2)

    removed = cli("role", "remove", "reader", "--project", project, "--user", user)
    assert removed.exit_code == 0, removed.output
    assert_one_line_error(cli("role", "remove", "reader", "--project", project, "--user", user), "404")
    assert json.loads(cli("role", "assignments", "--user", user, "-f", "json").stdout) == []


def test_non_admins_are_refused_and_nothing_changes(cli: Run, live_server: LiveServer, no_admin):
    s = _suffix()
    user, project = f"hal-{s}", f"team-{s}"
    _member(cli, user, project)
    assert _login(cli, user, project, **no_admin).exit_code == 0
    before_projects = _api(live_server, "GET", "/identity/v3/projects").json()["projects"]
    before_users = _api(live_server, "GET", "/identity/v3/users").json()["users"]

    refused = [
        ("project", "create", f"sneaky-{s}"),
        ("project", "list"),
        ("project", "delete", project),
        ("project", "set", project, "--description", "mine now"),
        ("user", "list"),
        ("user", "create", f"sneaky-{s}"),
        ("user", "delete", user),
        ("role", "add", "admin", "--project", project, "--user", user),
        ("role", "assignments"),
    ]
    for args in refused:
        result = cli(*args, **no_admin)
        assert_one_line_error(result, "not authorized", exit_code=1)
    assert _api(live_server, "GET", "/identity/v3/projects").json()["projects"] == before_projects
    assert _api(live_server, "GET", "/identity/v3/users").json()["users"] == before_users
    mine = _api(live_server, "GET", "/identity/v3/role_assignments",
                params={"scope.project.id": before_projects[0]["id"]}).json()
    assert all(a["role"]["id"] for a in mine["role_assignments"])

    # What a user may do: see their roles and their own credentials.
    assert cli("role", "list", **no_admin).exit_code == 0
    assert cli("credential", "list", **no_admin).exit_code == 0
    who = cli("whoami", **no_admin)
    assert who.exit_code == 0 and "member" in who.stdout


# -- the client ---------------------------------------------------------------------------------

def test_keystone_errors_become_one_line(live_server: LiveServer):
    def answer(request: httpx.Request) -> httpx.Response:
        body = {"error": {"code": 403, "message": "You are not authorized: identity:x.", "title": "Forbidden"}}
        return httpx.Response(403, json=body)

    with FloeClient("http://floe.invalid", "t", transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(FloeAPIError) as caught:
            client.list_projects()
    assert caught.value.status == 403
    assert str(caught.value) == "You are not authorized: identity:x. (403 Forbidden)"


def test_login_sends_no_token_header(live_server: LiveServer):
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, headers={"X-Subject-Token": "floe_s"},
                              json={"token": {"user": {"id": "u", "name": "n"}, "expires_at": None}})

    with FloeClient("http://floe.invalid", None, transport=httpx.MockTransport(answer)) as client:
        secret, token = client.issue_token_password("n", "pw", project="p")
    assert secret == "floe_s" and token["user"]["name"] == "n"
    assert "x-auth-token" not in seen[0].headers
    body = json.loads(seen[0].content)
    assert body["auth"]["scope"] == {"project": {"name": "p", "domain": {"name": "Default"}}}


def test_login_file_is_private_whatever_the_umask(tmp_path: Path):
    config = tmp_path / "cfg"
    (config / "floe").mkdir(parents=True, mode=0o755)
    (config / "floe").chmod(0o755)  # made earlier by something else, readable by all
    env = {"XDG_CONFIG_HOME": str(config)}
    old = os.umask(0)
    try:
        path = save_login({"url": "http://h:1", "token": "floe_t", "expires_at": None, "user": {"name": "u"}}, env)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["login.json"]  # no temporary file left
    login = load_login(env)
    assert login is not None and login.token == "floe_t" and not login.expired()
    assert "floe_t" not in repr(login)


# -- two projects, three roles, through the CLI -------------------------------------------------

def test_two_projects_and_three_roles_through_the_cli(cli: Run, live_server: LiveServer, no_admin,
                                                      login_config_dir):
    """A member of one project makes a template, a cluster and a share; a member and a reader of
    another project see none of them and change nothing; a reader of the first sees them and
    changes nothing; each refusal is one error line and a non-zero exit."""
    s = _suffix()
    one, two = f"one-{s}", f"two-{s}"
    _member(cli, f"owner-{s}", one)
    _member(cli, f"peek-{s}", one, role="reader")
    _member(cli, f"other-{s}", two)
    _member(cli, f"watch-{s}", two, role="reader")

    assert _login(cli, f"owner-{s}", one, **no_admin).exit_code == 0
    for args in (("template", "create", f"tpl-{s}"), ("cluster", "create", f"c-{s}", "--template", f"tpl-{s}"),
                 ("share", "create", "1", "--name", f"data-{s}")):
        made = cli(*args, **no_admin)
        assert made.exit_code == 0, made.output
    live_server.finish(f"c-{s}")

    def state() -> tuple:
        admin = {"X-OpenStack-Manila-API-Version": "2.65"}
        return (_api(live_server, "GET", "/v2/shares/detail?all_tenants=1", headers=admin).json(),
                sorted(c["uuid"] + c["status"] for c in _api(live_server, "GET", "/v1/clusters").json()["clusters"]))

    mine = (f"tpl-{s}", f"c-{s}", f"data-{s}")
    for user, project in ((f"other-{s}", two), (f"watch-{s}", two)):
        assert _login(cli, user, project, **no_admin).exit_code == 0
        before = state()
        for listing in (("template", "list"), ("cluster", "list"), ("share", "list")):
            out = cli(*listing, **no_admin)
            assert out.exit_code == 0 and not any(name in out.output for name in mine), out.output
        for args in (("template", "show", f"tpl-{s}"), ("template", "delete", f"tpl-{s}"),
                     ("cluster", "show", f"c-{s}"), ("cluster", "delete", f"c-{s}"),
                     ("cluster", "resize", f"c-{s}", "--node-count", "3"), ("cluster", "nodes", f"c-{s}"),
                     ("share", "show", f"data-{s}"), ("share", "delete", f"data-{s}"),
                     ("share", "extend", f"data-{s}", "2")):
            result = cli(*args, **no_admin)
            assert result.exit_code == 1, (args, result.output)  # refused by the API, not a usage error
            assert len(result.output.strip().splitlines()) == 1, (args, result.output)
        assert state() == before

    # A reader of the first project reads everything and changes nothing.
    assert _login(cli, f"peek-{s}", one, **no_admin).exit_code == 0
    before = state()
    for args in (("template", "show", f"tpl-{s}"), ("cluster", "show", f"c-{s}"), ("share", "show", f"data-{s}")):
        assert cli(*args, **no_admin).exit_code == 0
    for args in (("template", "delete", f"tpl-{s}"), ("cluster", "delete", f"c-{s}"),
                 ("cluster", "resize", f"c-{s}", "--node-count", "3"), ("share", "extend", f"data-{s}", "2"),
                 ("template", "create", f"more-{s}")):
        assert_one_line_error(cli(*args, **no_admin), "reader", exit_code=1)
    assert state() == before
