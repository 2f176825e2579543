"""Node logs through the real API (/v1/floe/clusters/{ident}/logs) on a real SQLite database.

The simulated provider's nodes are rows in memory and have no daemons, hence no logs: with it
(and with no provider) these tests cover what is decided before any log is read (tenancy,
validation, the capability). The local provider's log lookup needs no root, only its node
directories: the tests below give it real files where its nodes keep them and read them back
through the API, tail and follow (a real uvicorn for the stream). Reading a node's journal needs
a running journald: tests/e2e/test_cluster_logs.py does that on real nodes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from floe.providers.local.provider import LocalProvider
from floe.providers.simulated.provider import SimulatedProvider

from .conftest import Env, Live, assert_error


def _cluster(env: Env, client: TestClient, name: str, workers: int = 2, token: str | None = None) -> str:
    headers = env.headers(token)
    resp = client.post("/v1/clustertemplates", json={"coe": "swarm", "name": f"tpl-{name}"}, headers=headers)
    assert resp.status_code == 201, resp.text
    resp = client.post("/v1/clusters", json={"cluster_template_id": f"tpl-{name}", "name": name,
                                             "node_count": workers}, headers=headers)
    assert resp.status_code == 202, resp.text
    uuid = resp.json()["uuid"]
    env.add_nodes(uuid, 1, workers)
    env.finish_create(uuid)
    return uuid


def _local(env: Env, home: Path) -> LocalProvider:
    provider = LocalProvider(home, "10.250.0.0/24")
    env.runtime.provider = provider  # type: ignore[assignment]
    return provider


def _node_dir(env: Env, provider: LocalProvider, cluster: str, node: str) -> Path:
    directory = provider.nodes_dir / env.cluster(cluster).host_tag / node
    assert len(os.fsencode(directory / "docker.sock")) < 100  # its full name, not a shortened one
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_refusals_before_any_log_is_read(env: Env, client: TestClient, tmp_path: Path):
    uuid = _cluster(env, client, "c1")
    other = env.new_project("other")
    # Another project's cluster does not exist for the caller, by name or uuid.
    for ident in ("c1", uuid):
        assert_error(client.get(f"/v1/floe/clusters/{ident}/logs", headers=env.headers(other)), 404, ident)
    assert_error(client.get("/v1/floe/clusters/nope/logs"), 404, "nope")
    assert_error(client.get("/v1/floe/clusters/c1/logs?node=c1-x9"), 400, "no node 'c1-x9'", "c1-m0, c1-w0, c1-w1")
    assert_error(client.get("/v1/floe/clusters/c1/logs?daemon=Docker%20d"), 400, "invalid daemon name")
    for tail in ("-1", "10001", "ten"):
        assert_error(client.get(f"/v1/floe/clusters/c1/logs?tail={tail}"), 400, "tail")
    assert_error(client.get("/v1/floe/clusters/c1/logs?follow=maybe"), 400, "follow")
    # No provider, or the simulated one: nodes without daemons, so no logs (409, not a 500).
    assert_error(client.get("/v1/floe/clusters/c1/logs"), 409, "keeps no node logs")
    env.runtime.provider = SimulatedProvider(tmp_path / "sim", "10.170.0.0/24")  # type: ignore[assignment]
    assert_error(client.get("/v1/floe/clusters/c1/logs?node=c1-w0"), 409, "(simulated) keeps no node logs")


def test_tail_of_one_node_and_of_every_node(env: Env, client: TestClient, tmp_path: Path):
    _cluster(env, client, "c2")
    provider = _local(env, tmp_path / "h")
    for node in ("c2-m0", "c2-w0", "c2-w1"):
        (_node_dir(env, provider, "c2", node) / "dockerd.log").write_text(
            "".join(f"{node} line {i}\n" for i in range(300)))
    resp = client.get("/v1/floe/clusters/c2/logs?node=c2-w0&tail=3")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    assert resp.text == "c2-w0 line 297\nc2-w0 line 298\nc2-w0 line 299\n"
    assert len(client.get("/v1/floe/clusters/c2/logs?node=c2-w0").text.splitlines()) == 100  # the default tail
    assert client.get("/v1/floe/clusters/c2/logs?node=c2-w0&tail=0").text == ""
    # Every node's, managers first, each line prefixed with its node.
    lines = client.get("/v1/floe/clusters/c2/logs?tail=1").text.splitlines()
    assert lines == ["c2-m0 | c2-m0 line 299", "c2-w0 | c2-w0 line 299", "c2-w1 | c2-w1 line 299"]
    # No journal on these nodes (no journald ran): the error says which logs they have.
    assert_error(client.get("/v1/floe/clusters/c2/logs?node=c2-m0&daemon=journald"), 400,
                 "node c2-m0 has no journald log", "dockerd")


def test_a_long_log_is_read_from_its_end(env: Env, client: TestClient, tmp_path: Path):
    _cluster(env, client, "big", workers=0)
    provider = _local(env, tmp_path / "h")
    log = _node_dir(env, provider, "big", "big-m0") / "dockerd.log"
    log.write_text("".join(f"{i:08d} {'x' * 100}\n" for i in range(60_000)))  # ~6.5 MB
    lines = client.get("/v1/floe/clusters/big/logs?node=big-m0&tail=10000").text.splitlines()
    assert len(lines) == 10_000 and lines[0].startswith("00050000 ") and lines[-1].startswith("00059999 ")
    log.write_text("no newline at the end")
    assert client.get("/v1/floe/clusters/big/logs?node=big-m0&tail=5").text == "no newline at the end\n"


def test_coe_daemons_and_cluster_daemons(env: Env, client: TestClient, tmp_path: Path):
    _cluster(env, client, "s1")
    provider = _local(env, tmp_path / "h")
    tag = env.cluster("s1").host_tag
    files = provider.cluster_files_dir(tag)
    (files / "log").mkdir()
    for node in ("s1-m0", "s1-w0", "s1-w1"):
        directory = _node_dir(env, provider, "s1", node)
        (directory / "dockerd.log").write_text("dockerd\n")
        (directory / "daemons").mkdir()
        daemon = "slurmctld" if node == "s1-m0" else "slurmd"
        (directory / "daemons" / f"{daemon}.log").write_text(f"{daemon} output on {node}\n")
        if daemon == "slurmd":  # slurmd keeps its own log in the cluster's files (SlurmdLogFile)
            (files / "log" / f"slurmd-{node}.log").write_text(f"slurmd log of {node}\n")
    (files / "munged.log").write_text("munged started\n")
    assert client.get("/v1/floe/clusters/s1/logs?node=s1-w1&daemon=slurmd").text == "slurmd log of s1-w1\n"
    assert client.get("/v1/floe/clusters/s1/logs?daemon=slurmd").text == (
        "s1-w0 | slurmd log of s1-w0\ns1-w1 | slurmd log of s1-w1\n")
    assert client.get("/v1/floe/clusters/s1/logs?daemon=slurmctld").text == "s1-m0 | slurmctld output on s1-m0\n"
    # The cluster's munged runs once, on the host: its log once, though every node lists it.
    assert client.get("/v1/floe/clusters/s1/logs?daemon=munged").text == "s1-m0 | munged started\n"
    assert client.get("/v1/floe/clusters/s1/logs?node=s1-w0&daemon=munged").text == "munged started\n"
    assert_error(client.get("/v1/floe/clusters/s1/logs?node=s1-w0&daemon=slurmctld"), 400,
                 "node s1-w0 has no slurmctld log", "dockerd, munged, slurmd")
    assert_error(client.get("/v1/floe/clusters/s1/logs?daemon=mariadbd"), 400, "cluster s1 has no mariadbd log")


def _open_fds_to(path: Path) -> int:
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            if os.readlink(fd) == str(path):
                count += 1
        except OSError:
            continue
    return count


def _read_until(lines, want: int, timeout: float = 10.0) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + timeout
    for line in lines:
        got.append(line)
        if len(got) >= want or time.monotonic() > deadline:
            break
    return got


def test_follow_streams_new_lines_until_the_client_goes(live: Live, tmp_path: Path):
    env = live.env
    with TestClient(env.app, raise_server_exceptions=False, headers=env.headers()) as client:
        _cluster(env, client, "f1", workers=1)
    provider = _local(env, tmp_path / "h")
    logs = {}
    for node in ("f1-m0", "f1-w0"):
        logs[node] = _node_dir(env, provider, "f1", node) / "dockerd.log"
        logs[node].write_text(f"{node} old 1\n{node} old 2\n")
    url = f"{live.url}/v1/floe/clusters/f1/logs"
    with httpx.Client(headers=env.headers(), timeout=httpx.Timeout(10, read=10)) as http:
        with http.stream("GET", url, params={"node": "f1-w0", "tail": 1, "follow": "true"}) as resp:
            assert resp.status_code == 200
            lines = resp.iter_lines()
            assert _read_until(lines, 1) == ["f1-w0 old 2"]
            with logs["f1-w0"].open("a") as f:
                f.write("f1-w0 new 1\nf1-w0 new")  # the second line is not complete yet
                f.flush()
                assert _read_until(lines, 1) == ["f1-w0 new 1"]
                f.write(" 2\n")
            assert _read_until(lines, 1) == ["f1-w0 new 2"]
            # A log replaced by a new file (rotated) is followed from the new file's start.
            logs["f1-w0"].rename(logs["f1-w0"].with_suffix(".old"))
            logs["f1-w0"].write_text("f1-w0 rotated\n")
            assert _read_until(lines, 1) == ["f1-w0 rotated"]
        # Every node's: each line prefixed; a line appended to one node's log arrives.
        with http.stream("GET", url, params={"tail": 0, "follow": "1"}) as resp:
            assert resp.status_code == 200
            lines = resp.iter_lines()
            time.sleep(0.5)  # the followers opened the files
            with logs["f1-m0"].open("a") as f:
                f.write("f1-m0 fresh\n")
            assert _read_until(lines, 1) == ["f1-m0 | f1-m0 fresh"]
    # The client went: the server's followers closed the files (nothing held per gone client).
    deadline = time.monotonic() + 10
    while any(_open_fds_to(p) for p in logs.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_open_fds_to(p) for p in logs.values())
    # A refused follow is an error, not a stream.
    with httpx.Client(headers=env.headers(), timeout=10) as http:
        resp = http.get(url, params={"node": "f1-x", "follow": "true"})
        assert resp.status_code == 400 and "no node 'f1-x'" in resp.text


@pytest.mark.parametrize("node", ["", "x" * 65])
def test_node_parameter_bounds(env: Env, client: TestClient, node: str):
    _cluster(env, client, "b1", workers=0)
    assert_error(client.get("/v1/floe/clusters/b1/logs", params={"node": node}), 400)
