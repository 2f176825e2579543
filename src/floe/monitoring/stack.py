"""floe's Prometheus and Alertmanager: Debian's programs as detached host daemons of a FLOE_HOME.

`MonitoringStack(settings).up()` writes the configuration (prometheus_config.py) under
`$FLOE_HOME/monitoring/`, starts what does not run and waits until both answer; a running
daemon whose command line is unchanged rereads its files (SIGHUP), one whose flags changed
(ports, retention) is restarted. Each daemon listens on loopback only, keeps its data
(`data/`, Prometheus's retention bounded by FLOE_PROMETHEUS_RETENTION) and its log in its
directory, and is tracked by a pidfile there; a pid counts as the daemon only while its
command line names that directory, so a recycled pid is never signalled.

    $FLOE_HOME/monitoring/scrape-token                 the bearer credential (access.py)
    $FLOE_HOME/monitoring/prometheus/{prometheus.yml,rules.yml,data/,prometheus.pid,prometheus.log}
    $FLOE_HOME/monitoring/alertmanager/{alertmanager.yml,data/,alertmanager.pid,alertmanager.log}
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from floe.config import HomeError, Settings, secure_home
from floe.host import commands, processes
from floe.monitoring import prometheus_config as pc
from floe.monitoring.access import scrape_token, scrape_token_path

PROMETHEUS = "prometheus"
ALERTMANAGER = "prometheus-alertmanager"
DAEMONS = ("prometheus", "alertmanager")
STOP_TIMEOUT = 15.0


class MonitoringError(RuntimeError):
    """The monitoring stack cannot be started (a program missing, a port taken, a bad file)."""


@dataclass(frozen=True)
class DaemonState:
    name: str
    url: str
    pid: int | None  # None: not running
    directory: Path

    @property
    def running(self) -> bool:
        return self.pid is not None


def _binary(name: str) -> str:
    path = commands.which(name)
    if path is None:
        raise MonitoringError(f"{name} is not installed: install Debian's prometheus and prometheus-alertmanager "
                              "(make apt)")
    return path


def monitoring_dir(home: Path) -> Path:
    return Path(home) / "monitoring"


class MonitoringStack:
    """The Prometheus and Alertmanager of one FLOE_HOME, configured from its settings."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.root = monitoring_dir(settings.home)
        self.prometheus_addr = f"127.0.0.1:{settings.prometheus_port}"
        self.alertmanager_addr = f"127.0.0.1:{settings.alertmanager_port}"

    # -- where things are ------------------------------------------------------
    def directory(self, daemon: str) -> Path:
        return self.root / daemon

    def url(self, daemon: str) -> str:
        return f"http://{self.prometheus_addr if daemon == 'prometheus' else self.alertmanager_addr}"

    def files(self) -> dict[Path, str]:
        """Every configuration file, by path, with the content the settings give it."""
        s = self.settings
        prom, am = self.directory("prometheus"), self.directory("alertmanager")
        ep = pc.Endpoints(
            floe=f"{pc.scrape_host(s.host)}:{s.port}", prometheus=self.prometheus_addr,
            alertmanager=self.alertmanager_addr, credentials_file=scrape_token_path(s.home),
            rules_file=prom / "rules.yml", scrape_interval=s.scrape_interval,
        )
        return {
            prom / "prometheus.yml": pc.dump(pc.prometheus_config(ep)),
            prom / "rules.yml": pc.dump(pc.alert_rules(s.scrape_interval)),
            am / "alertmanager.yml": pc.dump(pc.alertmanager_config(s.scrape_interval)),
        }

    def argv(self, daemon: str) -> list[str]:
        d = self.directory(daemon)
        if daemon == "prometheus":
            return [
                _binary(PROMETHEUS), f"--config.file={d / 'prometheus.yml'}",
                f"--storage.tsdb.path={d / 'data'}",
                f"--storage.tsdb.retention.time={self.settings.prometheus_retention}",
                f"--web.listen-address={self.prometheus_addr}",
                f"--web.external-url={self.url('prometheus')}/",
            ]
        return [
            _binary(ALERTMANAGER), f"--config.file={d / 'alertmanager.yml'}",
            f"--storage.path={d / 'data'}", f"--web.listen-address={self.alertmanager_addr}",
            f"--web.external-url={self.url('alertmanager')}/",
            # No gossip with other Alertmanagers: it would listen on every interface (:9094).
            "--cluster.listen-address=",
        ]

    # -- state -----------------------------------------------------------------
    def pid(self, daemon: str) -> int | None:
        """The daemon's pid if the process in its pidfile is still it (its argv names its directory)."""
        d = self.directory(daemon)
        pid = processes.read_pid(d / f"{daemon}.pid")
        if pid is None or not processes.running(pid):
            return None
        return pid if any(f"={d}/" in arg for arg in processes.cmdline(pid)) else None

    def status(self) -> list[DaemonState]:
        return [DaemonState(n, self.url(n), self.pid(n), self.directory(n)) for n in DAEMONS]

    # -- up / down -------------------------------------------------------------
    def write_files(self) -> set[Path]:
        """Write the configuration; returns the files whose content changed."""
        try:  # the home holds every cluster's CA key: private before anything is made in it
            secure_home(self.settings.home)
        except HomeError as exc:
            raise MonitoringError(str(exc)) from None
        scrape_token(self.settings.home)  # the credentials file Prometheus reads
        changed = set()
        for path, text in self.files().items():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                if path.read_text() == text:
                    continue
            except FileNotFoundError:
                pass
            commands.write_file(path, text, mode=0o600)
            changed.add(path)
        return changed

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One up or down at a time per home (a server with FLOE_MONITORING=1 and the CLI may race)."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.root / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def up(self, timeout: float = 60.0) -> list[DaemonState]:
        """Write the configuration and make both daemons run it; idempotent. MonitoringError if one fails."""
        with self._locked():
            return self._up(timeout)

    def _up(self, timeout: float) -> list[DaemonState]:
        changed = self.write_files()
        # Alertmanager first: Prometheus sends it alerts from its first evaluation.
        for daemon in ("alertmanager", "prometheus"):
            pid = self.pid(daemon)
            if pid is not None and processes.cmdline(pid) != self.argv(daemon):
                self._stop(daemon, pid)  # flags changed: only a restart applies them
                pid = None
            if pid is None:
                self._start(daemon)
            elif any(p.parent == self.directory(daemon) for p in changed):
                os.kill(pid, signal.SIGHUP)  # reread its files
        for daemon in ("alertmanager", "prometheus"):
            self._wait_ready(daemon, timeout)
        return self.status()

    def down(self) -> list[str]:
        """Stop both daemons (by their pidfiles); returns what was stopped. Their data stays."""
        if not self.root.is_dir():
            return []
        with self._locked():
            return self._down()

    def _down(self) -> list[str]:
        stopped = []
        for daemon in DAEMONS:
            pid = self.pid(daemon)
            if pid is not None:
                self._stop(daemon, pid)
                stopped.append(f"{daemon} (pid {pid})")
        return stopped

    def _start(self, daemon: str) -> None:
        d = self.directory(daemon)
        (d / "data").mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            proc = processes.spawn_detached(self.argv(daemon), d / f"{daemon}.log", d)
        except OSError as exc:
            raise MonitoringError(f"cannot start {daemon}: {exc}") from None
        commands.write_file(d / f"{daemon}.pid", f"{proc.pid}\n")

    def _stop(self, daemon: str, pid: int) -> None:
        processes.terminate([pid], STOP_TIMEOUT)
        (self.directory(daemon) / f"{daemon}.pid").unlink(missing_ok=True)

    def _wait_ready(self, daemon: str, timeout: float) -> None:
        """Until the daemon answers `/-/ready`; MonitoringError (with its log) if it exits or never does."""
        d = self.directory(daemon)
        end = time.monotonic() + timeout
        while True:
            # The pidfile's process, not pid(): until it has exec'd its command line is ours.
            pid = processes.read_pid(d / f"{daemon}.pid")
            if pid is None or not processes.running(pid):
                raise MonitoringError(f"{daemon} exited: {_log_errors(d / f'{daemon}.log')}")
            try:
                with urllib.request.urlopen(self.url(daemon) + "/-/ready", timeout=2) as r:  # noqa: S310 - loopback
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > end:
                raise MonitoringError(f"{daemon} did not become ready within {timeout:.0f}s: "
                                      f"{_log_errors(d / f'{daemon}.log')}")
            time.sleep(0.1)


