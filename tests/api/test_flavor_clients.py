"""Stock clients on floe's flavors (Nova's /v2.1), with their users' usual settings.

`openstack flavor list|show|create|delete` (python-openstackclient) and openstacksdk's
`conn.compute.flavors()` authenticate against floe's Keystone, find `compute` (/v2.1) in the
token's catalog, discover its microversions and send the requests they send to Nova: the real
packages against a real uvicorn server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from floe.db.models import Flavor

from .conftest import Live

OPENSTACK = Path(sys.executable).parent / "openstack"

pytestmark = pytest.mark.skipif(not OPENSTACK.exists(), reason="python-openstackclient is not installed")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OS_")}


def admin_args(live: Live) -> list[str]:
    password = live.env.runtime.settings.admin_password_file.read_text().strip()
    return ["--os-auth-url", f"{live.url}/identity/v3", "--os-username", "admin", "--os-password", password,
            "--os-project-name", "admin", "--os-user-domain-name", "Default",
            "--os-project-domain-name", "Default", "--os-identity-api-version", "3"]


def openstack(auth: list[str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(OPENSTACK), *auth, *args], capture_output=True, text=True, timeout=120, env=_env())
    if check:
        assert proc.returncode == 0, f"openstack {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc


def as_json(proc: subprocess.CompletedProcess):
    return json.loads(proc.stdout)


def test_the_openstack_cli(live: Live) -> None:
    admin = admin_args(live)
    listed = as_json(openstack(admin, "flavor", "list", "-f", "json"))
    assert [(f["ID"], f["Name"], f["RAM"], f["Disk"], f["VCPUs"], f["Is Public"]) for f in listed][:5] == [
        ("1", "m1.tiny", 512, 1, 1, True), ("2", "m1.small", 2048, 20, 1, True), ("3", "m1.medium", 4096, 40, 2, True),
        ("4", "m1.large", 8192, 80, 4, True), ("5", "m1.xlarge", 16384, 160, 8, True)]

    shown = as_json(openstack(admin, "flavor", "show", "m1.small", "-f", "json"))
    assert (shown["id"], shown["name"], shown["vcpus"], shown["ram"], shown["disk"]) == ("2", "m1.small", 1, 2048, 20)
    assert shown["os-flavor-access:is_public"] is True and shown["properties"] == {}

    made = as_json(openstack(admin, "flavor", "create", "--vcpus", "2", "--ram", "1024", "--disk", "5",
                             "--description", "two cores", "gpu.test", "-f", "json"))
    assert (made["name"], made["vcpus"], made["ram"], made["disk"]) == ("gpu.test", 2, 1024, 5)
    assert made["description"] == "two cores"
    # The GPU count is floe's extra spec: `--property floe:gpus=N` sets it.
    openstack(admin, "flavor", "set", "--property", "floe:gpus=2", "gpu.test")
    shown = as_json(openstack(admin, "flavor", "show", made["id"], "-f", "json"))
    assert shown["properties"] == {"floe:gpus": "2"} and shown["name"] == "gpu.test"
    with live.env.db.session() as s:
        assert s.scalars(select(Flavor.gpus).where(Flavor.name == "gpu.test")).one() == 2
    long = as_json(openstack(admin, "flavor", "list", "--long", "-f", "json"))
    assert [f["Properties"] for f in long if f["Name"] == "gpu.test"] == [{"floe:gpus": "2"}]
    openstack(admin, "flavor", "unset", "--property", "floe:gpus", "gpu.test")
    assert as_json(openstack(admin, "flavor", "show", "gpu.test", "-f", "json"))["properties"] == {}

    # A private flavor: shown to the admin with --all or --private, and in `show`.
    openstack(admin, "flavor", "create", "--vcpus", "1", "--ram", "512", "--private", "--id", "hidden-1", "hidden")
    assert "hidden" not in {f["Name"] for f in as_json(openstack(admin, "flavor", "list", "-f", "json"))}
    assert [f["Name"] for f in as_json(openstack(admin, "flavor", "list", "--private", "-f", "json"))] == ["hidden"]
    assert "hidden" in {f["Name"] for f in as_json(openstack(admin, "flavor", "list", "--all", "-f", "json"))}
    hidden = as_json(openstack(admin, "flavor", "show", "hidden", "-f", "json"))
    assert hidden["id"] == "hidden-1" and hidden["os-flavor-access:is_public"] is False

    # Refusals reach the user: a taken name, an unknown flavor.
    taken = openstack(admin, "flavor", "create", "--vcpus", "1", "--ram", "512", "gpu.test", check=False)
    assert taken.returncode != 0 and "409" in taken.stderr and "already exists" in taken.stderr
    missing = openstack(admin, "flavor", "show", "no-such", check=False)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr

    openstack(admin, "flavor", "delete", "gpu.test", "hidden")
    names = {f["Name"] for f in as_json(openstack(admin, "flavor", "list", "--all", "-f", "json"))}
    assert not names & {"gpu.test", "hidden"}


def test_openstacksdk(live: Live, tmp_path: Path) -> None:
    import openstack as sdk

    password = live.env.runtime.settings.admin_password_file.read_text().strip()
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(json.dumps({"clouds": {"floe": {
        "auth": {"auth_url": f"{live.url}/identity/v3", "username": "admin", "password": password,
                 "project_name": "admin", "user_domain_name": "Default", "project_domain_name": "Default"},
        "identity_api_version": 3, "region_name": "RegionOne",
    }}}))
    old = os.environ.get("OS_CLIENT_CONFIG_FILE")
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(clouds)
    try:
        conn = sdk.connect(cloud="floe")
        assert conn.compute.get_endpoint().endswith("/v2.1")
        flavors = {f.name: f for f in conn.compute.flavors()}
        small = flavors["m1.small"]
        assert (small.id, small.vcpus, small.ram, small.disk, small.is_public) == ("2", 1, 2048, 20, True)
        assert small.extra_specs == {} and small.ephemeral == 0
        made = conn.compute.create_flavor(name="sdk.gpu", vcpus=4, ram=8192, disk=40)
        assert made.id and made.name == "sdk.gpu"
        conn.compute.create_flavor_extra_specs(made, {"floe:gpus": "1"})
        found = conn.compute.find_flavor("sdk.gpu", ignore_missing=False)
        assert (found.id, found.vcpus, found.extra_specs) == (made.id, 4, {"floe:gpus": "1"})
        assert [f.name for f in conn.compute.flavors(min_ram=8192, min_disk=80)] == ["m1.large", "m1.xlarge"]
        conn.compute.delete_flavor(made, ignore_missing=False)
        assert conn.compute.find_flavor("sdk.gpu") is None
    finally:
        if old is None:
            os.environ.pop("OS_CLIENT_CONFIG_FILE", None)
        else:
            os.environ["OS_CLIENT_CONFIG_FILE"] = old
