"""Nova's flavor API at /v2.1 (the real app, a real database): shapes by microversion, the
version headers, Nova's faults, admin-only writes that change nothing when refused, flavors in
use kept, paging; and Magnum's templates and clusters refusing flavors the catalog lacks."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from floe.db.models import Flavor, Project
from floe.services import identity

from .conftest import Env, assert_error

V261 = {"OpenStack-API-Version": "compute 2.61"}
DETAIL_21 = ["id", "name", "ram", "disk", "swap", "OS-FLV-EXT-DATA:ephemeral", "OS-FLV-DISABLED:disabled", "vcpus",
             "os-flavor-access:is_public", "rxtx_factor", "links"]
SEEDED = ["m1.tiny", "m1.small", "m1.medium", "m1.large", "m1.xlarge"]


def fault(resp, status: int, name: str, *fragments: str) -> str:
    """`resp` is a Nova fault `name` with `status`; returns its message."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert list(body) == [name], body
    assert body[name]["code"] == status
    assert body[name]["request_id"] == resp.headers["x-openstack-request-id"]
    for fragment in fragments:
        assert fragment in body[name]["message"], body[name]["message"]
    return body[name]["message"]


def create(client: TestClient, expect: int = 200, headers: dict | None = None, **fields: Any):
    body = {"name": "f", "ram": 1024, "vcpus": 2, "disk": 5, **fields}
    resp = client.post("/v2.1/flavors", json={"flavor": body}, headers={**V261, **(headers or {})})
    assert resp.status_code == expect, resp.text
    return resp


def token(env: Env, project: str, *roles: str) -> str:
    with env.db.session() as s:
        p = s.scalars(select(Project).where(Project.name == project)).first() or identity.create_project(s, project)
        return identity.create_token(s, p.id, roles=roles or ("member",), description="test")


@pytest.fixture
def member(env: Env) -> dict[str, str]:
    return env.headers(token(env, "members"))


# -- discovery and microversions ---------------------------------------------------------


def test_version_document_is_public(client: TestClient) -> None:
    for path in ("/v2.1", "/v2.1/"):
        resp = client.get(path, headers={"X-Auth-Token": ""})
        assert resp.status_code == 200, resp.text
        doc = resp.json()["version"]
        assert (doc["id"], doc["status"], doc["version"], doc["min_version"]) == ("v2.1", "CURRENT", "2.61", "2.1")
        assert {"rel": "self", "href": "http://testserver/v2.1/"} in doc["links"]
    # Everything else needs a token, refused in Nova's shape.
    fault(client.get("/v2.1/flavors", headers={"X-Auth-Token": ""}), 401, "unauthorized")
    fault(client.get("/v2.1/flavors", headers={"X-Auth-Token": "bogus"}), 401, "unauthorized")


