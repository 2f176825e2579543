"""`floe template ...` against the real API."""

from __future__ import annotations

import json

import httpx

from tests.cli.conftest import LiveServer, assert_one_line_error


def _api_get(server: LiveServer, path: str) -> httpx.Response:
    headers = {"X-Auth-Token": server.token, "OpenStack-API-Version": "container-infra latest"}
    return httpx.get(server.url + path, headers=headers, timeout=10)


def test_template_lifecycle(floe, live_server: LiveServer):
    result = floe(
        "template", "create", "tpl-life", "--coe", "swarm", "--flavor", "m1.small",
        "--label", "purpose=test", "--label", "url=http://x/?a=b", "-f", "json",
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created["name"] == "tpl-life" and created["coe"] == "swarm"
    assert created["labels"] == {"purpose": "test", "url": "http://x/?a=b"}
    assert created["flavor_id"] == "m1.small"
    uuid = created["uuid"]

    # Table output names the template; JSON output is exactly the API's objects.
    listed = floe("template", "list")
    assert listed.exit_code == 0 and "tpl-life" in listed.stdout and uuid in listed.stdout
    as_json = json.loads(floe("template", "list", "-f", "json").stdout)
    api_list = _api_get(live_server, "/v1/clustertemplates").json()["clustertemplates"]
    assert as_json == api_list
    assert uuid in [t["uuid"] for t in as_json]

    for ident in ("tpl-life", uuid):
        shown = floe("template", "show", ident, "--format", "json")
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.stdout) == _api_get(live_server, f"/v1/clustertemplates/{uuid}").json()
    table = floe("template", "show", "tpl-life")
    assert table.exit_code == 0 and "m1.small" in table.stdout and "purpose=test" in table.stdout

    deleted = floe("template", "delete", "tpl-life")
    assert deleted.exit_code == 0, deleted.output
    assert_one_line_error(floe("template", "show", uuid), "404")
    assert "tpl-life" not in floe("template", "list").stdout


def test_duplicate_template_name(floe):
    assert floe("template", "create", "tpl-dup").exit_code == 0
    assert_one_line_error(floe("template", "create", "tpl-dup"), "409")
    assert floe("template", "delete", "tpl-dup").exit_code == 0
