"""Settings for the floe server, read from the environment (FLOE_*) with embedded defaults."""

from __future__ import annotations

import ipaddress
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("floe.config")

HOME_MODE = 0o700
SECRET_MODE = 0o600
# Files in the home that hold secrets: the database (every cluster CA's private key) with
# SQLite's companions, and the admin token. Nodes' TLS keys are written 0600 by the provider.
SECRET_FILES = ("floe.db", "floe.db-wal", "floe.db-shm", "floe.db-journal", "admin-token")


class HomeError(RuntimeError):
    """FLOE_HOME cannot be made private to floe's user: floe refuses to run there."""


def secure_file(path: Path, mode: int = SECRET_MODE) -> None:
    """Give an existing file exactly `mode`; absent is fine."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if stat.S_IMODE(st.st_mode) != mode:
        try:
            os.chmod(path, mode)
        except OSError as exc:
            raise HomeError(
                f"{path} has mode {stat.S_IMODE(st.st_mode):04o} and cannot be made {mode:04o}: {exc}"
            ) from None


def secure_home(home: Path) -> Path:
    """Make floe's home private whatever the umask: the directory 0700, its secret files 0600.

    A home made beforehand (an admin's /srv/floe at 0755) is tightened; one that cannot be,
    or that belongs to another user (who could loosen it again), is refused with HomeError.
    """
    home = Path(home)
    try:
        home.mkdir(parents=True, exist_ok=True, mode=HOME_MODE)
        st = home.stat()
    except OSError as exc:
        raise HomeError(f"cannot create FLOE_HOME {home}: {exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise HomeError(f"FLOE_HOME {home} is not a directory")
    if st.st_uid != os.geteuid():
        raise HomeError(
            f"FLOE_HOME {home} belongs to uid {st.st_uid}, not to uid {os.geteuid()} that floe runs as: "
            "its owner could read every cluster's CA key there (chown it, or choose another FLOE_HOME)"
        )
    old = stat.S_IMODE(st.st_mode)
    if old != HOME_MODE:
        try:
            os.chmod(home, HOME_MODE)
        except OSError as exc:
            raise HomeError(
                f"FLOE_HOME {home} has mode {old:04o} (other users may read floe's keys) and cannot be made "
                f"{HOME_MODE:04o}: {exc}"
            ) from None
        log.warning("FLOE_HOME %s had mode %04o: made it %04o", home, old, HOME_MODE)
    for name in SECRET_FILES:
        secure_file(home / name)
    return home


def _default_home() -> Path:
    return Path(os.environ.get("FLOE_HOME") or Path.home() / ".local/share/floe")


PROVIDERS = ("local", "simulated")
# Every share backend floe has, and those a server offers unless FLOE_SHARE_TYPES says
# otherwise (in the order the API lists them; the first is the `default` share type).
SHARE_TYPES = ("local", "glusterfs", "simulated")
DEFAULT_SHARE_TYPES = ("local", "glusterfs")


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
    # The largest request body the API reads (413 beyond); image uploads have their own bound.
    max_body_bytes: int = 1 << 20
    max_image_bytes: int = 8 << 30
    # The share types (backends) this server offers, in the order the API lists them; the first
    # is the default. `simulated` (no root, no mounts) is for testing the share engine at scale.
    share_types: tuple[str, ...] = DEFAULT_SHARE_TYPES

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
        if env.get("FLOE_MAX_BODY_BYTES"):
            values["max_body_bytes"] = int(env["FLOE_MAX_BODY_BYTES"])
        if env.get("FLOE_MAX_IMAGE_BYTES"):
            values["max_image_bytes"] = int(env["FLOE_MAX_IMAGE_BYTES"])
        if env.get("FLOE_SHARE_TYPES"):
            values["share_types"] = tuple(n.strip() for n in env["FLOE_SHARE_TYPES"].split(",") if n.strip())
        values.update(overrides)
        settings = cls(**values)
        unknown = [n for n in settings.share_types if n not in SHARE_TYPES]
        if unknown or not settings.share_types or len(set(settings.share_types)) != len(settings.share_types):
            raise ValueError(f"FLOE_SHARE_TYPES {','.join(settings.share_types)!r} is not a list of distinct share "
                             f"types from: {', '.join(SHARE_TYPES)}")
        if settings.provider not in PROVIDERS:
            raise ValueError(f"FLOE_PROVIDER {settings.provider!r} is unknown: use one of {', '.join(PROVIDERS)}")
        net = settings.network
        if net.prefixlen > 16:
            raise ValueError(f"FLOE_ADDRESS_RANGE {settings.address_range} is too small: use a /16 or larger")
        return settings
