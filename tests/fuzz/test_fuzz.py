"""Property-based fuzzing of every API floe serves, from its own OpenAPI documents (schemathesis).

Against a real `floe server` on the simulated provider, for every operation of /v1 (Magnum
and floe's extensions) and /v2 (Manila):
- no answer is a 5xx;
- every answer conforms to the document (a documented status code, content type and body);
- a refused request (4xx) changes nothing: the server's database is the same after it.

Bounded and deterministic: FLOE_FUZZ_EXAMPLES examples per operation (default 25), from
derandomized generation, so CI sees the same requests every time; raise it to fuzz longer
by hand (FLOE_FUZZ_EXAMPLES=500 .venv/bin/pytest tests/fuzz). Path parameters (and the body
fields that name objects) are mostly replaced by the seeded objects so that requests reach
real clusters, templates and shares, not only 404s; seeds deleted by a fuzzed DELETE are
made again. Failures found here are kept as explicit tests in test_regressions.py.
"""

from __future__ import annotations

import copy
import os
import zlib
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fuzz.conftest import FuzzServer, documents, dump

EXAMPLES = int(os.environ.get("FLOE_FUZZ_EXAMPLES") or 25)
SETTLE_S = 60
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
pytestmark = pytest.mark.timeout(900)


V1_DOC, V2_DOC = documents()


def _schema(doc: dict[str, Any]):
    schema = schemathesis.openapi.from_dict(copy.deepcopy(doc))  # it resolves references in place
    schema.config.generation.update(max_examples=EXAMPLES, deterministic=True, database="none",
                                    with_security_parameters=False)
    return schema


v1 = _schema(V1_DOC)
v2 = _schema(V2_DOC)


def test_served_documents(fuzz_server: FuzzServer) -> None:
    """The server serves the documents fuzzed here (they are built at collection time, before it runs)."""
    assert httpx.get(fuzz_server.url + "/openapi.json").json() == V1_DOC
    assert httpx.get(fuzz_server.url + "/v2/openapi.json").json() == V2_DOC


def _often(value: Any) -> bool:
    """Three times in four, decided by the generated value itself (so the run stays deterministic)."""
    return zlib.crc32(repr(value).encode()) % 4 != 0


def _seed_for(path: str, name: str, server: FuzzServer) -> str | None:
    s = server.seeds
    if name == "ident":
        if path.startswith("/v1/clustertemplates"):
            return s.template
        if path.startswith(("/v1/clusters", "/v1/floe/clusters")):
            return s.cluster
        if path.startswith(("/v1/floe/shares", "/v2/shares")):
            return s.share
        if path.startswith("/v2/types"):
            return "default"
    return s.by_param.get(name)


def _aim(case: schemathesis.Case, server: FuzzServer) -> None:
    """Point most requests at the seeded objects (path parameters and the body fields naming objects)."""
    path = case.operation.path
    # Generated version headers are nearly always malformed (the pattern is lost on headers):
    # most requests get a valid one so that they reach the route.
    valid = {"OpenStack-API-Version": "container-infra latest", "X-OpenStack-Manila-API-Version": "latest"}
    for name, value in list((case.headers or {}).items()):
        if name in valid and _often(value):
            case.headers[name] = valid[name]
    for name, value in list((case.path_parameters or {}).items()):
        seed = _seed_for(path, name, server)
        if seed and _often(value):
            case.path_parameters[name] = seed
    body = case.body
    if not isinstance(body, dict):
        return
    s = server.seeds
    targets = {("/v1/clusters", "cluster_template_id"): s.template, ("/v1/certificates", "cluster_uuid"): s.cluster,
               ("/v1/floe/clusters/{ident}/shares", "share"): s.share}
    for (where, key), seed in targets.items():
        if path == where and key in body and _often(body[key]):
            body[key] = seed
    for action in ("allow_access", "os-allow_access"):
        args = body.get(action)
        if isinstance(args, dict) and "access_to" in args and _often(args["access_to"]):
            args["access_to"] = s.cluster


# Values that broke floe (or parsers like it) before: schemathesis rarely draws them on its
# own, so one case in three gets one of them in place of one generated value.
NASTY_INT: list[Any] = [2**63, 2**64, -(2**63) - 1, 10**30, 10**10, 2**31, -1, 0, 1.5, 1e308, True, "1", "²"]
NASTY: list[Any] = [
    *NASTY_INT, None, "", "٣", "1e400", "0x10", "-" * 5000 + "1", "x" * 70000, [], {}, {"a": {"b": {"c": [1]}}},
    "\u0000", "NaN", "Infinity", "../../etc/passwd", "a\nb",
]
NASTY_QUERY = ["²", "٣", "9" * 30, "-1", "", "1.5", "0", str(2**63), "x" * 5000, "null", "a\nb"]


def _pick(digest: int, like: Any) -> Any:
    """A nasty value, an integer-ish one where the generated value was an integer."""
    pool = NASTY_INT if isinstance(like, int) and not isinstance(like, bool) else NASTY
    return pool[digest % len(pool)]


