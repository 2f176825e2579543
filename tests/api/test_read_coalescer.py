"""Concurrent polls of the cluster reads while a writer changes them, over a real uvicorn server.

The read coalescer shares one answer among polls of the same read; entries of its flight
table come and go as writes bump the data version. A bookkeeping error there surfaces only
after the answer was sent (uvicorn then drops the connection), so only real concurrency
over real sockets finds it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx

from .conftest import Live

POLLERS = 8
DURATION = 4.0


def test_every_poll_succeeds_while_a_writer_changes_clusters(live: Live) -> None:
    headers = {"X-Auth-Token": live.env.admin_token}
    with httpx.Client(base_url=live.url, headers=headers, timeout=10) as setup:
        assert setup.post("/v1/clustertemplates", json={"coe": "swarm", "name": "poll-tpl"}).status_code == 201
        resp = setup.post("/v1/clusters", json={"cluster_template_id": "poll-tpl", "name": "polled"})
        assert resp.status_code == 202, resp.text
        polled = resp.json()["uuid"]

    stop = threading.Event()
    results: Counter[str] = Counter()
    failures: list[str] = []
    lock = threading.Lock()

    def poll(n: int) -> None:
        # One keep-alive connection per poller, as a polling client keeps; a dropped
        # connection shows as a transport error on this or the next request.
        paths = ["/v1/clusters", f"/v1/clusters/{polled}"]
        with httpx.Client(base_url=live.url, headers=headers, timeout=10) as c:
            i = n
            while not stop.is_set():
                path = paths[i % 2]
                i += 1
                try:
                    status = str(c.get(path).status_code)
                except httpx.TransportError as exc:
                    status = f"{type(exc).__name__}"
                with lock:
                    results[status] += 1
                    if status != "200":
                        failures.append(f"GET {path}: {status}")

    def write() -> None:
        with httpx.Client(base_url=live.url, headers=headers, timeout=10) as c:
            i = 0
            while not stop.is_set():
                i += 1
                resp = c.post("/v1/clusters", json={"cluster_template_id": "poll-tpl", "name": f"w{i}"})
                assert resp.status_code == 202, resp.text
                assert c.delete(f"/v1/clusters/w{i}").status_code == 204
                c.post("/v1/clustertemplates", json={"coe": "swarm", "name": f"wt{i}"})
                time.sleep(0.002)

    threads = [threading.Thread(target=poll, args=(n,)) for n in range(POLLERS)]
    writer = threading.Thread(target=write)
    for t in (*threads, writer):
        t.start()
    time.sleep(DURATION)
    stop.set()
    for t in (*threads, writer):
        t.join(timeout=30)
    total = sum(results.values())
    assert total > 100, results
    assert not failures, f"{len(failures)} of {total} reads failed: {results.most_common()}; first: {failures[:5]}"
