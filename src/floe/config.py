"""Settings for the floe server, read from the environment (FLOE_*) with embedded defaults."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("floe.config")

HOME_MODE = 0o700
SECRET_MODE = 0o600
# Files in the home that hold secrets: the database (every cluster CA's private key) with
# SQLite's companions, and the admin token. Nodes' TLS keys are written 0600 by the provider.
SECRET_FILES = ("floe.db", "floe.db-wal", "floe.db-shm", "floe.db-journal", "admin-token", "admin-password")


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
# What a local node's dockerd accepts: `open`, anything (a tenant can be root on the host);
# `restricted`, no privileged containers, host bind mounts outside /mnt, … (providers/local/authz.py).
NODE_POLICIES = ("open", "restricted")


UNLIMITED = -1
# A quota is -1 (unlimited) or 0 to this: Manila's largest (a 32-bit integer).
MAX_QUOTA = 2**31 - 1
# The environment variable of each per-project quota default (docs/quotas.md).
QUOTA_ENV = {
    "clusters": "FLOE_QUOTA_CLUSTERS",
    "nodes": "FLOE_QUOTA_NODES",
    "cores": "FLOE_QUOTA_CORES",
    "ram": "FLOE_QUOTA_RAM",
    "shares": "FLOE_SHARE_QUOTA_SHARES",
    "gigabytes": "FLOE_SHARE_QUOTA_GB",
}


@dataclass(frozen=True)
class QuotaDefaults:
    """What a project may use unless an admin set its own quota: -1 is unlimited.

    Clusters, their nodes, vCPUs and RAM (MiB, from flavors) are unlimited unless set, as floe
    was before quotas; shares and their gigabytes keep their earlier defaults (50 and 1000).
    """

    clusters: int = UNLIMITED
    nodes: int = UNLIMITED
    cores: int = UNLIMITED
    ram: int = UNLIMITED
    shares: int = 50
    gigabytes: int = 1000

    @classmethod
    def from_env(cls) -> QuotaDefaults:
        """The defaults with FLOE_QUOTA_* / FLOE_SHARE_QUOTA_* applied; ValueError names a bad one."""
        values: dict[str, int] = {}
        for key, var in QUOTA_ENV.items():
            text = (os.environ.get(var) or "").strip()
            if not text:
                continue
            try:
                value = int(text)
            except ValueError:
                value = None
            if value is None or not UNLIMITED <= value <= MAX_QUOTA:
                raise ValueError(f"{var} {text[:40]!r} is not a quota: use -1 (unlimited) or 0 to {MAX_QUOTA}")
            values[key] = value
        return cls(**values)


def _port_var(env, var: str) -> int:
    text = env[var].strip()
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{var} {text[:40]!r} is not a TCP port (1 to 65535)")
    return int(text)


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
    # What local nodes' dockerd refuses (NODE_POLICIES); nodes keep the policy they started with.
    node_policy: str = "open"
    # GPU discovery on the local provider (docs/flavors-local.md): the program that lists the
    # host's GPUs (`nvidia-smi -L`; absent = no GPUs) and the directory of their device nodes.
    nvidia_smi: str = "nvidia-smi"
    gpu_device_dir: str = "/dev"
    # How long a token issued by POST /identity/v3/auth/tokens lives, in seconds (Keystone's
    # [token] expiration); API tokens made by floe itself (the admin token file) do not expire.
    token_expiration: int = 4 * 3600
    # Days a client certificate (POST /v1/certificates) is valid; `floe cluster config` renews it.
    client_cert_days: int = 30
    # Per-project quota defaults, read from the environment whichever way Settings is made.
    quotas: QuotaDefaults = field(default_factory=QuotaDefaults.from_env)
    # floe's Prometheus and Alertmanager (`floe monitoring up`; FLOE_MONITORING=1 starts them with
    # the server): loopback ports, how long Prometheus keeps samples (its --storage.tsdb.retention.time)
    # and how often it scrapes (alerts wait a few scrapes before they fire).
    monitoring: bool = False
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    prometheus_retention: str = "15d"
    scrape_interval: int = 15
    # Events older than this many days are deleted (hourly).
    event_retention_days: int = 30

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
    def admin_password_file(self) -> Path:
        """The admin user's first password, when FLOE_ADMIN_PASSWORD did not give one."""
        return self.home / "admin-password"

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
        if env.get("FLOE_CLIENT_CERT_DAYS"):
            values["client_cert_days"] = int(env["FLOE_CLIENT_CERT_DAYS"])
        if env.get("FLOE_TOKEN_EXPIRATION"):
            values["token_expiration"] = int(env["FLOE_TOKEN_EXPIRATION"])
        if env.get("FLOE_NODE_POLICY"):
            values["node_policy"] = env["FLOE_NODE_POLICY"].strip()
        if env.get("FLOE_NVIDIA_SMI"):
            values["nvidia_smi"] = env["FLOE_NVIDIA_SMI"].strip()
        if env.get("FLOE_GPU_DEVICE_DIR"):
            values["gpu_device_dir"] = env["FLOE_GPU_DEVICE_DIR"].strip()
        if env.get("FLOE_MONITORING"):
            values["monitoring"] = env["FLOE_MONITORING"].strip().lower() in ("1", "true", "yes", "on")
        if env.get("FLOE_PROMETHEUS_PORT"):
            values["prometheus_port"] = _port_var(env, "FLOE_PROMETHEUS_PORT")
        if env.get("FLOE_ALERTMANAGER_PORT"):
            values["alertmanager_port"] = _port_var(env, "FLOE_ALERTMANAGER_PORT")
        if env.get("FLOE_PROMETHEUS_RETENTION"):
            values["prometheus_retention"] = env["FLOE_PROMETHEUS_RETENTION"].strip()
        if env.get("FLOE_SCRAPE_INTERVAL"):
            values["scrape_interval"] = int(env["FLOE_SCRAPE_INTERVAL"])
        if env.get("FLOE_EVENT_RETENTION_DAYS"):
            values["event_retention_days"] = int(env["FLOE_EVENT_RETENTION_DAYS"])
        if env.get("FLOE_SHARE_TYPES"):
            values["share_types"] = tuple(n.strip() for n in env["FLOE_SHARE_TYPES"].split(",") if n.strip())
        values.update(overrides)
        settings = cls(**values)
        unknown = [n for n in settings.share_types if n not in SHARE_TYPES]
        if unknown or not settings.share_types or len(set(settings.share_types)) != len(settings.share_types):
            raise ValueError(f"FLOE_SHARE_TYPES {','.join(settings.share_types)!r} is not a list of distinct share "
                             f"types from: {', '.join(SHARE_TYPES)}")
        if not 60 <= settings.token_expiration <= 30 * 86400:
            raise ValueError(f"FLOE_TOKEN_EXPIRATION {settings.token_expiration} is out of range: give seconds "
                             "from 60 to 2592000 (30 days)")
        if settings.node_policy not in NODE_POLICIES:
            raise ValueError(
                f"FLOE_NODE_POLICY {settings.node_policy!r} is unknown: use one of {', '.join(NODE_POLICIES)}"
            )
        if not os.path.isabs(settings.gpu_device_dir):
            raise ValueError(f"FLOE_GPU_DEVICE_DIR {settings.gpu_device_dir!r} must be an absolute path")
        if not settings.nvidia_smi:
            raise ValueError("FLOE_NVIDIA_SMI must name a program (a name on PATH or an absolute path)")
        if settings.provider not in PROVIDERS:
            raise ValueError(f"FLOE_PROVIDER {settings.provider!r} is unknown: use one of {', '.join(PROVIDERS)}")
        if not 1 <= settings.client_cert_days <= 3650:
            raise ValueError(f"FLOE_CLIENT_CERT_DAYS {settings.client_cert_days} must be from 1 to 3650")
        for var, port in (("FLOE_PROMETHEUS_PORT", settings.prometheus_port),
                          ("FLOE_ALERTMANAGER_PORT", settings.alertmanager_port)):
            if not 1 <= port <= 65535:
                raise ValueError(f"{var} {port} is not a TCP port (1 to 65535)")
        if settings.prometheus_port == settings.alertmanager_port:
            raise ValueError("FLOE_PROMETHEUS_PORT and FLOE_ALERTMANAGER_PORT must differ")
        if not re.fullmatch(r"([0-9]+(y|w|d|h|m|s|ms))+", settings.prometheus_retention):
            raise ValueError(f"FLOE_PROMETHEUS_RETENTION {settings.prometheus_retention!r} is not a duration "
                             "(e.g. 15d, 12h, 1w)")
        if not 1 <= settings.event_retention_days <= 36500:
            raise ValueError(f"FLOE_EVENT_RETENTION_DAYS {settings.event_retention_days} must be from 1 to 36500 days")
        if not 1 <= settings.scrape_interval <= 3600:
            raise ValueError(f"FLOE_SCRAPE_INTERVAL {settings.scrape_interval} must be from 1 to 3600 seconds")
        net = settings.network
        if net.prefixlen > 16:
            raise ValueError(f"FLOE_ADDRESS_RANGE {settings.address_range} is too small: use a /16 or larger")
        return settings
