"""The image registry's token realm on the API (/registry/token) and clusters' pull credentials:
what each caller is granted, decoded from the signed token."""

from __future__ import annotations

import base64
import json

from fastapi.testclient import TestClient

from floe import registry_auth
from floe.providers.base import ProviderWithImageImport, RegistryInfo
from floe.services import identity

from .conftest import Env, assert_error


class _Registry(ProviderWithImageImport):
    def ensure_registry(self) -> RegistryInfo:
        return RegistryInfo("10.160.0.1:5000", "10.160.0.0/24")

    def import_image_archive(self, path, namespace):  # pragma: no cover - not called here
        raise AssertionError

    def registry_token_endpoint(self) -> tuple[str, int]:
        return "10.160.0.1", 5001


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def granted(client: TestClient, headers: dict, *scopes: str) -> list[list[str]]:
    resp = client.get(registry_auth.TOKEN_PATH, params=[("service", registry_auth.SERVICE),
                      *[("scope", s) for s in scopes]], headers=headers)
    assert resp.status_code == 200, resp.text
    return [a["actions"] for a in _claims(resp.json()["token"])["access"]]


def test_grants_per_namespace(client: TestClient, env: Env) -> None:
    member = env.new_project("alpha")
    ns = registry_auth.project_namespace(identity.authenticate(env.db, member).project_id)
    other = env.new_project("beta")
    rw = "pull,push,delete,*"
    scopes = (f"repository:{ns}/x:{rw}", f"repository:library/python:{rw}", "repository:someone/x:pull,push")
    assert granted(client, _basic("me", member), *scopes) == [["*", "delete", "pull", "push"], ["pull"], []]
    assert granted(client, _basic("me", other), *scopes) == [[], ["pull"], []]
    assert granted(client, {}, *scopes) == [[], ["pull"], []]  # anonymous: the public library only
    admin = granted(client, _basic("admin", env.admin_token), *scopes, "registry:catalog:*")
    assert admin == [["pull"], ["*", "delete", "pull", "push"], ["pull"], ["*"]]


def test_keystone_logins(client: TestClient, env: Env) -> None:
    """`docker login -u USER@PROJECT` with a password, or `-u APP_CRED_ID` with its secret; a
    reader pulls only."""
    project = client.post("/identity/v3/projects", json={"project": {"name": "lab"}}).json()["project"]["id"]
    roles = {r["name"]: r["id"] for r in client.get("/identity/v3/roles").json()["roles"]}
    for user, role in (("maria", "member"), ("rui", "reader")):
        uid = client.post("/identity/v3/users", json={"user": {"name": user, "password": "pw-" + user}}
                          ).json()["user"]["id"]
        assert client.put(f"/identity/v3/projects/{project}/users/{uid}/roles/{roles[role]}").status_code == 204
    ns = registry_auth.project_namespace(project)
    scopes = (f"repository:{ns}/x:pull,push", "repository:library/x:pull,push")
    assert granted(client, _basic("maria@lab", "pw-maria"), *scopes) == [["pull", "push"], ["pull"]]
    assert granted(client, _basic("rui@lab", "pw-rui"), *scopes) == [["pull"], ["pull"]]
    for bad in (_basic("maria@lab", "pw-rui"), _basic("maria@admin", "pw-maria"), _basic("maria", "pw-maria")):
        assert client.get(registry_auth.TOKEN_PATH, headers=bad).status_code == 401
    token = client.post("/identity/v3/auth/tokens", headers={"X-Auth-Token": ""}, json={"auth": {"identity": {
        "methods": ["password"], "password": {"user": {"name": "maria", "domain": {"id": "default"},
                                                       "password": "pw-maria"}}},
        "scope": {"project": {"id": project}}}}).headers["X-Subject-Token"]
    maria = {"X-Auth-Token": token}
    uid = client.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": token}).json()["token"]["user"]["id"]
    cred = client.post(f"/identity/v3/users/{uid}/application_credentials", headers=maria,
                       json={"application_credential": {"name": "ci"}}).json()["application_credential"]
    assert granted(client, _basic(cred["id"], cred["secret"]), *scopes) == [["pull", "push"], ["pull"]]
    assert client.get(registry_auth.TOKEN_PATH, headers=_basic(cred["id"], "nope")).status_code == 401


def test_bad_credentials_and_requests(client: TestClient, env: Env) -> None:
    resp = client.get(registry_auth.TOKEN_PATH, headers=_basic("me", "wrong"))
    assert resp.status_code == 401 and resp.headers["www-authenticate"].startswith("Basic")
    assert resp.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert client.get(registry_auth.TOKEN_PATH, params={"service": "other"}).status_code == 400
    assert client.get(registry_auth.TOKEN_PATH, params={"scope": "repository:Bad Name:pull"}).status_code == 400
    assert client.get(registry_auth.TOKEN_PATH, headers={"Authorization": "Bearer x"}).status_code == 401


def test_a_clusters_pull_credential(client: TestClient, env: Env) -> None:
    env.runtime.provider = _Registry()  # type: ignore[assignment]
    assert client.post("/v1/clustertemplates", json={"coe": "swarm", "name": "tpl"}).status_code == 201
    uuid = client.post("/v1/clusters", json={"cluster_template_id": "tpl", "name": "c"}).json()["uuid"]
    cred = client.get(f"/v1/floe/clusters/{uuid}/registry-credential").json()
    assert cred["registry"] == "10.160.0.1:5000" and cred["username"] == f"floe-cluster-{uuid}"
    ns = cred["namespace"]
    headers = _basic(cred["username"], cred["password"])
    assert granted(client, headers, f"repository:{ns}/x:pull,push", "repository:library/x:pull,push,delete",
                   "repository:zz/x:pull") == [["pull"], ["pull"], []]
    assert client.get(registry_auth.TOKEN_PATH, headers=_basic(cred["username"], "0" * 64)).status_code == 401
    # Another project sees no such cluster.
    other = env.new_project("gamma")
    resp = client.get(f"/v1/floe/clusters/{uuid}/registry-credential", headers={"X-Auth-Token": other})
    assert_error(resp, 404, "could not be found")
