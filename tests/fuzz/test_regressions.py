"""Every failure the fuzzer (test_fuzz.py) ever found, as the exact request and the answer it must get.

Each runs against the same real server as the fuzzer and also checks that the refused
request changed nothing in the database.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fuzz.conftest import FuzzServer

MANILA = {"X-OpenStack-Manila-API-Version": "latest"}


def _refused(server: FuzzServer, method: str, path: str, status: int, headers: dict[str, str] | None = None,
             **kw: Any) -> dict:
    server.seed()
    assert server.wait_idle()
    before = server.snapshot()
    r = httpx.request(method, server.url + path, headers={"X-Auth-Token": server.token, **(headers or {})},
                      timeout=60, **kw)
    assert r.status_code == status, r.text
    assert server.snapshot() == before
    return r.json()


def test_newline_in_a_v2_path_gets_manilas_404(fuzz_server: FuzzServer) -> None:
    """Starlette's /v2 mount pattern stopped at a newline, so the Magnum app answered its own 404."""
    body = _refused(fuzz_server, "PUT", "/v2/shares/%17%0A%C2%93u", 404, json={"share": {}})
    assert set(body) == {"itemNotFound"}, body


@pytest.mark.parametrize("query", [
    "offset=9223372036854775808",
    "name=&limit=9223372036854775808&offset=0",
])
@pytest.mark.parametrize("path", ["/v2/shares", "/v2/shares/detail"])
def test_share_paging_beyond_sqlite_integers(fuzz_server: FuzzServer, path: str, query: str) -> None:
    """limit/offset of 2^63 reached SQLite and overflowed (500)."""
    body = _refused(fuzz_server, "GET", f"{path}?{query}", 400, headers=MANILA)
    assert set(body) == {"badRequest"}, body


def test_create_with_node_count_beyond_sqlite_integers(fuzz_server: FuzzServer) -> None:
    """node_count 2^63 overflowed SQLite's INTEGER on insert (500 with a traceback)."""
    body = _refused(fuzz_server, "POST", "/v1/clusters", 400, json={
        "name": "reg-overflow", "cluster_template_id": fuzz_server.seeds.template, "node_count": 2**63})
    assert body["errors"][0]["status"] == 400


def test_patch_node_count_beyond_capacity_is_refused(fuzz_server: FuzzServer) -> None:
    """A PATCH to node_count 2^63 was accepted (202); its plan step then held SQLite's write lock
    and wedged the server (every write "database is locked"). Last in this file: it wedges the
    shared server if it fails."""
    body = _refused(fuzz_server, "PATCH", f"/v1/clusters/{fuzz_server.seeds.cluster}", 400,
                    json=[{"op": "replace", "path": "/node_count", "value": 2**63}])
    assert body["errors"][0]["status"] == 400
