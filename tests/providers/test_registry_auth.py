"""floe's registry with token auth, for real: the docker-registry process, floe's realm over HTTP,
skopeo pushing and pulling with floe identities and clusters' pull credentials."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from floe import registry_auth
from floe.config import Settings
from floe.db.models.clusters import Cluster, ClusterTemplate
from floe.host import commands
from floe.providers.base import ProviderError
from floe.providers.local import images
from floe.providers.local.provider import LocalProvider
from floe.server import build_runtime, start_registry_realm
from floe.services import identity

pytestmark = pytest.mark.timeout(300)

INFRA = "10.171.0.0/24"
REGISTRY_PORT = 5000


@pytest.fixture(scope="module")
def floe(tmp_path_factory):
    """A provider with its registry, floe's realm beside it, and a database of projects."""
    home = tmp_path_factory.mktemp("floe-reg")
    provider = LocalProvider(home, INFRA, registry_port=REGISTRY_PORT)
    try:
        provider.check()
    except ProviderError as exc:
        pytest.skip(f"local provider cannot run here: {exc}")
    runtime = build_runtime(Settings(home=home), provider, engine=False)
    realm = start_registry_realm(runtime, ensure=False)
    try:
        started = time.monotonic()
        info = provider.ensure_registry()
        print(f"\nensure_registry with the shipped images: {time.monotonic() - started:.2f}s")
        yield runtime, provider, info.address
    finally:
        if realm is not None:
            realm.should_exit = True
        provider.purge_all(only_this_home=True)
        runtime.db.dispose()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def who(floe):
    """Tokens: a member of project a, a member of project b, an admin; a cluster of a's credential."""
    runtime, _, _ = floe
    with runtime.db.session() as s:
        a, b = identity.create_project(s, "alpha"), identity.create_project(s, "beta")
        s.flush()
        tokens = {
            "a": identity.create_token(s, a.id), "b": identity.create_token(s, b.id),
            "admin": identity.create_token(s, a.id, is_admin=True),
        }
        template = ClusterTemplate(project_id=a.id, name="t", coe="swarm")
        s.add(template)
        s.flush()
        cluster = Cluster(project_id=a.id, name="c", host_tag="feedf00d", cluster_template_id=template.uuid)
        s.add(cluster)
        s.flush()
        ids = {"a": a.id, "b": b.id, "cluster": cluster.uuid}
    keys = registry_auth.keys(runtime.settings.home)
    node = f"{registry_auth.cluster_username(ids['cluster'])}:{keys.pull_password(ids['cluster'])}"
    return {**{k: f"user:{v}" for k, v in tokens.items()}, "node": node,
            "ns_a": registry_auth.project_namespace(ids["a"]), "ns_b": registry_auth.project_namespace(ids["b"])}


def skopeo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([commands.binary("skopeo"), "--insecure-policy", *args], capture_output=True, text=True,
                          timeout=120)


def push(floe, creds: str | None, repo: str) -> bool:
    """Copy the cached busybox layout to `repo` as `creds` (user:password, or None for anonymous)."""
    _, provider, address = floe
    layout = provider.home / "registry" / "cache" / "busybox-oci"
    auth = ["--dest-creds", creds] if creds else ["--dest-no-creds"]
    done = skopeo("copy", "--quiet", "--dest-tls-verify=false", *auth, f"oci:{layout}:latest",
                  f"docker://{address}/{repo}:1")
    return done.returncode == 0


def pull(floe, creds: str | None, repo: str) -> bool:
    _, _, address = floe
    auth = ["--creds", creds] if creds else ["--no-creds"]
    return skopeo("inspect", "--tls-verify=false", *auth, f"docker://{address}/{repo}:1").returncode == 0


def realm_token(floe, creds: str | None, scope: str) -> tuple[int, dict]:
    _, provider, _ = floe
    ip, port = provider.registry_token_endpoint()
    headers = {"Authorization": "Basic " + base64.b64encode(creds.encode()).decode()} if creds else {}
    r = httpx.get(f"http://{ip}:{port}{registry_auth.TOKEN_PATH}", headers=headers,
                  params={"service": registry_auth.SERVICE, "scope": scope}, trust_env=False)
    return r.status_code, r.json()


