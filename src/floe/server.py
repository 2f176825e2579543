"""`floe server`: the API and the background engine in one process, with embedded defaults."""

from __future__ import annotations

import logging
import os
import sys

from floe.config import HomeError, Settings, secure_home
from floe.db.session import Database
from floe.runtime import Runtime

log = logging.getLogger("floe.server")


def local_provider(settings: Settings):
    from floe.ipam import infra_subnet
    from floe.providers.local.provider import LocalProvider

    return LocalProvider(
        settings.home, str(infra_subnet(settings.network)), settings.registry_port, node_policy=settings.node_policy,
        nvidia_smi=settings.nvidia_smi, gpu_device_dir=settings.gpu_device_dir,
    )


def simulated_provider(settings: Settings):
    from floe.ipam import infra_subnet
    from floe.providers.simulated import SimulatedProvider

    return SimulatedProvider(
        settings.home, str(infra_subnet(settings.network)), settings.registry_port, settings.sim_boot_delay
    )


def make_provider(settings: Settings):
    """The infra provider FLOE_PROVIDER names (local by default)."""
    return simulated_provider(settings) if settings.provider == "simulated" else local_provider(settings)


def engine_drivers(settings: Settings) -> dict:
    """The engine's COE drivers by COE name: Swarm and Slurm on real nodes, the simulated driver on simulated ones."""
    if settings.provider == "simulated":
        from floe.coe.simulated import simulated_drivers

        return simulated_drivers(settings.sim_coe_delay)
    from floe.coe.slurm.driver import SlurmDriver
    from floe.coe.swarm.driver import SwarmDriver

    drivers: dict = {}
    for driver in (SwarmDriver(), SlurmDriver()):
        drivers.update({name: driver for name in driver.coe_names})
    return drivers


def build_runtime(settings: Settings, provider=None, *, engine: bool = True) -> Runtime:
    """Open the database (migrating it), reserve floe's infra addresses, wire provider and engine."""
    from floe import ipam
    from floe.engine.engine import Engine

    secure_home(settings.home)  # HomeError if it cannot be made private
    db = Database(settings.db_url)
    db.migrate()
    with db.session() as s:
        ipam.ensure_infra(s, settings.network)
    runtime = Runtime(settings=settings, db=db, provider=provider)
    if engine:
        runtime.engine = Engine(runtime, engine_drivers(settings))
    return runtime


def start_registry_realm(runtime: Runtime, *, ensure: bool = True):
    """Serve the registry's token realm where the provider's registry sends its clients, and (with
    `ensure`) make sure the registry runs with the shipped images, both in the background.

    Returns the realm's uvicorn server (None without a registry); `should_exit` stops it."""
    import socket
    import threading

    import uvicorn

    from floe.api.registry import token_app
    from floe.providers.base import ProviderWithImageImport

    provider = runtime.provider
    if not isinstance(provider, ProviderWithImageImport) or provider.registry_token_endpoint() is None:
        return None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # The infra address may not exist yet (the provider adds it with the registry): bind anyway.
    sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_FREEBIND", 15), 1)
    try:
        sock.bind(provider.registry_token_endpoint())
    except OSError as exc:  # nodes then cannot pull; everything else works, so say so and go on
        log.error("cannot serve the registry's token realm on %s: %s", provider.registry_token_endpoint(), exc)
        sock.close()
        return None
    realm = uvicorn.Server(uvicorn.Config(token_app(runtime), log_level="warning"))
    threading.Thread(target=realm.run, kwargs={"sockets": [sock]}, name="registry-realm", daemon=True).start()

    def start_registry() -> None:
        try:
            provider.ensure_registry()
        except Exception:  # the registry step retries; a server without images still serves
            log.exception("could not start the image registry")

    if ensure:
        threading.Thread(target=start_registry, name="registry-start", daemon=True).start()
    return realm


def monitoring_stack(settings: Settings | None = None):
    """floe's Prometheus and Alertmanager for these settings (`floe monitoring`, FLOE_MONITORING=1)."""
    from floe.monitoring.stack import MonitoringStack

    return MonitoringStack(settings or Settings.from_env())


def start_monitoring(settings: Settings):
    """With FLOE_MONITORING=1: bring the monitoring stack up in the background (the API does not
    wait for it; a failure is logged, the server serves on). Returns (stack, thread)."""
    import threading

    stack = monitoring_stack(settings)

    def up() -> None:
        try:
            for daemon in stack.up():
                log.info("monitoring: %s at %s (pid %s)", daemon.name, daemon.url, daemon.pid)
        except Exception:  # noqa: BLE001 - monitoring must not take the API down
            log.exception("could not start the monitoring stack (FLOE_MONITORING=1)")

    thread = threading.Thread(target=up, name="monitoring-up", daemon=True)
    thread.start()
    return stack, thread


# Open streams (events, followed logs) never end by themselves: a shutdown waits this long for
# them, then closes them.
SHUTDOWN_GRACE_SECONDS = 3


def exit_cleanly_on_sigterm() -> None:
    """uvicorn re-raises SIGTERM once it has shut down; its default action would end the process
    before `serve`'s `finally` runs (the engine, the health round and the monitoring stack stop
    there). As SystemExit(0) it unwinds through it."""
    import signal

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))


def serve(settings: Settings | None = None) -> None:
    import uvicorn

    from floe import web
    from floe.api.app import create_app
    from floe.engine import share_work
    from floe.monitoring.health import HealthMonitor
    from floe.services.identity import bootstrap_admin

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = settings or Settings.from_env()
    except ValueError as exc:  # a FLOE_* variable out of its range: say which, and stop
        sys.exit(f"error: {exc}")
    if os.geteuid() != 0 and settings.provider == "local":
        sys.exit("error: floe server needs root: it creates network namespaces, bridges, iptables rules "
                 "and mounts, and starts a dockerd per node (run it with sudo)")
    try:
        secure_home(settings.home)
    except HomeError as exc:
        sys.exit(f"error: {exc}")
    provider = make_provider(settings)
    provider.check()
    runtime = build_runtime(settings, provider)
    if bootstrap_admin(runtime.db, settings.admin_token_file, settings.admin_password_file):
        log.info("admin token written to %s (readable only by its owner)", settings.admin_token_file)
    from floe.services.maintenance import recover_clusters

    recovering = recover_clusters(runtime)
    if recovering:
        log.info("repairing clusters whose nodes are not running: %s", ", ".join(recovering))
    engine = runtime.engine
    # Everything in the background is work of the one engine: cluster operations (built in),
    # share work with its start-up reconcile and audit, and the health round.
    share_work.register(engine.runner, runtime)
    health = HealthMonitor(runtime, engine.drivers)
    engine.every(settings.health_interval, "health round", health.check_all)
    from floe.services import events

    engine.every(3600, "events prune", lambda: events.prune(runtime.db, settings.event_retention_days))
    engine.start()
    start_registry_realm(runtime)
    monitoring = start_monitoring(settings) if settings.monitoring else None
    exit_cleanly_on_sigterm()
    try:
        app = create_app(runtime)
        web.install(app)  # the dashboard at /dashboard/ (a browser's GET / goes there)
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="info",
                    timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS)
    finally:
        engine.stop(wait=False)
        health.stop()
        if monitoring is not None:  # the stack started with the server stops with it
            stack, starting = monitoring
            starting.join(timeout=60)
            stack.down()
        runtime.db.dispose()
