"""Hostile and careless input: each is a 4xx in the API's error shape, logs no traceback, and
changes nothing in the database.

Run against the real app under uvicorn (`live`): a 500 there is what a client really gets.
The image-upload tests drive the app's ASGI interface directly, because only there can a test
see how much of a body the server pulled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text

from floe.api.manila.shares import MAX_PAGING
from floe.db.base import Base
from floe.providers.base import ProviderWithImageImport
from floe.services.clusters import MAX_CREATE_TIMEOUT
from floe.services.shares import MAX_SHARE_GIB
from floe.services.templates import (
    MAX_DOCKER_VOLUME_GB,
    MAX_LABEL_KEY,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    MAX_LABELS_TEXT,
)

from .conftest import Env, Live, assert_error

MANILA = {"X-OpenStack-Manila-API-Version": "2.65"}
# Strings str.isdigit() accepts: int() refuses the first and takes the other two.
UNICODE_DIGITS = ["²", "١٢", "𝟙"]
HUGE = [2**63, 10**30, -(2**63) - 1]


def rows(env: Env) -> dict[str, list]:
    """Every row of every table floe keeps."""
    with env.db.engine.connect() as conn:
        return {t.name: [tuple(r) for r in conn.execute(select(t))] for t in Base.metadata.sorted_tables}


@pytest.fixture(scope="module")
def http(live: Live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, headers={"X-Auth-Token": live.env.admin_token}, timeout=20) as c:
        resp = c.post("/v1/clustertemplates", json={"coe": "swarm", "name": "tpl"})
        assert resp.status_code == 201, resp.text
        resp = c.post("/v1/clusters", json={"cluster_template_id": "tpl", "name": "c1"})
        assert resp.status_code == 202, resp.text
        # No cluster uses `free`: every field of it may change.
        assert c.post("/v1/clustertemplates", json={"coe": "swarm", "name": "free"}).status_code == 201
        yield c


@pytest.fixture
def unchanged(live: Live, http: httpx.Client, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The database is the same after the test, and nothing was logged as an error."""
    with caplog.at_level(logging.ERROR):
        before = rows(live.env)
        yield
        assert rows(live.env) == before
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not errors, [r.getMessage() for r in errors]


def assert_fault(resp: httpx.Response, status: int, name: str, *fragments: str) -> dict:
    """`resp` is a Manila fault."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert list(body) == [name], body
    assert body[name]["code"] == status
    for fragment in fragments:
        assert fragment in body[name]["message"], body[name]["message"]
    return body[name]


def header_value(value: str) -> bytes:
    """A header as a client puts it on the wire: latin-1 where it can (uvicorn decodes headers
    as latin-1, so "²" arrives as itself), else UTF-8."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode()


def raw_json(value: object) -> bytes:
    """JSON as Python writes it, NaN and Infinity included (what a careless client sends)."""
    return json.dumps(value).encode()


# ---------------------------------------------------------------------------
# Numbers past every bound, and digits int() does not read


@pytest.mark.parametrize("value", [*HUGE, MAX_DOCKER_VOLUME_GB + 1, 0])
def test_template_docker_volume_size_out_of_range(http: httpx.Client, unchanged: None, value: int) -> None:
    resp = http.post("/v1/clustertemplates", json={"coe": "swarm", "name": "big", "docker_volume_size": value})
    assert_error(resp, 400, "docker_volume_size")
    patch = [{"op": "replace", "path": "/docker_volume_size", "value": value}]
    assert_error(http.patch("/v1/clustertemplates/free", json=patch), 400, "docker_volume_size")


@pytest.mark.parametrize(("field", "value"), [
    *[("docker_volume_size", v) for v in (*HUGE, MAX_DOCKER_VOLUME_GB + 1)],
    *[("create_timeout", v) for v in (*HUGE, 10**10, MAX_CREATE_TIMEOUT + 1, -1)],
])
def test_cluster_numbers_out_of_range(http: httpx.Client, unchanged: None, field: str, value: int) -> None:
    resp = http.post("/v1/clusters", json={"cluster_template_id": "tpl", "name": "big", field: value})
    assert_error(resp, 400, field)


def test_cluster_numbers_at_their_bounds_are_accepted(http: httpx.Client, live: Live) -> None:
    resp = http.post("/v1/clusters", json={"cluster_template_id": "tpl", "name": "edge",
                                           "docker_volume_size": MAX_DOCKER_VOLUME_GB,
                                           "create_timeout": MAX_CREATE_TIMEOUT})
    assert resp.status_code == 202, resp.text
    shown = http.get("/v1/clusters/edge").json()
    assert (shown["docker_volume_size"], shown["create_timeout"]) == (MAX_DOCKER_VOLUME_GB, MAX_CREATE_TIMEOUT)
    assert http.delete("/v1/clusters/edge").status_code == 204


