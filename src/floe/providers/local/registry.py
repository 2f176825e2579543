"""floe's image registry: Debian's docker-registry (distribution 2.8) on the infra address only."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from floe.host import commands, processes
from floe.providers.base import ProviderError

READY_TIMEOUT = 30.0


@dataclass(frozen=True)
class RegistryPaths:
    """Files of the registry under home/registry."""

    dir: Path

    @property
    def config(self) -> Path:
        return self.dir / "config.yml"

    @property
    def pidfile(self) -> Path:
        return self.dir / "registry.pid"

    @property
    def log(self) -> Path:
        return self.dir / "registry.log"

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def cache(self) -> Path:
        return self.dir / "cache"


@dataclass(frozen=True)
class TokenAuth:
    """distribution's token auth: where clients get tokens, and the certificate that signs them."""

    realm: str  # e.g. http://10.160.0.1:5001/registry/token
    service: str
    issuer: str
    rootcertbundle: Path


def render_config(paths: RegistryPaths, ip: str, port: int, auth: TokenAuth | None = None) -> str:
    """The registry's configuration (JSON is YAML, so no YAML library is needed)."""
    config: dict = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(paths.data)},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        # Bound to the infra address only: never reachable on the host's other interfaces.
        "http": {"addr": f"{ip}:{port}"},
    }
    if auth is not None:
        # Every request needs a token from floe's realm; what it may do is decided there.
        config["auth"] = {"token": {
            "realm": auth.realm, "service": auth.service, "issuer": auth.issuer,
            "rootcertbundle": str(auth.rootcertbundle),
        }}
    return json.dumps(config, indent=2) + "\n"


def is_registry_process(pid: int, paths: RegistryPaths) -> bool:
    """Whether `pid` is this home's registry (and not a recycled pid)."""
    argv = processes.cmdline(pid)
    return bool(argv) and os.path.basename(argv[0]) == "docker-registry" and str(paths.config) in argv


def live_pid(paths: RegistryPaths) -> int | None:
    """The pid of the running registry, from its pidfile, or None."""
    pid = processes.read_pid(paths.pidfile)
    if pid is not None and processes.running(pid) and is_registry_process(pid, paths):
        return pid
    return None


def ensure_running(paths: RegistryPaths, ip: str, port: int, auth: TokenAuth | None = None) -> int:
    """Adopt the running registry if its configuration is current; otherwise (re)start it."""
    text = render_config(paths, ip, port, auth)
    pid = live_pid(paths)
    try:
        current = paths.config.read_text()
    except OSError:
        current = None
    if pid is not None and current == text:
        return pid
    if pid is not None:  # running with another address or port: restart it
        processes.kill([pid])
        processes.wait_gone([pid])
    paths.dir.mkdir(parents=True, exist_ok=True)
    paths.data.mkdir(exist_ok=True)
    commands.write_file(paths.config, text)
    proc = processes.spawn_detached(
        [commands.binary("docker-registry"), "serve", str(paths.config)], paths.log, paths.dir
    )
    commands.write_file(paths.pidfile, f"{proc.pid}\n")
    return proc.pid


def wait_ready(client: httpx.Client, address: str, pid: int, paths: RegistryPaths) -> None:
    """Poll GET /v2/ until the registry answers (401, a token challenge, is an answer)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            if client.get(f"http://{address}/v2/").status_code in (200, 401):
                return
        except httpx.HTTPError:
            pass
        if not processes.running(pid):
            raise ProviderError(f"docker-registry exited during start:\n{commands.log_tail(paths.log)}")
        if time.monotonic() > deadline:
            raise ProviderError(
                f"docker-registry did not answer on {address}:\n{commands.log_tail(paths.log)}", temporary=True
            )
        time.sleep(0.02)


def stop(paths: RegistryPaths) -> list[str]:
    """Kill the registry process of this home, if it runs; return what was done."""
    pid = live_pid(paths)
    found = {pid} if pid is not None else set()
    # A registry started without its pidfile being written (crash) is found by its config path.
    found |= {p for p in processes.pids_referring_to(str(paths.config)) if is_registry_process(p, paths)}
    processes.kill(found)
    processes.wait_gone(found)
    return [f"registry process {p}" for p in sorted(found)]