def _log_errors(log: Path) -> str:
    """The error lines of a daemon's latest start (its last lines if none), and where the log is."""
    lines = commands.log_tail(log, 40).splitlines()
    starts = [i for i, line in enumerate(lines) if "Starting " in line]
    lines = lines[starts[-1]:] if starts else lines
    errors = [line for line in lines if "level=error" in line or "level=fatal" in line] or lines[-3:]
    return f"{' / '.join(errors)} (log: {log})"


def _generated_by_floe(argv: list[str]) -> Path | None:
    """The directory of a Prometheus or Alertmanager whose configuration floe generated, else None."""
    if not argv or os.path.basename(argv[0]) not in (PROMETHEUS, ALERTMANAGER):
        return None
    for arg in argv[1:]:
        if arg.startswith("--config.file="):
            path = Path(arg.split("=", 1)[1])
            try:
                with open(path) as f:
                    first = f.readline()
            except OSError:
                return None
            return path.parent if first.startswith(pc.HEADER.strip()) else None
    return None


def purge_host(home: Path, *, host_wide: bool = False) -> list[str]:
    """Stop the monitoring daemons of `home` (`floe cleanup --all`); with `host_wide`, those of every
    floe home on the host (found by their floe-generated configuration)."""
    root = monitoring_dir(home)
    candidates = processes.pids_referring_to("--config.file=")
    removed = []
    for pid, argv in sorted(candidates.items()):
        directory = _generated_by_floe(argv)
        if directory is None or (not host_wide and directory.parent != root):
            continue
        if not processes.running(pid):
            continue
        processes.terminate([pid], STOP_TIMEOUT)
        (directory / f"{directory.name}.pid").unlink(missing_ok=True)
        removed.append(f"{os.path.basename(argv[0])} (pid {pid}) of {directory.parent.parent}")
    return removed
