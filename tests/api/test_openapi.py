"""floe's OpenAPI documents: served without a token, valid OpenAPI 3, complete, and truthful about errors."""

from __future__ import annotations

from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from openapi_spec_validator import validate
from starlette.routing import Mount

from floe.api import openapi
from floe.api.magnum import MAGNUM_ERRORS
from floe.api.manila import MANILA_FAULTS

METHODS = {"get", "put", "post", "patch", "delete"}


def _operations(doc: dict) -> set[tuple[str, str]]:
    return {(m.upper(), p) for p, item in doc["paths"].items() for m in item if m in METHODS}


def _routes(routes, prefix: str = "") -> set[tuple[str, str]]:
    """Every (method, path) the app routes, through included routers (FastAPI flattens them lazily)."""
    found = set()
    for ctx in iter_route_contexts(routes):
        route = ctx.original_route
        if isinstance(route, APIRoute) and route.include_in_schema:
            found |= {(m, prefix + ctx.path_format) for m in ctx.methods or () if m != "HEAD"}
    return found


def test_documents_are_public_and_valid(client: TestClient) -> None:
    for url in ("/openapi.json", "/v2/openapi.json"):
        r = client.get(url)  # no X-Auth-Token
        assert r.status_code == 200, (url, r.text)
        doc = r.json()
        validate(doc)
        assert doc["openapi"].startswith("3.")


def test_every_route_is_described(client: TestClient) -> None:
    app = client.app
    v1 = client.get("/openapi.json").json()
    v2 = client.get("/v2/openapi.json").json()
    assert len(_operations(v1)) > 20
    assert _operations(v1) == _routes(app.routes)
    manila = openapi.manila_app(app)
    assert any(isinstance(r, Mount) and r.path == "/v2" for r in app.routes)
    assert _operations(v2) == _routes(manila.routes, "/v2")
    assert all(p.startswith("/v2/") for p in v2["paths"])


def test_no_422_and_errors_in_each_apis_shape(client: TestClient) -> None:
    for url, error in (("/openapi.json", "MagnumError"), ("/v2/openapi.json", "ManilaFault")):
        doc = client.get(url).json()
        assert "HTTPValidationError" not in doc["components"]["schemas"]
        for path, item in doc["paths"].items():
            for method, op in item.items():
                assert "422" not in op["responses"], (method, path)
                if path in openapi.PUBLIC_PATHS:
                    continue
                assert {"400", "401"} <= set(op["responses"]), (method, path)
                for code, response in op["responses"].items():
                    if code.startswith("4"):
                        ref = response["content"]["application/json"]["schema"]["$ref"]
                        assert ref == f"#/components/schemas/{error}", (method, path, code)
                if "{" in path:
                    assert "404" in op["responses"], (method, path)
                if method in ("post", "put", "patch"):
                    assert "413" in op["responses"], (method, path)


def test_success_codes_are_the_real_ones(client: TestClient) -> None:
    v1 = client.get("/openapi.json").json()["paths"]
    v2 = client.get("/v2/openapi.json").json()["paths"]
    assert set(v1["/v1/clusters"]["post"]["responses"]) & {"200", "201", "202"} == {"202"}
    assert "204" in v1["/v1/clusters/{ident}"]["delete"]["responses"]
    assert "204" in v1["/v1/clustertemplates/{ident}"]["delete"]["responses"]
    assert "201" in v1["/v1/clustertemplates"]["post"]["responses"]
    assert "202" in v2["/v2/shares"]["post"]["responses"]
    assert "content" not in v2["/v2/shares/{ident}"]["delete"]["responses"]["202"]
    assert {"200", "202"} <= set(v2["/v2/shares/{ident}/action"]["post"]["responses"])


def test_error_bodies_match_the_documented_shapes(client: TestClient, env) -> None:
    """The documented error schemas are the shapes floe really answers (checked on a real 404 of each API)."""
    from jsonschema import validate as validate_json

    v1 = client.get("/v1/clusters/nope", headers=env.headers())
    v2 = client.get("/v2/shares/nope", headers=env.headers())
    assert (v1.status_code, v2.status_code) == (404, 404)
    validate_json(v1.json(), MAGNUM_ERRORS.schema)
    validate_json(v2.json(), MANILA_FAULTS.schema)


def test_manila_bodies_are_described(client: TestClient) -> None:
    """The Manila routes read raw bodies; the document still says what they take."""
    v2 = client.get("/v2/openapi.json").json()["paths"]
    create = v2["/v2/shares"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert create["properties"]["share"]["required"] == ["share_proto", "size"]
    action = v2["/v2/shares/{ident}/action"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {next(iter(a["properties"])) for a in action["oneOf"]} >= {"allow_access", "deny_access", "extend"}
    names = {p["name"] for p in v2["/v2/shares"]["get"]["parameters"]}
    assert {"limit", "offset", "name", "status"} <= names
