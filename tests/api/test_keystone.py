"""floe's Keystone v3 subset through HTTP: tokens (password, token, application credential),
their scope, catalog, expiry and revocation; users, projects, roles and application credentials
with Keystone's shapes and errors; bad input changes nothing."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from floe.db.models import ApplicationCredential, Token
from floe.services import passwords

from .conftest import Env

PW = "Pässwörd 🔑 with spaces"


def keystone_error(resp, status: int, *fragments: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == status and body["error"]["title"], body
    for fragment in fragments:
        assert fragment in body["error"]["message"], body
    return body["error"]["message"]


def password_auth(user: str, password: str, project: str | None = None, domain: str = "Default",
                  by_id: bool = False) -> dict:
    ident = {"methods": ["password"], "password": {"user": (
        {"id": user, "password": password} if by_id else
        {"name": user, "domain": {"name": domain}, "password": password})}}
    auth: dict = {"identity": ident}
    if project is not None:
        auth["scope"] = {"project": {"name": project, "domain": {"name": domain}}}
    return {"auth": auth}


def issue(client: TestClient, body: dict) -> tuple[str, dict]:
    resp = client.post("/identity/v3/auth/tokens", json=body, headers={"X-Auth-Token": ""})
    assert resp.status_code == 201, resp.text
    return resp.headers["X-Subject-Token"], resp.json()["token"]


@pytest.fixture
def lab(client: TestClient) -> dict[str, str]:
    """Project `lab` with member `mia` and reader `rex`."""
    roles = {r["name"]: r["id"] for r in client.get("/identity/v3/roles").json()["roles"]}
    ids = {"roles": roles}
    ids["lab"] = client.post("/identity/v3/projects", json={"project": {"name": "lab"}}).json()["project"]["id"]
    for name, role in (("mia", "member"), ("rex", "reader")):
        resp = client.post("/identity/v3/users", json={"user": {"name": name, "password": PW,
                                                                "default_project_id": ids["lab"]}})
        assert resp.status_code == 201, resp.text
        ids[name] = resp.json()["user"]["id"]
        assert client.put(f"/identity/v3/projects/{ids['lab']}/users/{ids[name]}/roles/{roles[role]}"
                          ).status_code == 204
    return ids  # type: ignore[return-value]


def test_password_tokens_scope_roles_and_catalog(client: TestClient, lab: dict) -> None:
    secret, token = issue(client, password_auth("mia", PW, "lab"))
    assert token["methods"] == ["password"] and token["project"]["id"] == lab["lab"]
    assert token["user"] == {"id": lab["mia"], "name": "mia", "password_expires_at": None,
                             "domain": {"id": "default", "name": "Default"}}
    assert [r["name"] for r in token["roles"]] == ["reader", "member"]
    assert {s["type"]: s["endpoints"][0]["url"] for s in token["catalog"]} == {
        "identity": "http://testserver/identity/v3", "container-infra": "http://testserver/v1",
        "sharev2": "http://testserver/v2", "compute": "http://testserver/v2.1"}
    lifetime = datetime.fromisoformat(token["expires_at"]) - datetime.fromisoformat(token["issued_at"])
    assert timedelta(hours=3, minutes=59) < lifetime <= timedelta(hours=4)
    # By user id; no scope given: the user's default project.
    _, by_id = issue(client, password_auth(lab["rex"], PW, by_id=True))
    assert by_id["project"]["id"] == lab["lab"] and [r["name"] for r in by_id["roles"]] == ["reader"]
    # The token works on Magnum and Manila.
    me = TestClient(client.app, headers={"X-Auth-Token": secret})
    assert me.get("/v1/clusters").json() == {"clusters": []}
    assert me.get("/v2/shares").json() == {"shares": []}
    # nocatalog
    resp = client.get("/identity/v3/auth/tokens?nocatalog", headers={"X-Subject-Token": secret})
    assert resp.status_code == 200 and "catalog" not in resp.json()["token"]


@pytest.mark.parametrize("body, status", [
    (password_auth("mia", "wrong", "lab"), 401),
    (password_auth("nobody", PW, "lab"), 401),
    (password_auth("mia", PW, "lab", domain="Nowhere"), 401),
    (password_auth("mia", PW, "admin"), 401),  # no role there
    (password_auth("mia", PW, "no-such-project"), 401),
    ({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "mia", "password": PW}}}}},
     400),  # a name needs a domain
    ({"auth": {"identity": {"methods": ["totp"], "totp": {}}}}, 401),
    ({"auth": {"identity": {"methods": []}}}, 400),
    ({"auth": {"identity": {"methods": ["password"], "password": None}}}, 400),
    ({"auth": "x"}, 400),
    ({}, 400),
    ({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "mia", "domain": {"name": "Default"}, "password": PW}}}, "scope": "system"}}, 400),
    ({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "mia", "domain": {"name": "Default"}, "password": PW}}}, "scope": {"system": {"all": True}}}}, 401),
])
def test_bad_logins_are_refused_without_detail(env: Env, client: TestClient, lab: dict, body, status) -> None:
    before = env.snapshot()
    resp = client.post("/identity/v3/auth/tokens", json=body, headers={"X-Auth-Token": ""})
    message = keystone_error(resp, status)
    assert PW not in message and "X-Subject-Token" not in resp.headers
    assert env.snapshot() == before


def test_validate_rescope_revoke_and_expiry(env: Env, client: TestClient, lab: dict) -> None:
    unscoped_body = password_auth("mia", PW)
    unscoped_body["auth"]["scope"] = "unscoped"
    secret, token = issue(client, unscoped_body)
    assert "project" not in token and "catalog" not in token
    # An unscoped token is refused by the project APIs (it names no project).
    keystone_error(client.get("/identity/v3/users", headers={"X-Auth-Token": secret}), 403)
    resp = client.get("/v1/clusters", headers={"X-Auth-Token": secret})
    assert resp.status_code == 403 and "scoped" in resp.text
    # Rescoped with the token method: same audit chain, no longer-lived.
    scoped, rescoped = issue(client, {"auth": {"identity": {"methods": ["token"], "token": {"id": secret}},
                                               "scope": {"project": {"id": lab["lab"]}}}})
    assert rescoped["audit_ids"] == token["audit_ids"] and rescoped["expires_at"] == token["expires_at"]
    assert rescoped["methods"] == ["password", "token"]
    # Validate: the owner or an admin; another user sees 404.
    mine = TestClient(client.app, raise_server_exceptions=False, headers={"X-Auth-Token": scoped})
    assert mine.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": scoped}).status_code == 200
    assert mine.head("/identity/v3/auth/tokens", headers={"X-Subject-Token": scoped}).status_code == 200
    rex, _ = issue(client, password_auth("rex", PW, "lab"))
    keystone_error(client.get("/identity/v3/auth/tokens", headers={"X-Auth-Token": rex, "X-Subject-Token": scoped}),
                   404)
    # Revoke; the token stops working at once (the API's caller cache included).
    assert mine.get("/v1/clusters").status_code == 200
    assert client.delete("/identity/v3/auth/tokens", headers={"X-Subject-Token": scoped}).status_code == 204
    assert mine.get("/v1/clusters").status_code == 401
    keystone_error(client.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": scoped}), 404)
    # Expiry: a token past its time is refused even while kept in the cache.
    other, _ = issue(client, password_auth("mia", PW, "lab"))
    them = TestClient(client.app, raise_server_exceptions=False, headers={"X-Auth-Token": other})
    assert them.get("/v1/clusters").status_code == 200
    with env.db.session() as s:
        s.execute(update(Token).where(Token.description == "keystone")
                  .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    # Time passing, as the caller cache sees it: the kept entry is fresh but its token's time is up.
    caches = client.app.state.caches
    for key in list(caches.callers._entries):
        entry = caches.callers._entries[key]
        caller, _until = entry.value
        caches.callers._entries[key] = type(entry)(caches.callers.version(), time.monotonic(),
                                                   (caller, time.time() - 1), entry.size)
    resp = them.get("/v1/clusters")
    assert resp.status_code == 401, resp.text
    wrong_method = {"auth": {"identity": {"methods": ["token"], "token": {"id": other}}}}
    keystone_error(client.post("/identity/v3/auth/tokens", json=wrong_method, headers={"X-Auth-Token": ""}), 401)


def test_disabling_or_deleting_revokes(client: TestClient, lab: dict) -> None:
    secret, _ = issue(client, password_auth("mia", PW, "lab"))
    mia = TestClient(client.app, raise_server_exceptions=False, headers={"X-Auth-Token": secret})
    assert mia.get("/v1/clusters").status_code == 200
    assert client.patch(f"/identity/v3/users/{lab['mia']}", json={"user": {"enabled": False}}).status_code == 200
    assert mia.get("/v1/clusters").status_code == 401
    keystone_error(client.post("/identity/v3/auth/tokens", json=password_auth("mia", PW, "lab"),
                               headers={"X-Auth-Token": ""}), 401)
    assert client.patch(f"/identity/v3/users/{lab['mia']}", json={"user": {"enabled": True}}).status_code == 200
    # A role taken away revokes the user's tokens in that project.
    secret, _ = issue(client, password_auth("mia", PW, "lab"))
    mia.headers["X-Auth-Token"] = secret
    assert client.delete(f"/identity/v3/projects/{lab['lab']}/users/{lab['mia']}/roles/{lab['roles']['member']}"
                         ).status_code == 204
    assert mia.get("/v1/clusters").status_code == 401
    # A disabled project: its tokens go, and no new ones are issued.
    rex, _ = issue(client, password_auth("rex", PW, "lab"))
    assert client.patch(f"/identity/v3/projects/{lab['lab']}", json={"project": {"enabled": False}}
                        ).status_code == 200
    assert client.get("/v1/clusters", headers={"X-Auth-Token": rex}).status_code == 401
    keystone_error(client.post("/identity/v3/auth/tokens", json=password_auth("rex", PW, "lab"),
                               headers={"X-Auth-Token": ""}), 401)


def test_generated_secrets_can_follow_an_option() -> None:
    """Secrets floe makes (application credential secrets, the admin password) are typed after an
    option (`--os-application-credential-secret S`); one starting with '-' made the openstack CLI
    fail with "expected one argument". token_urlsafe starts with '-' once in 64."""
    made = [passwords.new_secret(64) for _ in range(4000)]
    assert not [s for s in made if s.startswith("-")]
    assert len(set(made)) == len(made) and all(len(s) == 86 for s in made)
    assert {s[0] for s in made} >= set("AZaz09_"), "the first character still ranges over the rest"


def test_application_credentials(env: Env, client: TestClient, lab: dict) -> None:
    secret, _ = issue(client, password_auth("mia", PW, "lab"))
    mia = TestClient(client.app, raise_server_exceptions=False, headers={"X-Auth-Token": secret})
    base = f"/identity/v3/users/{lab['mia']}/application_credentials"
    # Only the roles asked for, and only roles the user holds.
    keystone_error(mia.post(base, json={"application_credential": {"name": "x", "roles": [{"name": "admin"}]}}),
                   403, "admin")
    resp = mia.post(base, json={"application_credential": {"name": "ro", "roles": [{"name": "reader"}],
                                                           "description": None, "expires_at": None,
                                                           "secret": None, "unrestricted": None}})
    assert resp.status_code == 201, resp.text
    cred = resp.json()["application_credential"]
    assert cred["secret"] and [r["name"] for r in cred["roles"]] == ["reader"] and cred["unrestricted"] is False
    listed = mia.get(base).json()["application_credentials"]
    assert [c["name"] for c in listed] == ["ro"] and "secret" not in listed[0]
    assert "secret" not in mia.get(f"{base}/{cred['id']}").json()["application_credential"]
    keystone_error(mia.post(base, json={"application_credential": {"name": "ro"}}), 409)
    # The credential authenticates alone, with its roles only.
    app_secret, token = issue(client, {"auth": {"identity": {"methods": ["application_credential"],
                                                             "application_credential": {
                                                                 "id": cred["id"], "secret": cred["secret"]}}}})
    assert token["project"]["id"] == lab["lab"] and [r["name"] for r in token["roles"]] == ["reader"]
    assert token["application_credential"] == {"id": cred["id"], "name": "ro", "restricted": True}
    app = TestClient(client.app, raise_server_exceptions=False, headers={"X-Auth-Token": app_secret})
    assert app.get("/v1/clusters").status_code == 200
    assert app.post("/v1/clustertemplates", json={"coe": "swarm", "name": "t"}).status_code == 403
    # A restricted credential's token may not make more credentials.
    keystone_error(app.post(base, json={"application_credential": {"name": "more"}}), 403)
    # By name and user.
    issue(client, {"auth": {"identity": {"methods": ["application_credential"], "application_credential": {
        "name": "ro", "secret": cred["secret"], "user": {"name": "mia", "domain": {"name": "Default"}}}}}})
    # Wrong secret, expired credential.
    keystone_error(client.post("/identity/v3/auth/tokens", headers={"X-Auth-Token": ""}, json={"auth": {
        "identity": {"methods": ["application_credential"], "application_credential": {
            "id": cred["id"], "secret": "nope"}}}}), 401)
    with env.db.session() as s:
        s.execute(update(ApplicationCredential).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    keystone_error(client.post("/identity/v3/auth/tokens", headers={"X-Auth-Token": ""}, json={"auth": {
        "identity": {"methods": ["application_credential"], "application_credential": {
            "id": cred["id"], "secret": cred["secret"]}}}}), 401)
    # An expiry in the past, and a bad one, are refused.
    keystone_error(mia.post(base, json={"application_credential": {"name": "old",
                                                                   "expires_at": "2001-01-01T00:00:00"}}), 400)
    keystone_error(mia.post(base, json={"application_credential": {"name": "odd", "expires_at": "soon"}}), 400)
    # Deleting revokes its tokens; another user cannot see or delete it.
    rex, _ = issue(client, password_auth("rex", PW, "lab"))
    keystone_error(client.get(base, headers={"X-Auth-Token": rex}), 403)
    keystone_error(client.delete(f"{base}/{cred['id']}", headers={"X-Auth-Token": rex}), 403)
    assert mia.delete(f"{base}/{cred['id']}").status_code == 204
    assert app.get("/v1/clusters").status_code == 401


def test_admin_only_management_and_bad_input(env: Env, client: TestClient, lab: dict) -> None:
    rex, _ = issue(client, password_auth("rex", PW, "lab"))
    reader = TestClient(client.app, raise_server_exceptions=False, headers={"X-Auth-Token": rex})
    before = env.snapshot()
    keystone_error(reader.get("/identity/v3/users"), 403)
    keystone_error(reader.post("/identity/v3/users", json={"user": {"name": "eve", "password": "x"}}), 403)
    keystone_error(reader.post("/identity/v3/projects", json={"project": {"name": "evil"}}), 403)
    keystone_error(reader.patch(f"/identity/v3/users/{lab['mia']}", json={"user": {"password": "x"}}), 403)
    keystone_error(reader.put(f"/identity/v3/projects/{lab['lab']}/users/{lab['rex']}/roles/"
                              f"{lab['roles']['admin']}"), 403)
    # A user sees themself and their projects, not others.
    assert reader.get(f"/identity/v3/users/{lab['rex']}").json()["user"]["name"] == "rex"
    keystone_error(reader.get(f"/identity/v3/users/{lab['mia']}"), 404)
    assert [p["name"] for p in reader.get("/identity/v3/auth/projects").json()["projects"]] == ["lab"]
    # Bad input, as an admin.
    long = "n" * 256
    for resp, status in (
        (client.post("/identity/v3/projects", json={"project": {"name": long}}), 400),
        (client.post("/identity/v3/projects", json={"project": {"name": ""}}), 400),
        (client.post("/identity/v3/projects", json={"project": {"name": "lab"}}), 409),
        (client.post("/identity/v3/projects", json={"project": {"name": 7}}), 400),
        (client.post("/identity/v3/projects", json={"project": {"name": "x\n"}}), 400),
        (client.post("/identity/v3/projects", json={"project": {"name": "x", "domain_id": "nope"}}), 404),
        (client.post("/identity/v3/projects", json=["project"]), 400),
        (client.post("/identity/v3/users", json={"user": {"name": "mia", "password": "x"}}), 409),
        (client.post("/identity/v3/users", json={"user": {"name": "u", "password": ""}}), 400),
        (client.post("/identity/v3/users", json={"user": {"name": "u", "enabled": "yes"}}), 400),
        (client.put(f"/identity/v3/projects/{lab['lab']}/users/nobody/roles/{lab['roles']['member']}"), 404),
        (client.put(f"/identity/v3/projects/{lab['lab']}/users/{lab['mia']}/roles/nope"), 404),
        (client.delete(f"/identity/v3/projects/{lab['lab']}/users/{lab['rex']}/roles/{lab['roles']['admin']}"),
         404),
        (client.delete("/identity/v3/projects/nope"), 404),
    ):
        keystone_error(resp, status)
    assert env.snapshot() == before
    # The longest name is fine, unicode too.
    name = "ñ" * 255
    assert client.post("/identity/v3/projects", json={"project": {"name": name}}).status_code == 201
    assert client.get("/identity/v3/projects", params={"name": name}).json()["projects"][0]["name"] == name
    # The admin cannot lock themself out.
    admin_id = env.admin_user_id
    keystone_error(client.delete(f"/identity/v3/users/{admin_id}"), 403)
    keystone_error(client.patch(f"/identity/v3/users/{admin_id}", json={"user": {"enabled": False}}), 403)


def test_a_project_that_owns_things_is_not_deleted(client: TestClient, lab: dict) -> None:
    secret, _ = issue(client, password_auth("mia", PW, "lab"))
    mia = TestClient(client.app, headers={"X-Auth-Token": secret})
    assert mia.post("/v1/clustertemplates", json={"coe": "swarm", "name": "t"}).status_code == 201
    keystone_error(client.delete(f"/identity/v3/projects/{lab['lab']}"), 409, "delete them first")
    assert mia.delete("/v1/clustertemplates/t").status_code == 204
    assert client.delete(f"/identity/v3/projects/{lab['lab']}").status_code == 204
    resp = TestClient(client.app, raise_server_exceptions=False, headers={"X-Auth-Token": secret}).get("/v1/clusters")
    assert resp.status_code == 401


def test_secrets_are_never_logged(client: TestClient, lab: dict, caplog: pytest.LogCaptureFixture) -> None:
    """Passwords, token secrets and application-credential secrets stay out of every log record,
    failures included (the 500 handler logs requests, SQLAlchemy may log statements)."""
    import logging

    caplog.set_level(logging.DEBUG)
    secret, _ = issue(client, password_auth("mia", PW, "lab"))
    mia = TestClient(client.app, raise_server_exceptions=False, headers={"X-Auth-Token": secret})
    cred = mia.post(f"/identity/v3/users/{lab['mia']}/application_credentials",
                    json={"application_credential": {"name": "ci"}}).json()["application_credential"]
    client.post("/identity/v3/auth/tokens", headers={"X-Auth-Token": ""}, json=password_auth("mia", "wrong-pw", "lab"))
    client.post("/identity/v3/users", json={"user": {"name": "new", "password": "new-user-pw"}})
    client.patch(f"/identity/v3/users/{lab['rex']}", json={"user": {"password": "changed-pw"}})
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    for value in (PW, secret, cred["secret"], "wrong-pw", "new-user-pw", "changed-pw"):
        assert value not in text