def delete(floe, creds: str | None, repo: str) -> int:
    """DELETE repo:1's manifest with a token for `creds` from the realm; the registry's status."""
    _, _, address = floe
    status, body = realm_token(floe, creds, f"repository:{repo}:pull,delete")
    assert status == 200, body
    headers = {"Authorization": f"Bearer {body['token']}", "Accept": images.MANIFEST_ACCEPT}
    with httpx.Client(trust_env=False) as client:
        head = client.head(f"http://{address}/v2/{repo}/manifests/1", headers=headers)
        digest = head.headers.get("docker-content-digest") or "sha256:" + "0" * 64
        return client.delete(f"http://{address}/v2/{repo}/manifests/{digest}", headers=headers).status_code


def test_registry_refuses_requests_without_a_token(floe):
    _, _, address = floe
    r = httpx.get(f"http://{address}/v2/library/busybox/tags/list", trust_env=False)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer realm=")


def test_shipped_images_are_in_library_and_anyone_pulls_them(floe, who):
    _, _, address = floe
    for repo in ("library/busybox", "library/python"):
        out = skopeo("inspect", "--tls-verify=false", "--no-creds", f"docker://{address}/{repo}:latest")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["Os"] == "linux"
    assert pull(floe, who["node"], "library/busybox") is False  # no tag 1 yet: a miss, not a refusal


def test_push_needs_an_identity(floe, who):
    assert not push(floe, None, f"{who['ns_a']}/anon")
    assert not push(floe, None, "library/anon")
    assert not push(floe, "user:not-a-token", f"{who['ns_a']}/bad")
    status, body = realm_token(floe, "user:not-a-token", f"repository:{who['ns_a']}/bad:push")
    assert status == 401 and body["errors"][0]["code"] == "UNAUTHORIZED"


def test_members_push_only_to_their_own_namespace(floe, who):
    assert push(floe, who["a"], f"{who['ns_a']}/tool")
    assert not push(floe, who["a"], f"{who['ns_b']}/tool")
    assert not push(floe, who["a"], "library/tool")
    assert not push(floe, who["a"], "elsewhere/tool")
    assert push(floe, who["b"], f"{who['ns_b']}/tool")
    # Pulls: own project's and library, not another project's.
    assert pull(floe, who["a"], f"{who['ns_a']}/tool")
    assert not pull(floe, who["b"], f"{who['ns_a']}/tool")
    assert not pull(floe, None, f"{who['ns_a']}/tool")


def test_admins_curate_library(floe, who):
    assert push(floe, who["admin"], "library/curated")
    assert pull(floe, None, "library/curated") and pull(floe, who["b"], "library/curated")
    assert not push(floe, who["admin"], f"{who['ns_b']}/from-admin")
    assert pull(floe, who["admin"], f"{who['ns_b']}/tool")  # admins read every namespace


def test_delete_follows_the_same_rules(floe, who):
    assert push(floe, who["a"], f"{who['ns_a']}/gone")
    assert delete(floe, who["b"], f"{who['ns_a']}/gone") == 401
    assert delete(floe, None, f"{who['ns_a']}/gone") == 401
    assert delete(floe, who["node"], f"{who['ns_a']}/gone") == 401
    assert delete(floe, who["a"], "library/curated") == 401
    assert delete(floe, who["a"], f"{who['ns_a']}/gone") == 202
    assert not pull(floe, who["a"], f"{who['ns_a']}/gone")
    assert push(floe, who["admin"], "library/old")
    assert delete(floe, who["admin"], "library/old") == 202


def test_a_clusters_credential_pulls_but_never_pushes(floe, who):
    assert push(floe, who["a"], f"{who['ns_a']}/app")
    assert pull(floe, who["node"], f"{who['ns_a']}/app")
    assert pull(floe, who["node"], "library/curated")
    assert not pull(floe, who["node"], f"{who['ns_b']}/tool")  # not its project's
    assert not push(floe, who["node"], f"{who['ns_a']}/app2")
    assert not push(floe, who["node"], "library/x")
    forged = who["node"].rsplit(":", 1)[0] + ":" + "0" * 64
    assert realm_token(floe, forged, "repository:library/busybox:pull")[0] == 401