@pytest.mark.parametrize(("headers", "version"), [
    ({}, "2.1"),
    ({"X-OpenStack-Nova-API-Version": "2.55"}, "2.55"),
    ({"OpenStack-API-Version": "compute 2.60"}, "2.60"),
    ({"OpenStack-API-Version": "compute latest"}, "2.61"),
    ({"OpenStack-API-Version": "container-infra 1.10, compute 2.2"}, "2.2"),
    # The standard header wins over Nova's own; another service's is not ours.
    ({"OpenStack-API-Version": "compute 2.3", "X-OpenStack-Nova-API-Version": "2.50"}, "2.3"),
    ({"OpenStack-API-Version": "container-infra 1.10"}, "2.1"),
])
def test_microversions_are_answered(client: TestClient, headers: dict, version: str) -> None:
    resp = client.get("/v2.1/flavors/1", headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["OpenStack-API-Version"] == f"compute {version}"
    assert resp.headers["X-OpenStack-Nova-API-Version"] == version
    assert "OpenStack-API-Version" in resp.headers["Vary"]
    flavor = resp.json()["flavor"]
    major, minor = map(int, version.split("."))
    expected = DETAIL_21 + (["description"] if minor >= 55 else []) + (["extra_specs"] if minor >= 61 else [])
    assert list(flavor) == expected


@pytest.mark.parametrize(("value", "status", "fragment"), [
    ("2.62", 406, "Version 2.62 is not supported by the API. Minimum is 2.1 and maximum is 2.61."),
    ("2.0", 406, "Minimum is 2.1"),
    ("3.1", 406, "not supported"),
    ("two", 400, "API Version String two is of invalid format"),
    ("2.١", 400, "invalid format"),
    ("2." + "9" * 12, 400, "invalid format"),
])
def test_microversions_refused(client: TestClient, value: str, status: int, fragment: str) -> None:
    resp = client.get("/v2.1/flavors", headers={"X-OpenStack-Nova-API-Version": value.encode()})
    fault(resp, status, "computeFault" if status == 406 else "badRequest", fragment)
    assert resp.headers["X-OpenStack-Nova-API-Version"] == "2.1"


# -- reading -------------------------------------------------------------------------------


def test_list_and_show_shapes(client: TestClient, member: dict) -> None:
    listed = client.get("/v2.1/flavors", headers=member).json()["flavors"]
    assert [f["name"] for f in listed] == SEEDED
    assert listed[1] == {"id": "2", "name": "m1.small", "links": [
        {"href": "http://testserver/v2.1/flavors/2", "rel": "self"},
        {"href": "http://testserver/v2.1/flavors/2", "rel": "bookmark"}]}
    detail = client.get("/v2.1/flavors/detail", headers={**member, **V261}).json()["flavors"]
    small = detail[1]
    assert small == {"id": "2", "name": "m1.small", "ram": 2048, "disk": 20, "swap": "",
                     "OS-FLV-EXT-DATA:ephemeral": 0, "OS-FLV-DISABLED:disabled": False, "vcpus": 1,
                     "os-flavor-access:is_public": True, "rxtx_factor": 1.0, "links": listed[1]["links"],
                     "description": None, "extra_specs": {}}
    for ident in ("2", "m1.small"):
        assert client.get(f"/v2.1/flavors/{ident}", headers={**member, **V261}).json()["flavor"] == small
    assert client.get("/v2.1/flavors/2/os-extra_specs", headers=member).json() == {"extra_specs": {}}
    fault(client.get("/v2.1/flavors/nope", headers=member), 404, "itemNotFound", "Flavor nope could not be found.")
    fault(client.get("/v2.1/flavors/2/os-extra_specs/floe:gpus", headers=member), 404, "itemNotFound",
          "Flavor 2 has no extra specs with key floe:gpus.")
    fault(client.get("/v2.1/flavors/2/os-flavor-access", headers=member), 404, "itemNotFound",
          "Access list not available for public flavors.")
    fault(client.get("/v2.1/servers", headers=member), 404, "itemNotFound")
    fault(client.put("/v2.1/flavors", headers=member), 405, "badMethod")


def test_private_flavors_are_the_admins(client: TestClient, member: dict) -> None:
    hidden = create(client, name="hidden", id="h-1", **{"os-flavor-access:is_public": False}).json()["flavor"]
    assert hidden["os-flavor-access:is_public"] is False
    names = lambda resp: [f["name"] for f in resp.json()["flavors"]]  # noqa: E731
    # An admin gets public ones by default (as `openstack flavor list` asks), all with "none".
    assert names(client.get("/v2.1/flavors")) == SEEDED
    assert names(client.get("/v2.1/flavors?is_public=None")) == SEEDED + ["hidden"]
    assert names(client.get("/v2.1/flavors/detail?is_public=false")) == ["hidden"]
    assert client.get("/v2.1/flavors/h-1/os-flavor-access").json() == {"flavor_access": []}
    # Anyone else: public ones only, whatever they ask; the private one does not exist for them.
    for query in ("", "?is_public=none", "?is_public=false"):
        assert names(client.get(f"/v2.1/flavors/detail{query}", headers=member)) == SEEDED
    fault(client.get("/v2.1/flavors/hidden", headers=member), 404, "itemNotFound")
    fault(client.get("/v2.1/flavors/h-1/os-extra_specs", headers=member), 404, "itemNotFound")
    fault(client.get("/v2.1/flavors?is_public=maybe"), 400, "badRequest", "Invalid is_public filter [maybe]")


def test_paging_filters_and_sorting(client: TestClient) -> None:
    page = client.get("/v2.1/flavors?limit=2&sort_key=name&minRam=0").json()
    assert [f["name"] for f in page["flavors"]] == ["m1.large", "m1.medium"]
    (nxt,) = page["flavors_links"]
    assert nxt["rel"] == "next" and nxt["href"].startswith("http://testserver/v2.1/flavors?")
    assert "limit=2" in nxt["href"] and "marker=3" in nxt["href"] and "sort_key=name" in nxt["href"]
    page = client.get(nxt["href"]).json()
    assert [f["name"] for f in page["flavors"]] == ["m1.small", "m1.tiny"]
    page = client.get(page["flavors_links"][0]["href"]).json()
    assert [f["name"] for f in page["flavors"]] == ["m1.xlarge"] and "flavors_links" not in page
    detail = client.get("/v2.1/flavors/detail?minDisk=40&minRam=8192&sort_dir=desc").json()["flavors"]
    assert [f["id"] for f in detail] == ["5", "4"]
    assert client.get("/v2.1/flavors?limit=0").json() == {"flavors": []}
    for query, message in (("limit=x", "limit param must be an integer"), ("limit=-1", "must be positive"),
                           ("minRam=lots", "Invalid minRam filter [lots]"), ("minDisk=1.5", "Invalid minDisk"),
                           ("marker=nope", "marker [nope] not found"), ("sort_key=bad", "Sort key supplied"),
                           ("sort_dir=up", "Unknown sort direction")):
        fault(client.get(f"/v2.1/flavors?{query}"), 400, "badRequest", message)


def test_project_id_in_the_path(env: Env, client: TestClient) -> None:
    with env.db.session() as s:
        admin_project = identity.authenticate(env.db, env.admin_token).project_id
        other = identity.create_project(s, "elsewhere").id
    assert client.get(f"/v2.1/{admin_project}/flavors/2").json()["flavor"]["name"] == "m1.small"
    fault(client.get(f"/v2.1/{other}/flavors/2"), 400, "badRequest", "project_id does not match")


# -- changing the catalog ---------------------------------------------------------------


def test_create_as_nova_takes_it(env: Env, client: TestClient) -> None:
    made = create(client, name="gpu.test", description="two GPUs", **{"floe:gpus": 2}).json()["flavor"]
    assert len(made["id"]) == 36
    assert (made["name"], made["vcpus"], made["ram"], made["disk"]) == ("gpu.test", 2, 1024, 5)
    assert made["extra_specs"] == {"floe:gpus": "2"} and made["description"] == "two GPUs"
    assert client.get(f"/v2.1/flavors/{made['id']}", headers=V261).json()["flavor"] == made
    # Numbers as strings of digits, Nova's boolean words, null id, Nova's "nothing" values.
    made = create(client, name="words", id=None, description=None, ram="512", vcpus="1", disk="0", swap="",
                  **{"os-flavor-access:is_public": "False", "OS-FLV-EXT-DATA:ephemeral": 0, "rxtx_factor": 1.0}
                  ).json()["flavor"]
    assert (made["ram"], made["vcpus"], made["os-flavor-access:is_public"]) == (512, 1, False)
    assert made["description"] is None and len(made["id"]) == 36
    # The longest name and id.
    made = create(client, name="n" * 255, id="i" * 64).json()["flavor"]
    assert client.get(f"/v2.1/flavors/{'i' * 64}").json()["flavor"]["name"] == "n" * 255
    with env.db.session() as s:
        assert s.get(Flavor, "i" * 64).gpus == 0


@pytest.mark.parametrize(("fields", "fragment"), [
    ({"disk": None}, "is not a whole number"),
    ({"ram": "lots"}, "field/attribute ram. Value: 'lots'"),
    ({"vcpus": True}, "field/attribute vcpus"),
    ({"vcpus": 0}, "field/attribute vcpus"),
    ({"vcpus": 1025}, "field/attribute vcpus"),
    ({"ram": 16 * 1024 * 1024 + 1}, "field/attribute ram"),
    ({"ram": "٣"}, "field/attribute ram"),
    ({"disk": -1}, "field/attribute disk"),
    ({"floe:gpus": 65}, "field/attribute floe:gpus"),
    ({"name": "n" * 256}, "field/attribute name"),
    ({"name": " padded"}, "no leading or trailing spaces"),
    ({"name": None}, "field/attribute name"),
    ({"id": "a/b"}, "field/attribute id"),
    ({"id": "i" * 65}, "field/attribute id"),
    ({"os-flavor-access:is_public": "perhaps"}, "is not a boolean"),
    ({"OS-FLV-EXT-DATA:ephemeral": 10}, "no ephemeral disk"),
    ({"swap": 512}, "no swap space"),
    ({"rxtx_factor": 2.0}, "bandwidth"),
    ({"color": "red"}, "Additional properties are not allowed ('color' was unexpected)"),
])
def test_create_refusals_change_nothing(env: Env, client: TestClient, fields: dict, fragment: str) -> None:
    before = env.snapshot()
    fault(create(client, expect=400, **fields), 400, "badRequest", fragment)
    assert env.snapshot() == before


def test_create_needs_nova_body(env: Env, client: TestClient) -> None:
    before = env.snapshot()
    for body in (None, [], {"flavor": None}, {"flavor": {"name": "x"}}, {"flavor": {}, "extra": 1}):
        fault(client.post("/v2.1/flavors", json=body), 400, "badRequest")
    fault(client.post("/v2.1/flavors", content=b"{", headers={"Content-Type": "application/json"}), 400, "badRequest",
          "not valid JSON")
    fault(client.post("/v2.1/flavors", json={"flavor": {"name": "x", "ram": 1, "vcpus": 1}}), 400, "badRequest",
          "'disk' is a required property")
    # A description is Nova's from 2.55 on.
    fault(client.post("/v2.1/flavors", json={"flavor": {"name": "x", "ram": 1, "vcpus": 1, "disk": 0,
                                                          "description": "d"}}), 400, "badRequest", "description")
    assert env.snapshot() == before


def test_a_body_too_large_is_a_nova_fault(env: Env, client: TestClient) -> None:
    limit = env.runtime.settings.max_body_bytes
    big = {"flavor": {"name": "x", "ram": 1, "vcpus": 1, "disk": 0, "description": "d" * limit}}
    fault(client.post("/v2.1/flavors", json=big, headers=V261), 413, "overLimit", str(limit))


def test_names_and_ids_are_unique(env: Env, client: TestClient) -> None:
    create(client, name="taken", id="t-1")
    before = env.snapshot()
    fault(create(client, expect=409, name="taken"), 409, "conflictingRequest", "Flavor with name taken already exists.")
    fault(create(client, expect=409, name="other", id="t-1"), 409, "conflictingRequest", "Flavor with ID t-1 already")
    fault(create(client, expect=409, name="1"), 409, "conflictingRequest", "is another flavor's id")
    assert env.snapshot() == before


def test_only_admins_write(env: Env, client: TestClient, member: dict) -> None:
    reader = env.headers(token(env, "members", "reader"))
    create(client, name="mine", id="m-1")
    before = env.snapshot()
    for who, name in ((member, "forbidden"), (reader, "forbidden")):
        fault(create(client, expect=403, headers=who), 403, name)
        fault(client.delete("/v2.1/flavors/m-1", headers=who), 403, name)
        fault(client.post("/v2.1/flavors/m-1/os-extra_specs", json={"extra_specs": {"floe:gpus": "1"}},
                          headers=who), 403, name)
        fault(client.delete("/v2.1/flavors/m-1/os-extra_specs/floe:gpus", headers=who), 403, name)
    msg = fault(create(client, expect=403, headers=member), 403, "forbidden")
    assert msg == "Policy doesn't allow os_compute_api:os-flavor-manage:create to be performed."
    assert "reader" in fault(create(client, expect=403, headers=reader), 403, "forbidden")
    assert env.snapshot() == before


def test_extra_specs_set_the_gpus(env: Env, client: TestClient) -> None:
    create(client, name="g", id="g-1")
    resp = client.post("/v2.1/flavors/g/os-extra_specs", json={"extra_specs": {"floe:gpus": "4"}})
    assert resp.status_code == 200 and resp.json() == {"extra_specs": {"floe:gpus": "4"}}
    assert client.get("/v2.1/flavors/g-1/os-extra_specs/floe:gpus").json() == {"floe:gpus": "4"}
    before = env.snapshot()
    for body, status, fragment in (({"extra_specs": {"hw:cpu_policy": "dedicated"}}, 400, "one extra spec"),
                                   ({"extra_specs": {"floe:gpus": "65"}}, 400, "from 0 to 64"),
                                   ({"extra_specs": {"floe:gpus": "-1"}}, 400, "from 0 to 64"),
                                   ({"extra_specs": {}}, 400, "the body must be"),
                                   ({"specs": 1}, 400, "the body must be")):
        fault(client.post("/v2.1/flavors/g-1/os-extra_specs", json=body), status,
              "badRequest", fragment)
    fault(client.delete("/v2.1/flavors/g-1/os-extra_specs/other"), 404, "itemNotFound", "no extra specs with key other")
    fault(client.post("/v2.1/flavors/nope/os-extra_specs", json={"extra_specs": {"floe:gpus": "1"}}), 404,
          "itemNotFound")
    assert env.snapshot() == before
    assert client.delete("/v2.1/flavors/g-1/os-extra_specs/floe:gpus").status_code == 200
    assert client.get("/v2.1/flavors/g-1/os-extra_specs").json() == {"extra_specs": {}}


def test_delete_and_flavors_in_use(env: Env, client: TestClient) -> None:
    create(client, name="for-tpl", id="ft")
    create(client, name="for-cluster", id="fc")
    resp = client.post("/v1/clustertemplates", json={"coe": "swarm", "name": "tpl", "master_flavor_id": "ft"})
    assert resp.status_code == 201, resp.text
    resp = client.post("/v1/clusters", json={"cluster_template_id": "tpl", "name": "c", "flavor_id": "for-cluster"})
    assert resp.status_code == 202, resp.text
    before = env.snapshot()
    fault(client.delete("/v2.1/flavors/for-tpl"), 409, "conflictingRequest",
          "Flavor for-tpl (ft) is in use by 1 cluster(s), 1 cluster template(s)")
    fault(client.delete("/v2.1/flavors/fc"), 409, "conflictingRequest", "is in use by 1 cluster(s)")
    fault(client.post("/v2.1/flavors/fc/os-extra_specs", json={"extra_specs": {"floe:gpus": "1"}}), 409,
          "conflictingRequest", "cannot change")
    fault(client.delete("/v2.1/flavors/2"), 409, "conflictingRequest", "m1.small is the default flavor")
    fault(client.delete("/v2.1/flavors/nope"), 404, "itemNotFound", "Flavor nope could not be found.")
    assert env.snapshot() == before
    create(client, name="spare", id="sp")
    resp = client.delete("/v2.1/flavors/sp")
    assert resp.status_code == 202 and resp.content == b""
    assert client.delete("/v2.1/flavors/spare").status_code == 404
    assert client.delete("/v2.1/flavors/m1.xlarge").status_code == 202  # by name too


# -- Magnum's templates and clusters name flavors the catalog has ------------------------


def test_templates_and_clusters_refuse_unknown_flavors(env: Env, client: TestClient, member: dict) -> None:
    create(client, name="private", id="pv", **{"os-flavor-access:is_public": False})
    before = env.snapshot()
    for field in ("flavor_id", "master_flavor_id"):
        assert_error(client.post("/v1/clustertemplates", json={"coe": "swarm", "name": "t", field: "m1.huge"}),
                     400, "Unable to find flavor m1.huge.")
    # A private flavor is no member's to name.
    assert_error(client.post("/v1/clustertemplates", json={"coe": "swarm", "name": "t", "flavor_id": "pv"},
                             headers=member), 400, "Unable to find flavor pv.")
    assert env.snapshot() == before
    # By name or by id.
    resp = client.post("/v1/clustertemplates", json={"coe": "swarm", "name": "t", "flavor_id": "3",
                                                     "master_flavor_id": "m1.large", "public": True})
    assert resp.status_code == 201, resp.text
    resp = client.post("/v1/clustertemplates", json={"coe": "swarm", "name": "t2", "flavor_id": "pv"})
    assert resp.status_code == 201, resp.text  # an admin's
    before = env.snapshot()
    for value in ("m1.huge", ""):
        resp = client.patch("/v1/clustertemplates/t", json=[{"op": "replace", "path": "/flavor_id", "value": value}])
        assert resp.status_code == 400, resp.text
    assert env.snapshot() == before
    resp = client.patch("/v1/clustertemplates/t", json=[{"op": "replace", "path": "/flavor_id", "value": "5"},
                                                        {"op": "remove", "path": "/master_flavor_id"}])
    assert resp.status_code == 200 and resp.json()["flavor_id"] == "5" and resp.json()["master_flavor_id"] is None
    # A cluster's own flavors, and the template's, must be in the catalog.
    before = env.snapshot()
    for fields in ({"flavor_id": "nope"}, {"master_flavor_id": "nope"}):
        assert_error(client.post("/v1/clusters", json={"cluster_template_id": "t", "name": "c", **fields},
                                 headers=member), 400, "Unable to find flavor nope.")
    assert_error(client.post("/v1/clusters", json={"cluster_template_id": "t", "name": "c", "flavor_id": "pv"},
                             headers=member), 400, "Unable to find flavor pv.")
    assert env.snapshot() == before
    with env.db.session() as s:  # a template from before the check names a flavor gone since
        from floe.db.models import ClusterTemplate

        s.scalars(select(ClusterTemplate).where(ClusterTemplate.name == "t")).one().flavor_id = "gone"
    assert_error(client.post("/v1/clusters", json={"cluster_template_id": "t", "name": "c"}, headers=member),
                 400, "Unable to find flavor gone.")
    resp = client.post("/v1/clusters", json={"cluster_template_id": "t", "name": "c", "flavor_id": "m1.tiny"},
                       headers=member)
    assert resp.status_code == 202, resp.text
    assert env.cluster("c").flavor_id == "m1.tiny"


def test_the_catalog_names_compute(client: TestClient) -> None:
    resp = client.get("/identity/v3/auth/catalog")
    assert resp.status_code == 200, resp.text
    (compute,) = [s for s in resp.json()["catalog"] if s["type"] == "compute"]
    assert {e["url"] for e in compute["endpoints"]} == {"http://testserver/v2.1"}
