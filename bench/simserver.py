"""A real `floe server` process on the simulated provider, for the control-plane and API benchmarks.

Shared by bench/control_plane.py and bench/api_load.py: it starts the server with its own
FLOE_HOME and port on 127.0.0.1, measures its CPU time from /proc, and can give it a fresh
PostgreSQL database (created and dropped here) when a server URL is given.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

FLOE = str(Path(sys.executable).parent / "floe")
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ScratchPostgres:
    """A database of its own on a PostgreSQL server (created now, dropped by drop())."""

    def __init__(self, server_url: str):
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        self.name = f"floe_bench_{uuid.uuid4().hex[:8]}"
        self._admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
        with self._admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = make_url(server_url).set(database=self.name).render_as_string(hide_password=False)

    def drop(self) -> None:
        from sqlalchemy import text

        with self._admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self._admin.dispose()


class SimServer:
    """`floe server` with FLOE_PROVIDER=simulated; stop() ends it and removes its home."""

    def __init__(self, database_url: str = "", **env: str):
        self.home = Path(tempfile.mkdtemp(prefix="floe-sim-bench-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "FLOE_HOME": str(self.home),
            "FLOE_PORT": str(self.port),
            "FLOE_PROVIDER": "simulated",
            # Room for 1,000 clusters of 10 and a cluster of 5,000 (each node has a /23).
            "FLOE_ADDRESS_RANGE": "10.0.0.0/8",
            **env,
        }
        self.env.pop("FLOE_TOKEN", None)
        if database_url:
            self.env["FLOE_DATABASE_URL"] = database_url
        self.log = self.home / "server.log"
        self.proc = subprocess.Popen(
            [FLOE, "server"], env=self.env, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT  # noqa: SIM115
        )
        end = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"floe server exited: {self.log.read_text()[-2000:]}")
            try:
                httpx.get(self.url + "/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > end:
                    raise RuntimeError("floe server did not answer in 60 s") from None
                time.sleep(0.1)
        self.token = (self.home / "admin-token").read_text().strip()
        self.http = httpx.Client(base_url=self.url, headers={"X-Auth-Token": self.token}, timeout=120)

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far (all its threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def template(self, name: str = "sim") -> str:
        r = self.http.post("/v1/clustertemplates", json={"name": name, "coe": "swarm"})
        r.raise_for_status()
        return r.json()["uuid"]

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.home, ignore_errors=True)