def test_import_goes_to_the_callers_namespace(floe, who, tmp_path):
    _, provider, address = floe
    archive = tmp_path / "img.tar"
    layout = provider.home / "registry" / "cache" / "busybox-oci"
    out = skopeo("copy", "--quiet", f"oci:{layout}:latest", f"docker-archive:{archive}:team/tool:2")
    assert out.returncode == 0, out.stderr
    assert provider.import_image_archive(archive, who["ns_a"]) == [f"{who['ns_a']}/team/tool:2"]
    done = skopeo("inspect", "--tls-verify=false", "--creds", who["a"], f"docker://{address}/{who['ns_a']}/team/tool:2")
    assert done.returncode == 0, done.stderr
    assert images.mirror_name("busybox:1.36", "library") == ("library/busybox:1.36", "busybox:1.36")
    assert images.mirror_name(f"{who['ns_a']}/x:1", who["ns_a"]) == (f"{who['ns_a']}/x:1", f"{who['ns_a']}/x:1")
    assert images.mirror_name("ghcr.io/o/x:1", "ns") == ("ns/ghcr.io/o/x:1", "ns/ghcr.io/o/x:1")


def test_keys_are_private(floe):
    runtime, _, _ = floe
    keys = registry_auth.keys(runtime.settings.home)
    assert keys.key_file.stat().st_mode & 0o777 == 0o600
    assert keys.pull_secret_file.stat().st_mode & 0o777 == 0o600
    assert keys.dir.stat().st_mode & 0o777 == 0o700


def test_python_image_is_small_and_built_from_the_host(floe):
    _, provider, _ = floe
    layout = Path(provider.home / "registry" / "cache" / "python-oci")
    size = sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir())
    print(f"\npython image layout: {size / 1e6:.1f} MB compressed")
    assert size < 80e6


# -- a real node pulling through the mirror -----------------------------------------------


@pytest.fixture(scope="module")
def node(floe):
    """One node of a cluster, using the registry as its docker.io mirror."""
    from floe import pki
    from floe.providers.base import NetworkSpec, NodeSpec, RegistryInfo, TLSMaterial

    _, provider, address = floe
    tag = "a1b2c3d4"
    net = NetworkSpec(cluster_tag=tag, name="mgmt", subnet="10.171.1.0/24", gateway="10.171.1.1")
    ca = pki.new_ca("floe-test-ca")
    cert, key = pki.issue_server_cert(ca[0], ca[1], "n0", ips=["10.171.1.2"], dns=["n0"])
    spec = NodeSpec(cluster_tag=tag, name="n0", address="10.171.1.2", network=net, docker_pool="10.171.64.0/23",
                    tls=TLSMaterial(ca_pem=ca[0], cert_pem=cert, key_pem=key),
                    registry=RegistryInfo(address, INFRA))
    try:
        provider.ensure_network(net)
        info = provider.start_node(spec)
        yield provider.docker_client(info)
    finally:
        provider.purge_cluster(tag)


def test_python_runs_on_a_node_by_its_hub_name(node):
    started = time.monotonic()
    assert node.containers.run("python", ["python", "-c", "print(1)"], remove=True) == b"1\n"
    print(f"\npull python through the mirror and run it: {time.monotonic() - started:.2f}s")
    out = node.containers.run("python", ["python3", "-c", "import ssl, sqlite3, json; print('ok')"], remove=True)
    assert out == b"ok\n"


def test_a_node_pulls_project_images_only_with_its_clusters_credential(floe, who, node):
    assert push(floe, who["a"], f"{who['ns_a']}/private")
    with pytest.raises(Exception):  # noqa: B017 - docker's error type varies with the refusal
        node.images.pull(f"{who['ns_a']}/private", tag="1")
    user, password = who["node"].split(":", 1)
    node.images.pull(f"{who['ns_a']}/private", tag="1", auth_config={"username": user, "password": password})
    with pytest.raises(Exception):  # noqa: B017
        node.images.pull(f"{who['ns_b']}/tool", tag="1", auth_config={"username": user, "password": password})
