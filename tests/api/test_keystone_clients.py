"""Stock OpenStack clients, with their usual settings, authenticating against floe's Keystone.

No `admin_token`, no endpoint overrides: `openstack --os-auth-url …/identity/v3 --os-username …`
and `openstack.connect(cloud=…)` from a clouds.yaml get a token from POST /identity/v3/auth/tokens
and find Magnum (/v1) and Manila (/v2) in the token's service catalog. The real packages
(python-openstackclient, openstacksdk, magnumclient's and manilaclient's plugins) run against a
real uvicorn server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Live

OPENSTACK = Path(sys.executable).parent / "openstack"

pytestmark = pytest.mark.skipif(not OPENSTACK.exists(), reason="python-openstackclient is not installed")


def admin_password(live: Live) -> str:
    return live.env.runtime.settings.admin_password_file.read_text().strip()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["SHELL"] = "/bin/bash"
    return env


def password_args(live: Live, user: str, password: str, project: str) -> list[str]:
    return ["--os-auth-url", f"{live.url}/identity/v3", "--os-username", user, "--os-password", password,
            "--os-project-name", project, "--os-user-domain-name", "Default",
            "--os-project-domain-name", "Default", "--os-identity-api-version", "3"]


def openstack(auth: list[str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(OPENSTACK), *auth, *args], capture_output=True, text=True, timeout=120, env=_env())
    if check:
        assert proc.returncode == 0, f"openstack {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc


def as_json(proc: subprocess.CompletedProcess):
    return json.loads(proc.stdout)


def test_the_openstack_cli_with_passwords_and_application_credentials(live: Live, tmp_path: Path) -> None:
    admin = password_args(live, "admin", admin_password(live), "admin")

    # An admin makes a project and a user, and gives the user the member role there.
    project = as_json(openstack(admin, "project", "create", "--domain", "default", "--description", "lab",
                                "cli-lab", "-f", "json"))
    assert project["name"] == "cli-lab" and project["domain_id"] == "default"
    user = as_json(openstack(admin, "user", "create", "--domain", "default", "--password", "pä55 wörd",
                             "--project", "cli-lab", "cli-alice", "-f", "json"))
    assert user["name"] == "cli-alice" and "pä55" not in json.dumps(user, ensure_ascii=False)
    openstack(admin, "role", "add", "--project", "cli-lab", "--user", "cli-alice", "member")
    assigned = as_json(openstack(admin, "role", "assignment", "list", "--user", "cli-alice", "--names",
                                 "-f", "json"))
    assert [(a["Role"], a["Project"]) for a in assigned] == [("member", "cli-lab@Default")]
    projects = as_json(openstack(admin, "project", "list", "-f", "json"))
    assert {"admin", "cli-lab"} <= {p["Name"] for p in projects}

    # The user, with a password, uses Magnum and Manila found through the catalog.
    alice = password_args(live, "cli-alice", "pä55 wörd", "cli-lab")
    token = as_json(openstack(alice, "token", "issue", "-f", "json"))
    assert token["project_id"] == project["id"] and token["user_id"] == user["id"]
    openstack(alice, "coe", "cluster", "template", "create", "--coe", "swarm-mode", "--image", "floe-node",
              "--external-network", "none", "alice-tpl")
    assert [t["name"] for t in as_json(openstack(alice, "coe", "cluster", "template", "list", "-f", "json"))] \
        == ["alice-tpl"]
    assert as_json(openstack(alice, "coe", "cluster", "list", "-f", "json")) == []
    assert as_json(openstack(alice, "share", "list", "-f", "json")) == []
    # The admin project's objects are not the user's: their template list shows only theirs.
    assert "alice-tpl" not in {t["name"] for t in
                               as_json(openstack(admin, "coe", "cluster", "template", "list", "-f", "json"))}

    # An application credential: the secret is shown once, then it authenticates on its own.
    cred = as_json(openstack(alice, "application", "credential", "create", "--description", "ci", "ci-cred",
                             "-f", "json"))
    assert cred["Secret"] and cred["Project ID"] == project["id"] and "member" in str(cred["Roles"])
    listed = as_json(openstack(alice, "application", "credential", "list", "-f", "json"))
    assert [c["Name"] for c in listed] == ["ci-cred"] and "Secret" not in listed[0]
    app = ["--os-auth-url", f"{live.url}/identity/v3", "--os-auth-type", "v3applicationcredential",
           "--os-application-credential-id", cred["ID"], "--os-application-credential-secret", cred["Secret"]]
    assert [t["name"] for t in as_json(openstack(app, "coe", "cluster", "template", "list", "-f", "json"))] \
        == ["alice-tpl"]
    assert as_json(openstack(app, "share", "list", "-f", "json")) == []
    wrong = ["--os-auth-url", f"{live.url}/identity/v3", "--os-auth-type", "v3applicationcredential",
             "--os-application-credential-id", cred["ID"], "--os-application-credential-secret", "not-it"]
    refused = openstack(wrong, "coe", "cluster", "list", check=False)
    assert refused.returncode != 0 and "401" in refused.stderr

    # Deleting the credential revokes it.
    openstack(alice, "application", "credential", "delete", "ci-cred")
    assert openstack(app, "coe", "cluster", "list", check=False).returncode != 0

    # A wrong password is refused without saying why.
    bad = openstack(password_args(live, "cli-alice", "nope", "cli-lab"), "coe", "cluster", "list", check=False)
    assert bad.returncode != 0 and "401" in bad.stderr


def test_openstacksdk_from_clouds_yaml(live: Live, tmp_path: Path) -> None:
    import openstack as sdk

    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(json.dumps({"clouds": {"floe": {
        "auth": {"auth_url": f"{live.url}/identity/v3", "username": "admin", "password": admin_password(live),
                 "project_name": "admin", "user_domain_name": "Default", "project_domain_name": "Default"},
        "identity_api_version": 3, "region_name": "RegionOne",
    }, "floe-bob": {
        "auth": {"auth_url": f"{live.url}/identity/v3", "username": "sdk-bob", "password": "bobs-pw",
                 "project_name": "sdk-lab", "user_domain_name": "Default", "project_domain_name": "Default"},
        "identity_api_version": 3,
    }}}))
    old = os.environ.get("OS_CLIENT_CONFIG_FILE")
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(clouds)
    try:
        conn = sdk.connect(cloud="floe")
        assert conn.container_infrastructure_management.get_endpoint().endswith("/v1")
        project = conn.identity.create_project(name="sdk-lab", domain_id="default")
        user = conn.identity.create_user(name="sdk-bob", password="bobs-pw", domain_id="default")
        member = conn.identity.find_role("member")
        conn.identity.assign_project_role_to_user(project, user, member)
        assert conn.identity.validate_user_has_project_role(project, user, member)
        assert [p.name for p in conn.identity.projects() if p.name == "sdk-lab"] == ["sdk-lab"]
        templates = list(conn.container_infrastructure_management.cluster_templates())
        assert isinstance(templates, list)
        assert list(conn.shared_file_system.shares()) == []

        bob = sdk.connect(cloud="floe-bob")
        assert bob.current_project_id == project.id
        assert list(bob.container_infrastructure_management.clusters()) == []
    finally:
        if old is None:
            os.environ.pop("OS_CLIENT_CONFIG_FILE", None)
        else:
            os.environ["OS_CLIENT_CONFIG_FILE"] = old
