"""`floe flavor list|show|create|delete` against the real API (Nova's /v2.1), as the admin and a member."""

from __future__ import annotations

import json

import httpx

from floe.services import identity
from tests.cli.conftest import LiveServer, assert_one_line_error


def _member_token(server: LiveServer) -> str:
    with server.runtime.db.session() as s:
        project = identity.create_project(s, "cli-flavor-members")
        return identity.create_token(s, project.id, description="test")


def _api_flavors(server: LiveServer) -> list[dict]:
    headers = {"X-Auth-Token": server.token, "OpenStack-API-Version": "compute 2.61"}
    resp = httpx.get(server.url + "/v2.1/flavors/detail?is_public=none", headers=headers, timeout=10)
    return resp.json()["flavors"]


def test_flavor_lifecycle(floe, live_server: LiveServer):
    listed = floe("flavor", "list")
    assert listed.exit_code == 0, listed.output
    for column in ("NAME", "ID", "VCPUS", "RAM (MiB)", "DISK (GB)", "GPUS", "PUBLIC"):
        assert column in listed.stdout
    assert "m1.small" in listed.stdout and "16384" in listed.stdout

    made = floe("flavor", "create", "cli.gpu", "--vcpus", "4", "--ram", "8192", "--disk", "40", "--gpus", "2",
                "--id", "cli-gpu", "--description", "for CUDA", "-f", "json")
    assert made.exit_code == 0, made.output
    created = json.loads(made.stdout)
    assert (created["id"], created["name"], created["vcpus"], created["ram"], created["disk"]) == \
        ("cli-gpu", "cli.gpu", 4, 8192, 40)
    assert created["extra_specs"] == {"floe:gpus": "2"} and created["description"] == "for CUDA"

    as_json = json.loads(floe("flavor", "list", "-f", "json").stdout)
    assert [f for f in as_json if f["id"] == "cli-gpu"] == [created]
    row = [line for line in floe("flavor", "list").stdout.splitlines() if "cli.gpu" in line]
    cells = [c.strip() for c in row[0].strip("│ ").split("│")] if len(row) == 1 else []
    assert cells == ["cli.gpu", "cli-gpu", "4", "8192", "40", "2", "yes"]
    shown = floe("flavor", "show", "cli.gpu", "-f", "json")
    assert json.loads(shown.stdout) == created

    # A private flavor: listed with --all only.
    assert floe("flavor", "create", "cli.hidden", "--vcpus", "1", "--ram", "256", "--private").exit_code == 0
    assert "cli.hidden" not in floe("flavor", "list").stdout
    assert "cli.hidden" in floe("flavor", "list", "--all").stdout

    assert_one_line_error(floe("flavor", "create", "cli.gpu", "--vcpus", "1", "--ram", "1"), "409",
                          "already exists")
    deleted = floe("flavor", "delete", "cli.gpu")
    assert deleted.exit_code == 0 and "deleted flavor cli.gpu" in deleted.stdout
    assert floe("flavor", "delete", "cli.hidden").exit_code == 0
    assert not {f["name"] for f in _api_flavors(live_server)} & {"cli.gpu", "cli.hidden"}
    assert_one_line_error(floe("flavor", "show", "cli.gpu"), "404", "Flavor cli.gpu could not be found.")
    assert_one_line_error(floe("flavor", "delete", "cli.gpu"), "404")


def test_refusals_are_one_line(floe, live_server: LiveServer):
    before = _api_flavors(live_server)
    member = _member_token(live_server)
    assert "m1.small" in floe("flavor", "list", FLOE_TOKEN=member).stdout
    assert_one_line_error(floe("flavor", "create", "mine", "--vcpus", "1", "--ram", "512", FLOE_TOKEN=member),
                          "403", "os-flavor-manage:create")
    assert_one_line_error(floe("flavor", "delete", "m1.tiny", FLOE_TOKEN=member), "403")
    assert_one_line_error(floe("flavor", "delete", "m1.small"), "409", "default flavor")
    assert_one_line_error(floe("flavor", "create", " padded", "--vcpus", "1", "--ram", "512"), "400",
                          "leading or trailing")
    assert_one_line_error(floe("flavor", "create", "big", "--vcpus", "2000", "--ram", "512"), "400", "vcpus")
    # Typer refuses what can never be valid before any request.
    assert floe("flavor", "create", "zero", "--vcpus", "0", "--ram", "512").exit_code == 2
    assert floe("flavor", "create", "no-ram", "--vcpus", "1").exit_code == 2
    assert _api_flavors(live_server) == before
