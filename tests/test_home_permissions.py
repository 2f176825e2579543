"""floe's home and the secrets in it (every cluster CA's key in floe.db, the admin token) stay private.

Whatever the umask, and even in a home an admin made beforehand at 0755: the home ends up 0700,
floe.db with its -wal and -shm files and admin-token 0600; a home floe cannot make private
(another user's) is refused with a clear message. Runs the real `floe server` (simulated
provider: it touches nothing on the host) and the function its start calls.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from floe.config import HomeError, Settings
from floe.server import build_runtime, make_provider
from floe.services.identity import bootstrap_admin

FLOE = str(Path(sys.executable).parent / "floe")
SECRETS = ("floe.db", "floe.db-wal", "floe.db-shm", "admin-token")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _modes(home: Path) -> dict[str, str]:
    return {"home": f"{_mode(home):04o}", **{n: f"{_mode(home / n):04o}" for n in SECRETS if (home / n).exists()}}


def _premade_home(path: Path) -> Path:
    """A home as an admin makes it beforehand: `mkdir -m 0755 /srv/floe`."""
    path.mkdir()
    os.chmod(path, 0o755)
    return path


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_env(home: Path, port: int) -> dict[str, str]:
    env = {**os.environ, "FLOE_HOME": str(home), "FLOE_PORT": str(port), "FLOE_PROVIDER": "simulated",
           "FLOE_ADDRESS_RANGE": "10.0.0.0/8"}
    for leftover in ("FLOE_TOKEN", "FLOE_FAILPOINTS", "FLOE_DATABASE_URL"):
        env.pop(leftover, None)
    return env


@pytest.mark.timeout(120)
def test_real_server_under_umask_0_in_a_premade_0755_home(tmp_path: Path):
    home = _premade_home(tmp_path / "srv-floe")
    port = _free_port()
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [FLOE, "server"], env=_server_env(home, port), stdout=log, stderr=subprocess.STDOUT,
        preexec_fn=lambda: os.umask(0),
    )
    try:
        url = f"http://127.0.0.1:{port}"
        end = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                httpx.get(url + "/", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < end, "floe server did not answer in 60 s"
                time.sleep(0.05)
        # A write, so that the WAL holds data and the server's connections are open.
        token = (home / "admin-token").read_text().strip()
        headers = {"X-Auth-Token": token, "OpenStack-API-Version": "container-infra latest"}
        r = httpx.post(f"{url}/v1/clustertemplates", json={"name": "t", "coe": "swarm"}, headers=headers, timeout=30)
        assert r.status_code == 201, r.text
        assert (home / "floe.db-wal").exists() and (home / "floe.db-shm").exists()
        assert _modes(home) == {"home": "0700", **dict.fromkeys(SECRETS, "0600")}
        # Nothing floe made in its home is readable by others.
        loose = [str(p) for p in home.rglob("*") if _mode(p) & 0o077 and p.is_file() and p.name in SECRETS]
        assert loose == []
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.mark.parametrize("mask", [0o000, 0o022])
def test_start_tightens_what_an_older_floe_left_readable(tmp_path: Path, mask: int):
    """A pre-made 0755 home with a 0644 database (as floe made it before), started under `mask`."""
    home = _premade_home(tmp_path / "home")
    (home / "floe.db").touch()
    os.chmod(home / "floe.db", 0o644)
    with _umask(mask):
        settings = Settings(home=home, provider="simulated", address_range="10.0.0.0/8")
        runtime = build_runtime(settings, make_provider(settings), engine=False)
        try:
            bootstrap_admin(runtime.db, settings.admin_token_file)
            with runtime.db.engine.connect() as conn:  # keeps the WAL and SHM open while we look
                conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS probe (x)")
                conn.commit()
                assert _modes(home) == {"home": "0700", **dict.fromkeys(SECRETS, "0600")}
        finally:
            runtime.db.dispose()


def test_existing_database_files_are_tightened(tmp_path: Path):
    home = _premade_home(tmp_path / "home")
    settings = Settings(home=home, provider="simulated", address_range="10.0.0.0/8")
    with _umask(0o022):
        build_runtime(settings, make_provider(settings), engine=False).db.dispose()
        for name in ("floe.db", "floe.db-wal", "floe.db-shm"):
            (home / name).touch()
            os.chmod(home / name, 0o644)
        os.chmod(home, 0o755)
        build_runtime(settings, make_provider(settings), engine=False).db.dispose()
    assert _mode(home) == 0o700
    assert all(_mode(home / n) == 0o600 for n in ("floe.db", "floe.db-wal", "floe.db-shm") if (home / n).exists())
    assert _mode(home / "floe.db") == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the home to another user")
def test_a_home_of_another_user_is_refused_with_a_clear_message(tmp_path: Path):
    home = _premade_home(tmp_path / "theirs")
    os.chown(home, 65534, 65534)
    settings = Settings(home=home, provider="simulated", address_range="10.0.0.0/8")
    with pytest.raises(HomeError, match="belongs to uid 65534"):
        build_runtime(settings, make_provider(settings), engine=False)
    assert not (home / "floe.db").exists()
    res = subprocess.run(
        [FLOE, "server"], env=_server_env(home, _free_port()), capture_output=True, text=True, timeout=60
    )
    assert res.returncode != 0
    assert f"error: FLOE_HOME {home} belongs to uid 65534" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (home / "floe.db").exists() and _mode(home) == 0o755