@pytest.mark.parametrize("value", [*UNICODE_DIGITS, "9" * 5000, " ", "-1"])
def test_cluster_patch_node_count_unicode_digits(http: httpx.Client, unchanged: None, value: str) -> None:
    patch = [{"op": "replace", "path": "/node_count", "value": value}]
    assert_error(http.patch("/v1/clusters/c1", json=patch), 400, "node_count")


@pytest.mark.parametrize("value", [
    "1.²", "١.١٢", "𝟙.𝟙", "1." + "9" * 5000, "1.1.1", "1", "½.1",
])
def test_magnum_version_header_before_authentication(live: Live, unchanged: None, value: str) -> None:
    # No token: the header is parsed before anyone is authenticated.
    header = header_value(f"container-infra {value}")
    resp = httpx.get(live.url + "/v1/clusters", headers={"OpenStack-API-Version": header})
    assert resp.status_code in (400, 406), resp.text
    assert_error(resp, resp.status_code)


@pytest.mark.parametrize("value", ["2.²", "٢.١", "𝟚.𝟘", "2." + "9" * 5000, "2"])
def test_manila_version_header(live: Live, unchanged: None, value: str) -> None:
    resp = httpx.get(live.url + "/v2/shares", headers={"X-OpenStack-Manila-API-Version": header_value(value)})
    assert_fault(resp, 400, "badRequest", "invalid format")


@pytest.mark.parametrize("size", [*UNICODE_DIGITS, "9" * 5000, *HUGE, MAX_SHARE_GIB + 1, 1.5, True, "NaN"])
def test_share_size(http: httpx.Client, unchanged: None, size: object) -> None:
    body = {"share": {"share_proto": "LOCALFS", "size": size, "name": "s"}}
    assert_fault(http.post("/v2/shares", json=body, headers=MANILA), 400, "badRequest", "size")


@pytest.mark.parametrize("action", ["extend", "shrink"])
@pytest.mark.parametrize("size", [*UNICODE_DIGITS, 2**63])
def test_share_resize_size(http: httpx.Client, unchanged: None, action: str, size: object) -> None:
    resp = http.post("/v2/shares/nothing/action", json={action: {"new_size": size}}, headers=MANILA)
    assert_fault(resp, 400, "badRequest", "new_size")


@pytest.mark.parametrize("param", ["limit", "offset"])
@pytest.mark.parametrize("value", [*UNICODE_DIGITS, str(10**30), str(MAX_PAGING + 1), "-1", "9" * 5000])
def test_share_list_paging(http: httpx.Client, unchanged: None, param: str, value: str) -> None:
    for path in ("/v2/shares", "/v2/shares/detail"):
        resp = http.get(path, params={param: value}, headers=MANILA)
        assert_fault(resp, 400, "badRequest", param)


@pytest.mark.parametrize("value", [*UNICODE_DIGITS, "9" * 5000, "1e3", "-1", "0"])
def test_magnum_list_limit(http: httpx.Client, unchanged: None, value: str) -> None:
    for path in ("/v1/clusters", "/v1/clusters/detail", "/v1/clustertemplates"):
        assert_error(http.get(path, params={"limit": value}), 400, "imit")  # Limit or limit


def test_magnum_list_limit_past_the_maximum_is_the_maximum(http: httpx.Client) -> None:
    for path in ("/v1/clusters", "/v1/clustertemplates"):
        assert http.get(path, params={"limit": str(10**30)}).status_code == 200


def test_share_list_paging_at_the_bound(http: httpx.Client) -> None:
    resp = http.get("/v2/shares", params={"limit": MAX_PAGING, "offset": MAX_PAGING}, headers=MANILA)
    assert resp.status_code == 200 and resp.json() == {"shares": []}


# ---------------------------------------------------------------------------
# Labels