def _leaves(value: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(value, dict):
        return [path] + [leaf for k, v in value.items() for leaf in _leaves(v, (*path, k))]
    if isinstance(value, list):
        return [path] + [leaf for i, v in enumerate(value) for leaf in _leaves(v, (*path, i))]
    return [path]


def _replace(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    value[path[0]] = _replace(value[path[0]], path[1:], new)
    return value


def _minimal(case: schemathesis.Case, server: FuzzServer, tag: int) -> Any:
    """A body this operation accepts (made of the seeds), or None."""
    s = server.seeds
    bodies = {
        ("POST", "/v1/clusters"): lambda: {"name": f"fz-{tag}", "cluster_template_id": s.template},
        ("POST", "/v1/clustertemplates"): lambda: {"name": f"fzt-{tag}", "coe": "swarm"},
        ("POST", "/v1/clusters/{ident}/actions/resize"): lambda: {"node_count": 1},
        ("PATCH", "/v1/clusters/{ident}"): lambda: [{"op": "replace", "path": "/node_count", "value": 1}],
        ("PATCH", "/v1/clustertemplates/{ident}"): lambda: [{"op": "replace", "path": "/labels", "value": {}}],
        ("POST", "/v1/floe/clusters/{ident}/shares"): lambda: {"share": s.share},
        ("POST", "/v2/shares"): lambda: {"share": {"share_proto": "LOCALFS", "size": 1}},
        ("PUT", "/v2/shares/{ident}"): lambda: {"share": {"description": "fuzz"}},
        ("POST", "/v2/shares/{ident}/action"): lambda: {"extend": {"new_size": 2}},
    }
    make = bodies.get((case.method.upper(), case.operation.path))
    return make() if make else None


def _nasty(case: schemathesis.Case, server: FuzzServer) -> None:
    """One case in three gets one nasty value (chosen by the case's own content, so deterministic):
    in the query, in the generated body, or in one generated field grafted onto a body that is
    otherwise valid (so the value reaches the code past the first validation)."""
    digest = zlib.crc32(repr((case.operation.label, case.body, case.query, case.path_parameters)).encode())
    if digest % 3:
        return
    digest //= 3
    if case.query and digest % 2:
        key = sorted(case.query)[digest % len(case.query)]
        case.query[key] = NASTY_QUERY[digest % len(NASTY_QUERY)]
        return
    base = _minimal(case, server, digest % 10**6)
    generated = case.body
    if base is not None:
        if isinstance(base, list):  # a JSON patch: a generated path, or the minimal one, gets the value
            ops = generated if isinstance(generated, list) else []
            paths = [op["path"] for op in ops if isinstance(op, dict) and isinstance(op.get("path"), str)]
            base[0].update(path=paths[0] if paths and digest % 2 else base[0]["path"], value=_pick(digest, 1))
        else:
            inner = base["share"] if isinstance(base.get("share"), dict) else base
            source = generated.get("share") if isinstance(generated, dict) and inner is not base else generated
            if not isinstance(source, dict) or not source:
                source = inner
            key = sorted(source, key=str)[digest % len(source)]
            inner[key] = _pick(digest, source[key])
        case.body = base
    elif isinstance(generated, (dict, list)):
        leaves = _leaves(generated)
        case.body = _replace(generated, leaves[digest % len(leaves)], NASTY[digest % len(NASTY)])


def _streams(case: schemathesis.Case) -> bool:
    """Whether the request asks for an answer that never ends by itself (events, followed logs)."""
    key = (case.method.upper(), case.operation.path)
    follow = str((case.query or {}).get("follow", "")).lower() in ("true", "1", "yes", "on")
    return key == ("GET", "/v1/floe/events") or (key == ("GET", "/v1/floe/clusters/{ident}/logs") and follow)


def _run(case: schemathesis.Case, server: FuzzServer) -> None:
    server.check_alive()
    # One request must never wedge the service: whatever the previous ones queued settles.
    if not server.wait_idle(SETTLE_S):
        server.wedged = f"the engine did not settle in {SETTLE_S} s after {server.last}: {server.active()}"
        server.check_alive()
    server.seed()
    _aim(case, server)
    _nasty(case, server)
    before = server.snapshot()
    server.last = f"{case.method} {case.formatted_path} {dump(case.body)[:300]}"
    if _streams(case):
        # A stream answers 200 and goes on: schemathesis reads an event stream for the request's
        # timeout and then cuts it short; a plain-text stream (followed logs) ends in a read timeout.
        try:
            response = case.call(base_url=server.url, headers={"X-Auth-Token": server.token}, timeout=2)
        except requests.exceptions.ReadTimeout:
            server.requests += 1
            return
    else:
        response = case.call(base_url=server.url, headers={"X-Auth-Token": server.token}, timeout=60)
    server.requests += 1
    server.statuses[(case.operation.label, response.status_code)] += 1
    case.validate_response(response, checks=CHECKS)
    if 400 <= response.status_code < 500:
        after = server.snapshot()
        changed = {t: (before[t], after[t]) for t in before if before[t] != after[t]}
        assert not changed, (
            f"{case.method} {case.formatted_path} was refused with {response.status_code} but changed {changed}: "
            f"body {dump(case.body)}, query {dump(case.query)}, answer {response.text[:500]}"
        )


@v1.parametrize()
def test_v1(case: schemathesis.Case, fuzz_server: FuzzServer) -> None:
    _run(case, fuzz_server)


@v2.parametrize()
def test_v2(case: schemathesis.Case, fuzz_server: FuzzServer) -> None:
    _run(case, fuzz_server)
