"""The events API over real HTTP: a `floe server` process on the simulated provider, its
server-sent-events stream read by httpx and by floe's client, and `--wait` woken by it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from floe.cli.wait import EventWakeups, wait_for_cluster
from floe.client import FloeAPIError, FloeClient
from tests.engine.conftest import FloeProcess

FLOE = str(Path(sys.executable).parent / "floe")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FloeProcess]:
    proc = FloeProcess(tmp_path_factory.mktemp("events") / "home", FLOE_SIM_BOOT_DELAY="0.05")
    proc.start()
    try:
        proc.template("sim")
        yield proc
    finally:
        proc.stop()


def _token(server: FloeProcess) -> str:
    return (server.home / "admin-token").read_text().strip()


def _headers(server: FloeProcess) -> dict[str, str]:
    return {"X-Auth-Token": _token(server), "OpenStack-API-Version": "container-infra latest"}


def _raw_events(server: FloeProcess, params: dict, headers: dict, until: str, out: list, ready: threading.Event):
    """Read the stream as text, the SSE fields of each message kept, until an event of kind `until`."""
    with httpx.stream("GET", server.url + "/v1/floe/events", params=params, headers={**_headers(server), **headers},
                      timeout=httpx.Timeout(30, read=60)) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        message: dict[str, str] = {}
        for line in r.iter_lines():
            if line == ": ready":
                ready.set()
            elif line == "":
                if "data" in message:
                    out.append(message)
                    if message["event"] == until:
                        return
                message = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(":")
                message[field] = value.lstrip(" ")


def test_the_stream_carries_a_create_live_and_resumes_after_an_id(server: FloeProcess) -> None:
    got: list[dict] = []
    ready = threading.Event()
    reader = threading.Thread(target=_raw_events, args=(server, {}, {},
                                                          "operation.complete", got, ready), daemon=True)
    reader.start()
    assert ready.wait(10), "the stream did not open"
    r = server.api("POST", "/v1/clusters", json={"name": "s1", "cluster_template_id": "sim", "node_count": 2})
    assert r.status_code == 202, r.text
    reader.join(60)
    assert not reader.is_alive(), got
    data = [json.loads(m["data"]) for m in got]
    # Each message: `id:` is the event's id, `event:` its kind, `data:` the event as the API shows it.
    assert [int(m["id"]) for m in got] == [d["id"] for d in data]
    assert [m["event"] for m in got] == [d["kind"] for d in data]
    assert data[0]["kind"] == "operation.queued" and data[-1]["kind"] == "operation.complete"
    assert {d["cluster_name"] for d in data} == {"s1"}
    stored = server.api("GET", "/v1/floe/clusters/s1/events", params={"limit": 1000}).json()["events"]
    assert stored == data

    # Resuming after an id (the Last-Event-ID an EventSource sends on reconnecting) gives what followed.
    again: list[dict] = []
    resume = {"Last-Event-ID": str(data[3]["id"])}
    reader = threading.Thread(target=_raw_events, args=(server, {"cluster": "s1"}, resume, "operation.complete", again,
                                                          threading.Event()), daemon=True)
    reader.start()
    reader.join(30)
    assert [json.loads(m["data"]) for m in again] == data[4:]


def test_bad_requests_to_the_stream_are_refused_before_it_starts(server: FloeProcess) -> None:
    r = server.api("GET", "/v1/floe/events", params={"cluster": "no-such-cluster"})
    assert r.status_code == 404 and "no-such-cluster" in r.json()["errors"][0]["detail"]
    r = httpx.get(server.url + "/v1/floe/events", headers={**_headers(server), "Last-Event-ID": "x' OR 1=1"},
                  timeout=10)
    assert r.status_code == 400 and "Last-Event-ID" in r.json()["errors"][0]["detail"]
    r = server.api("GET", "/v1/floe/events", params={"last_id": -1})
    assert r.status_code == 400
    r = httpx.get(server.url + "/v1/floe/events", timeout=10)
    assert r.status_code == 401
    r = server.api("GET", "/v1/floe/clusters/no-such-cluster/events")
    assert r.status_code == 404
    r = server.api("GET", "/v1/floe/clusters/s1/events", params={"limit": 0})
    assert r.status_code == 400


def test_the_client_stream_wakes_a_wait_at_each_event(server: FloeProcess) -> None:
    r = server.api("POST", "/v1/clusters", json={"name": "s2", "cluster_template_id": "sim", "node_count": 1})
    assert r.status_code == 202, r.text
    with FloeClient(server.url, _token(server)) as client:
        wait_for_cluster(client, "s2", "CREATE", Console(file=open("/dev/null", "w")))  # noqa: SIM115
        wakeups = EventWakeups(client, "s2").start()
        assert wakeups.ready.is_set() and not wakeups.failed
        client.resize("s2", 2)
        t0 = time.monotonic()
        wakeups.sleep(30)
        assert wakeups.events >= 1 and time.monotonic() - t0 < 10
        cluster = wait_for_cluster(client, "s2", "UPDATE", Console(file=open("/dev/null", "w")))  # noqa: SIM115
        assert cluster is not None and cluster["status"] == "UPDATE_COMPLETE" and cluster["node_count"] == 2
        # A stream of a cluster that does not exist fails; the wait falls back to polling.
        lost = EventWakeups(client, "never-was").start()
        assert lost.failed and lost.interval == 0.5
        with pytest.raises(FloeAPIError):
            next(iter(client.events_stream(cluster="never-was")))


def test_cli_events_and_delete_wait(server: FloeProcess) -> None:
    env = {"FLOE_URL": server.url, "FLOE_TOKEN": _token(server), "PATH": str(Path(FLOE).parent) + ":/usr/bin:/bin",
           "HOME": str(server.home), "COLUMNS": "200"}
    r = server.api("POST", "/v1/clusters", json={"name": "s3", "cluster_template_id": "sim", "node_count": 1})
    assert r.status_code == 202, r.text
    out = subprocess.run([FLOE, "cluster", "delete", "s3", "--wait"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "cluster s3 deleted" in out.stdout + out.stderr
    out = subprocess.run([FLOE, "cluster", "events", "s3", "--format", "json"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    kinds = [e["kind"] for e in json.loads(out.stdout)]
    assert kinds[-1] == "cluster.deleted" and "operation.queued" in kinds
    out = subprocess.run([FLOE, "cluster", "events", "s3"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "cluster.deleted" in out.stdout and "cluster s3 deleted" in out.stdout
    out = subprocess.run([FLOE, "cluster", "events", "nope"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "nope" in out.stderr
    out = subprocess.run([FLOE, "cluster", "events", "s3", "--limit", "0"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0


def test_cli_events_follow_prints_new_events_until_interrupted(server: FloeProcess) -> None:
    import os
    import signal

    env = {"FLOE_URL": server.url, "FLOE_TOKEN": _token(server), "PATH": str(Path(FLOE).parent) + ":/usr/bin:/bin",
           "HOME": str(server.home), "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    r = server.api("POST", "/v1/clusters", json={"name": "s4", "cluster_template_id": "sim", "node_count": 1})
    assert r.status_code == 202, r.text
    server.wait_settled()
    proc = subprocess.Popen([FLOE, "cluster", "events", "s4", "--follow", "--limit", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert "operation.complete" in first and "create complete" in first, first
        time.sleep(1.0)  # let it open the stream (anything before that is read back from the list)
        assert server.api("POST", "/v1/clusters/s4/actions/resize", json={"node_count": 2}).status_code == 202
        lines = []
        end = time.monotonic() + 60
        while time.monotonic() < end:
            line = proc.stdout.readline()
            lines.append(line)
            if "update complete" in line:
                break
        assert any("resize.requested" in x and "to 2 node(s)" in x for x in lines), lines
        assert "update complete" in lines[-1], lines
    finally:
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(30) == 130