@pytest.mark.parametrize("text_value", [
    "-" * 5000 + "1",                       # RecursionError in ast.literal_eval
    "{'a': " + "-" * 5000 + "1}",
    "[" * 100_000,                          # RecursionError in json
    "{'a': " + "(" * 200 + ")" * 200 + "}",
    "{'a': __import__('os').getcwd()}",     # nothing is evaluated
    '{"a": NaN}', "{'a': float('inf')}", '{"a": Infinity}',
    "{'a': None}", "{1: 'a'}", "x" * (MAX_LABELS_TEXT + 1),
])
def test_template_labels_given_as_text(http: httpx.Client, unchanged: None, text_value: str) -> None:
    patch = [{"op": "replace", "path": "/labels", "value": text_value}]
    assert_error(http.patch("/v1/clustertemplates/free", json=patch), 400, "labels")


def test_template_labels_as_magnumclient_sends_them(http: httpx.Client) -> None:
    # python-magnumclient's `cluster template update tpl replace labels=…` sends str(dict).
    labels = {"a": "1", "quoted": "it's \"x\"", "unicode": "é"}
    patch = [{"op": "replace", "path": "/labels", "value": str(labels)}]
    resp = http.patch("/v1/clustertemplates/free", json=patch)
    assert resp.status_code == 200, resp.text
    assert resp.json()["labels"] == labels
    patch = [{"op": "replace", "path": "/labels", "value": json.dumps({"b": 2})}]
    assert http.patch("/v1/clustertemplates/free", json=patch).json()["labels"] == {"b": 2}
    assert http.patch("/v1/clustertemplates/free", json=[{"op": "remove", "path": "/labels"}]).status_code == 200


TOO_MANY = {f"k{i}": "v" for i in range(MAX_LABELS + 1)}
LONG_KEY = {"k" * (MAX_LABEL_KEY + 1): "v"}
LONG_VALUE = {"k": "v" * (MAX_LABEL_VALUE + 1)}


@pytest.mark.parametrize(("labels", "fragment"), [
    (TOO_MANY, f"at most {MAX_LABELS}"),
    (LONG_KEY, f"1-{MAX_LABEL_KEY} characters"),
    ({"": "v"}, f"1-{MAX_LABEL_KEY} characters"),
    (LONG_VALUE, f"longer than {MAX_LABEL_VALUE}"),
    ({"k": 10**(MAX_LABEL_VALUE + 1)}, f"longer than {MAX_LABEL_VALUE}"),
])
def test_label_bounds(http: httpx.Client, unchanged: None, labels: dict, fragment: str) -> None:
    resp = http.post("/v1/clustertemplates", json={"coe": "swarm", "name": "lbl", "labels": labels})
    assert_error(resp, 400, "labels", fragment)
    resp = http.post("/v1/clusters", json={"cluster_template_id": "tpl", "name": "lbl", "labels": labels})
    assert_error(resp, 400, "labels", fragment)
    patch = [{"op": "replace", "path": "/labels", "value": labels}]
    assert_error(http.patch("/v1/clustertemplates/free", json=patch), 400, "labels", fragment)


def test_labels_at_their_bounds_are_accepted(http: httpx.Client) -> None:
    labels = {f"{i:0{MAX_LABEL_KEY}d}": "v" * MAX_LABEL_VALUE for i in range(MAX_LABELS)}
    resp = http.post("/v1/clustertemplates", json={"coe": "swarm", "name": "full", "labels": labels})
    assert resp.status_code == 201, resp.text
    assert resp.json()["labels"] == labels
    assert http.delete("/v1/clustertemplates/full").status_code == 204


# ---------------------------------------------------------------------------
# NaN and Infinity


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused_everywhere(http: httpx.Client, unchanged: None, number: float) -> None:
    hdr = {"Content-Type": "application/json"}
    body = raw_json({"coe": "swarm", "name": "nan", "labels": {"a": number}})
    assert_error(http.post("/v1/clustertemplates", content=body, headers=hdr), 400, "not a number")
    body = raw_json({"cluster_template_id": "tpl", "name": "nan", "labels": {"a": number}})
    assert_error(http.post("/v1/clusters", content=body, headers=hdr), 400, "not a number")
    body = raw_json([{"op": "add", "path": "/labels/a", "value": number}])
    assert_error(http.patch("/v1/clustertemplates/free", content=body, headers=hdr), 400, "not a number")
    body = raw_json({"share": {"share_proto": "LOCALFS", "size": 1, "metadata": {"a": number}}})
    resp = http.post("/v2/shares", content=body, headers={**hdr, **MANILA})
    assert_fault(resp, 400, "badRequest", "not a number")


