"""Fixtures for the dashboard's tests.

`web` is the real app (the APIs and the dashboard) on its own SQLite database, no engine, under
a TestClient: fast checks of sign-in, CSRF, tenancy and bad input. `server` is a real `floe
server` process on the simulated provider (engine and health loop running), and `browser` a
headless Debian Chromium driven by Selenium: together they test the dashboard as a user meets it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from floe import web
from floe.services import accounts, identity
from floe.services.identity import Caller
from tests.api.conftest import Env, free_port, make_env, migrated_db  # noqa: F401 - migrated_db is a fixture

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLOE = str(Path(sys.executable).parent / "floe")
# The address range this suite's servers hand out (given to this work; no other test uses it).
ADDRESS_RANGE = os.environ.get("FLOE_WEB_TEST_RANGE", "10.192.0.0/16")
PASSWORD = "correct horse battery staple"


def add_member(env_db, admin: Caller, project: str, user: str, role: str = "member") -> tuple[str, str]:
    """A project, a user with PASSWORD holding `role` there; returns (project id, user id)."""
    p = accounts.new_project(env_db, admin, project)
    u = accounts.new_user(env_db, admin, user, password=PASSWORD, default_project_id=p.id)
    (r,) = accounts.list_roles(env_db, admin, name=role)
    accounts.grant(env_db, admin, p.id, u.id, r.id)
    return p.id, u.id


@dataclass
class Web:
    env: Env
    client: TestClient

    @property
    def admin(self) -> Caller:
        return identity.authenticate(self.env.db, self.env.admin_token)

    def csrf(self, path: str = "/dashboard/") -> str:
        """The CSRF token a page of this session carries."""
        import re

        html = self.client.get(path).text
        m = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert m, html[:2000]
        return m.group(1)

    def sign_in(self, user: str, password: str = PASSWORD, project: str = "") -> httpx.Response:
        import re

        form = self.client.get("/dashboard/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        return self.client.post("/dashboard/login", data={
            "username": user, "password": password, "project": project, "domain": "Default",
            "csrf_token": token, "next": "/dashboard/"}, follow_redirects=False)


@pytest.fixture
def web_app(tmp_path: Path, migrated_db: Path) -> Iterator[Web]:  # noqa: F811
    env = make_env(tmp_path / "home", migrated_db)
    web.install(env.app)
    with TestClient(env.app, raise_server_exceptions=True, base_url="http://testserver") as client:
        yield Web(env, client)
    env.runtime.engine.stop(wait=False)  # type: ignore[union-attr]
    env.db.dispose()


# -- a real server and a real browser --------------------------------------------------------

class FloeServer:
    """`floe server` on the simulated provider with its own FLOE_HOME and port; stop() removes both."""

    def __init__(self, **env: str):
        self.home = Path(tempfile.mkdtemp(prefix="floe-web-test-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Simulated shares too: nothing is mounted on the host.
        self.env = {**os.environ, "FLOE_HOME": str(self.home), "FLOE_PORT": str(self.port),
                    "FLOE_HOST": "127.0.0.1", "FLOE_PROVIDER": "simulated", "FLOE_ADDRESS_RANGE": ADDRESS_RANGE,
                    "FLOE_SHARE_TYPES": "simulated", **env}
        for leftover in ("FLOE_TOKEN", "FLOE_FAILPOINTS", "FLOE_DATABASE_URL"):
            self.env.pop(leftover, None)
        self.log = self.home / "server.log"
        self.proc = subprocess.Popen([FLOE, "server"], env=self.env, stdout=open(self.log, "wb"),  # noqa: SIM115
                                     stderr=subprocess.STDOUT)
        end = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"floe server exited: {self.log.read_text()[-3000:]}")
            try:
                httpx.get(self.url + "/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > end:
                    raise RuntimeError("floe server did not answer in 60 s") from None
                time.sleep(0.1)
        self.token = (self.home / "admin-token").read_text().strip()
        self.http = httpx.Client(base_url=self.url, headers={"X-Auth-Token": self.token}, timeout=60)

    def keystone(self, method: str, path: str, **kw) -> dict:
        r = self.http.request(method, "/identity/v3" + path, **kw)
        assert r.status_code < 300, r.text
        return r.json() if r.content else {}

    def add_member(self, project: str, user: str, role: str = "member") -> str:
        """A project and a user holding `role` there, made through the identity API; returns the project id."""
        pid = self.keystone("POST", "/projects", json={"project": {"name": project}})["project"]["id"]
        uid = self.keystone("POST", "/users", json={"user": {"name": user, "password": PASSWORD,
                                                           "default_project_id": pid}})["user"]["id"]
        rid = self.keystone("GET", f"/roles?name={role}")["roles"][0]["id"]
        self.keystone("PUT", f"/projects/{pid}/users/{uid}/roles/{rid}")
        return pid

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Whatever the home still holds on the host goes before the home does.
        subprocess.run([FLOE, "cleanup", "--all", "--delete-share-data"], env=self.env, capture_output=True,
                       timeout=120, check=False)
        shutil.rmtree(self.home, ignore_errors=True)
        assert not self.home.exists(), f"{self.home} could not be removed"


def chromium_options(user_data_dir: str, download_dir: str | None = None):
    """Headless Chromium as this machine needs it: no sandbox, no GPU, and no background
    connections (the closed network refuses them), a fresh profile."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={user_data_dir}", "--window-size=1280,800"):
        options.add_argument(arg)
    if download_dir:
        options.add_experimental_option("prefs", {"download.default_directory": download_dir,
                                                  "download.prompt_for_download": False})
    return options


def start_chromium(user_data_dir: str, download_dir: str | None = None):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=chromium_options(user_data_dir, download_dir))
    if download_dir:
        driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": download_dir})
    return driver


def have_chromium() -> bool:
    return os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)
