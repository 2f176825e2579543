"""Settings for the floe server, read from the environment (FLOE_*) with embedded defaults."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path


def _default_home() -> Path:
    return Path(os.environ.get("FLOE_HOME") or Path.home() / ".local/share/floe")


PROVIDERS = ("local", "simulated")


@dataclass(frozen=True)
class Settings:
    """Everything the server needs to know about where it keeps state and what it may use."""

    home: Path = field(default_factory=_default_home)
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 9511
    # Every address floe hands out (cluster networks, dockerd bridges, swarm pools,
    # the registry) comes from this range and nowhere else.
    address_range: str = "10.160.0.0/12"
    registry_port: int = 5000
    engine_workers: int = 16
    lease_seconds: float = 15.0
    health_interval: float = 5.0
    # Where nodes come from: "local" (namespaces + dockerd) or "simulated" (nodes that only
    # "boot" after sim_boot_delay seconds; the COE steps take sim_coe_delay), for scale tests.
    provider: str = "local"
    sim_boot_delay: float = 0.0
    sim_coe_delay: float = 0.0

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'floe.db'}"

    @property
    def nodes_dir(self) -> Path:
        return self.home / "nodes"

    @property
    def registry_dir(self) -> Path:
        return self.home / "registry"

    @property
    def admin_token_file(self) -> Path:
        return self.home / "admin-token"

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.address_range)

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        env = os.environ
        values: dict = {}
        if env.get("FLOE_HOME"):
            values["home"] = Path(env["FLOE_HOME"])
        if env.get("FLOE_DATABASE_URL"):
            values["database_url"] = env["FLOE_DATABASE_URL"]
        if env.get("FLOE_HOST"):
            values["host"] = env["FLOE_HOST"]
        if env.get("FLOE_PORT"):
            values["port"] = int(env["FLOE_PORT"])
        if env.get("FLOE_ADDRESS_RANGE"):
            values["address_range"] = env["FLOE_ADDRESS_RANGE"]
        if env.get("FLOE_REGISTRY_PORT"):
            values["registry_port"] = int(env["FLOE_REGISTRY_PORT"])
        if env.get("FLOE_ENGINE_WORKERS"):
            values["engine_workers"] = int(env["FLOE_ENGINE_WORKERS"])
        if env.get("FLOE_PROVIDER"):
            values["provider"] = env["FLOE_PROVIDER"]
        if env.get("FLOE_SIM_BOOT_DELAY"):
            values["sim_boot_delay"] = float(env["FLOE_SIM_BOOT_DELAY"])
        if env.get("FLOE_SIM_COE_DELAY"):
            values["sim_coe_delay"] = float(env["FLOE_SIM_COE_DELAY"])
        values.update(overrides)
        settings = cls(**values)
        if settings.provider not in PROVIDERS:
            raise ValueError(f"FLOE_PROVIDER {settings.provider!r} is unknown: use one of {', '.join(PROVIDERS)}")
        net = settings.network
        if net.prefixlen > 16:
            raise ValueError(f"FLOE_ADDRESS_RANGE {settings.address_range} is too small: use a /16 or larger")
        return settings