@pytest.mark.parametrize("number", [b"1e999", b"-1E+400", b"1" * 400 + b".0"])
def test_floats_past_the_largest_double_are_refused(http: httpx.Client, unchanged: None, number: bytes) -> None:
    # Python's json reads these as inf without calling parse_constant.
    body = b'{"coe": "swarm", "name": "inf", "labels": {"a": ' + number + b"}}"
    resp = http.post("/v1/clustertemplates", content=body, headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "not a number")


def test_large_finite_floats_are_fine(http: httpx.Client) -> None:
    body = b'{"coe": "swarm", "name": "big-float", "labels": {"a": 1e308, "b": 12345678901234567890}}'
    resp = http.post("/v1/clustertemplates", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["labels"] == {"a": 1e308, "b": 12345678901234567890}
    assert http.delete("/v1/clustertemplates/big-float").status_code == 204


def test_the_words_nan_and_infinity_in_strings_are_fine(http: httpx.Client) -> None:
    resp = http.post("/v1/clustertemplates", json={"coe": "swarm", "name": "words",
                                                   "labels": {"NaN": "Infinity", "b": "-Infinity"}})
    assert resp.status_code == 201, resp.text
    assert http.delete("/v1/clustertemplates/words").status_code == 204


# ---------------------------------------------------------------------------
# Body size


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A JSON body of `total` bytes in chunks (sent chunked: no Content-Length)."""
    yield b'{"coe": "swarm", "labels": {"a": "'
    sent = 35
    while sent < total:
        n = min(size, total - sent)
        yield b"x" * n
        sent += n
    yield b'"}}'


def test_large_bodies_are_refused_with_413(http: httpx.Client, live: Live, unchanged: None) -> None:
    limit = live.env.runtime.settings.max_body_bytes
    big = raw_json({"coe": "swarm", "name": "big", "labels": {f"k{i}": "v" * 1000 for i in range(20_000)}})
    assert len(big) > limit
    hdr = {"Content-Type": "application/json"}
    for resp in (http.post("/v1/clustertemplates", content=big, headers=hdr),
                 http.post("/v1/clustertemplates", content=_chunks(limit + 1), headers=hdr)):
        assert_error(resp, 413, f"larger than {limit} bytes")
    manila = {**hdr, **MANILA}
    for resp in (http.post("/v2/shares", content=big, headers=manila),
                 http.post("/v2/shares", content=_chunks(limit + 1), headers=manila)):
        assert_fault(resp, 413, "overLimit", f"larger than {limit} bytes")


def test_a_body_just_under_the_limit_is_read(http: httpx.Client, live: Live, unchanged: None) -> None:
    limit = live.env.runtime.settings.max_body_bytes
    resp = http.post("/v1/clustertemplates", content=_chunks(limit - 100), headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "labels")  # read and parsed: refused for the label's length, not the body's


# ---------------------------------------------------------------------------
# Image upload: the caller first, then a bounded stream to one temporary file


class _Registry(ProviderWithImageImport):
    """Stands in for the local provider's registry (which needs root and dockerd): records
    what it was given."""

    def __init__(self) -> None:
        self.archives: list[bytes] = []
        self.namespaces: list[str] = []

    def ensure_registry(self) -> None:
        pass

    def import_image_archive(self, path: Path, namespace: str) -> list[str]:
        self.archives.append(path.read_bytes())
        self.namespaces.append(namespace)
        return ["floetest/tool:1"]


def call(env: Env, token: str, chunks: list[bytes] | Iterator[bytes], content_type: str,
         length: int | str | None = None, path: str = "/v1/floe/images", query: bytes = b"") -> tuple[int, dict, int]:
    """POST `path` over the app's ASGI interface: (status, body, bytes the app pulled)."""
    pulled = 0
    source = iter(chunks)
    headers = [(b"x-auth-token", token.encode()), (b"content-type", content_type.encode()), (b"host", b"floe")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    else:
        headers.append((b"transfer-encoding", b"chunked"))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query,
             "root_path": "", "headers": headers, "server": ("floe", 80), "client": ("127.0.0.1", 1)}
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal pulled
        chunk = next(source, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(env.app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), pulled


def endless(size: int = 64 * 1024) -> Iterator[bytes]:
    while True:
        yield b"\0" * size


def tmp_files(env: Env) -> list[Path]:
    tmp = env.runtime.settings.home / "tmp"
    return list(tmp.iterdir()) if tmp.exists() else []


@pytest.mark.parametrize("path", ["/v1/clustertemplates", "/v2/shares", "/v1/floe/images"])
def test_an_absurd_content_length_is_refused_unread(env: Env, path: str) -> None:
    status, body, pulled = call(env, env.admin_token, endless(), "application/json", "9" * 5000, path)
    assert (status, pulled) == (413, 0)
    assert list(body) == (["overLimit"] if path.startswith("/v2") else ["errors"])


def test_image_upload_into_library_by_a_non_admin_reads_nothing(env: Env) -> None:
    user = env.new_project("someone")
    before = rows(env)
    for length in (100 << 20, None):
        status, body, pulled = call(env, user, endless(), "multipart/form-data; boundary=x", length,
                                    query=b"library=true")
        assert status == 403, body
        assert "only an admin" in body["errors"][0]["detail"]
        assert pulled == 0
    assert tmp_files(env) == []
    assert rows(env) == before


def test_a_member_imports_into_the_projects_namespace(env: Env) -> None:
    from floe import registry_auth
    from floe.services import identity

    registry = _Registry()
    env.runtime.provider = registry  # type: ignore[assignment]
    user = env.new_project("importer")
    status, out, _ = call(env, user, [b"x" * 100], "application/x-tar", 100)
    assert status == 200, out
    project = identity.authenticate(env.db, user).project_id
    assert registry.namespaces == [registry_auth.project_namespace(project)]
    status, out, _ = call(env, env.admin_token, [b"x" * 100], "application/x-tar", 100, query=b"library=true")
    assert status == 200 and registry.namespaces[-1] == "library"


def test_image_upload_past_its_bound_is_refused_and_leaves_no_file(env: Env) -> None:
    limit = 1 << 20
    env.runtime.settings = dataclasses.replace(env.runtime.settings, max_image_bytes=limit)
    env.runtime.provider = _Registry()  # type: ignore[assignment]
    # Declared too large: refused before a byte is read.
    status, body, pulled = call(env, env.admin_token, endless(), "application/x-tar", limit + 1)
    assert (status, pulled) == (413, 0)
    assert f"larger than {limit} bytes" in body["errors"][0]["detail"]
    # Chunked: read only until the bound is passed.
    status, body, pulled = call(env, env.admin_token, endless(), "application/x-tar")
    assert status == 413, body
    assert body["errors"][0]["status"] == 413
    assert limit < pulled <= limit + 64 * 1024
    assert tmp_files(env) == []
    assert env.runtime.provider.archives == []  # type: ignore[attr-defined]


def test_image_upload_streams_the_file_field(env: Env) -> None:
    registry = _Registry()
    env.runtime.provider = registry  # type: ignore[assignment]
    archive = bytes(range(256)) * 4096  # 1 MiB, every byte value, the boundary's bytes included
    boundary = "floeboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nignored\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.tar\"\r\n"
            "Content-Type: application/x-tar\r\n\r\n").encode() + archive + f"\r\n--{boundary}--\r\n".encode()
    chunks = [body[i:i + 7000] for i in range(0, len(body), 7000)]
    status, out, _ = call(env, env.admin_token, chunks, f"multipart/form-data; boundary={boundary}", len(body))
    assert (status, out) == (200, {"images": ["floetest/tool:1"]})
    assert registry.archives == [archive]
    status, out, _ = call(env, env.admin_token, [archive], "application/x-tar", len(archive))
    assert status == 200 and registry.archives[-1] == archive
    assert tmp_files(env) == []


@pytest.mark.parametrize(("content_type", "body", "fragment"), [
    ("multipart/form-data; boundary=b", b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b--\r\n",
     "no archive"),
    ("multipart/form-data", b"", "no boundary"),
    ("application/json", b"{}", "multipart/form-data"),
    ("multipart/form-data; boundary=b", b"--b\r\n" + b"X" * 20000 + b": v\r\n\r\n", "malformed"),
])
def test_image_upload_malformed(env: Env, content_type: str, body: bytes, fragment: str) -> None:
    env.runtime.provider = _Registry()  # type: ignore[assignment]
    status, out, _ = call(env, env.admin_token, [body], content_type, len(body))
    assert status == 400, out
    assert fragment in out["errors"][0]["detail"]
    assert tmp_files(env) == []


def test_rows_helper_sees_every_table(env: Env) -> None:
    with env.db.engine.connect() as conn:
        names = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
    assert {"clusters", "cluster_templates", "shares", "operations"} <= set(rows(env)) <= names


# ---------------------------------------------------------------------------
# Every route family, every kind of bad value: a 4xx in its API's shape, nothing changed

# (family, method, path, valid body, where a value goes: a dotted field of the body or "patch")
FAMILIES = [
    ("template create", "POST", "/v1/clustertemplates", {"coe": "swarm", "name": "fam"}, "docker_volume_size"),
    ("template patch", "PATCH", "/v1/clustertemplates/free", None, "patch:/docker_volume_size"),
    ("cluster create", "POST", "/v1/clusters", {"cluster_template_id": "tpl", "name": "fam"}, "node_count"),
    ("cluster create masters", "POST", "/v1/clusters", {"cluster_template_id": "tpl", "name": "fam"},
     "master_count"),
    ("cluster patch", "PATCH", "/v1/clusters/c1", None, "patch:/node_count"),
    ("cluster resize", "POST", "/v1/clusters/c1/actions/resize", {"node_count": 1}, "node_count"),
    ("certificate", "POST", "/v1/certificates", {"cluster_uuid": "c1", "csr": "x"}, "csr"),
    ("share create", "POST", "/v2/shares", {"share": {"share_proto": "LOCALFS", "size": 1, "name": "fam"}},
     "share.size"),
    ("share update", "PUT", "/v2/shares/nothing", {"share": {"display_name": "n"}}, "share.display_name"),
    ("share extend", "POST", "/v2/shares/nothing/action", {"extend": {"new_size": 2}}, "extend.new_size"),
    ("share attach", "POST", "/v1/floe/clusters/c1/shares", {"share": "nothing"}, "share"),
]
BAD_VALUES = {
    "huge": 2**63,
    "negative": -1,
    "non-integer": "three",
    "fraction": 1.5,
    "unicode digit": "²",
    "overlong": "x" * 70_000,
    "nested": {"a": {"b": {"c": [1, 2, {"d": None}]}}},
    "null-in-list": [None],
}


def _bad_request(valid: dict | None, where: str, value: object) -> object:
    if where.startswith("patch:"):
        return [{"op": "replace", "path": where[len("patch:"):], "value": value}]
    body = json.loads(json.dumps(valid))
    *parents, last = where.split(".")
    target = body
    for p in parents:
        target = target[p]
    target[last] = value
    return body


def _assert_refused(resp: httpx.Response, path: str) -> None:
    assert 400 <= resp.status_code < 500, (path, resp.status_code, resp.text[:300])
    body = resp.json()
    if path.startswith("/v2/"):
        (name,) = body
        assert body[name]["code"] == resp.status_code and body[name]["message"], body
    else:
        assert_error(resp, resp.status_code)


@pytest.mark.parametrize("kind", list(BAD_VALUES))
@pytest.mark.parametrize(("family", "method", "path", "valid", "where"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_every_family_refuses_every_kind_of_bad_value(
    http: httpx.Client, unchanged: None, family: str, method: str, path: str, valid: dict | None, where: str,
    kind: str,
) -> None:
    body = _bad_request(valid, where, BAD_VALUES[kind])
    resp = http.request(method, path, json=body, headers=MANILA if path.startswith("/v2/") else None)
    _assert_refused(resp, path)


@pytest.mark.parametrize(("family", "method", "path", "valid", "where"),
                         [f for f in FAMILIES if f[3] is not None], ids=[f[0] for f in FAMILIES if f[3] is not None])
def test_every_family_refuses_unknown_and_missing_fields(
    http: httpx.Client, unchanged: None, family: str, method: str, path: str, valid: dict, where: str,
) -> None:
    manila = path.startswith("/v2/")
    headers = MANILA if manila else None
    # Manila ignores keys it does not know (clients of newer microversions send more); Magnum
    # refuses them, and so does floe on /v1.
    bodies = [{}, [], "text"] if manila else [{**valid, "no_such_field": 1}, {}, [], "text"]
    for body in bodies:
        _assert_refused(http.request(method, path, json=body, headers=headers), path)


def test_a_non_finite_label_stored_by_an_older_floe_is_answered_not_a_500(env: Env, client) -> None:
    """Older floes stored NaN labels; their templates must still show (as JSON null)."""
    from floe.db.models import ClusterTemplate

    resp = client.post("/v1/clustertemplates", json={"coe": "swarm", "name": "old"})
    assert resp.status_code == 201, resp.text
    with env.db.session() as s:
        ct = s.scalars(select(ClusterTemplate).where(ClusterTemplate.name == "old")).one()
        ct.labels = {"ratio": float("nan"), "ok": "1"}
    resp = client.get("/v1/clustertemplates/old")
    assert resp.status_code == 200, resp.text
    assert resp.json()["labels"] == {"ratio": None, "ok": "1"}
    assert b"NaN" not in resp.content
