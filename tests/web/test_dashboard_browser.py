"""The dashboard in a real browser: Debian's headless Chromium, driven by Selenium, against a
real `floe server` on the simulated provider (its engine and health loop running).

A member signs in, is refused a bad form, creates a cluster and watches it become
CREATE_COMPLETE and HEALTHY on the page without reloading it, sees its nodes and live charts,
downloads its credentials, resizes it and deletes it. Another project's cluster stays
invisible (its URL is a 404) until an admin signs in, who sees both projects.
"""

from __future__ import annotations

import io
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from floe.db.models import Cluster
from floe.db.session import Database
from tests.web.conftest import PASSWORD, FloeServer, have_chromium, start_chromium

# A cluster's page (not /dashboard/clusters/new, the form that leads there).
CLUSTER_PAGE = re.compile(r"/dashboard/clusters/[0-9a-f]{8}-[0-9a-f-]{27}$")

pytestmark = pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium and chromium-driver "
                                "(/usr/bin/chromium, /usr/bin/chromedriver): apt-get install chromium chromium-driver")


@pytest.fixture(scope="module")
def server() -> Iterator[FloeServer]:
    # Nodes take a second to boot, so the page first shows the cluster in progress.
    s = FloeServer(FLOE_SIM_BOOT_DELAY="1")
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def browser(tmp_path: Path):
    profile = tempfile.mkdtemp(prefix="floe-web-chromium-")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = start_chromium(profile, str(downloads))
    driver.downloads = downloads  # type: ignore[attr-defined]
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(what: str, check, timeout: float = 60.0, every: float = 0.2):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = check()
        except Exception as exc:  # the page may be between two renders
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def by_id(driver, ident: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, ident)


def error_text(driver) -> str:
    """The page's error message ("" while there is none, e.g. before a submitted form's answer)."""
    from selenium.webdriver.common.by import By

    return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, "p.error"))


def sign_in(driver, url: str, user: str, password: str = PASSWORD) -> None:
    driver.get(url + "/")
    wait_for("the sign-in form", lambda: "/dashboard/login" in driver.current_url)
    by_id(driver, "username").send_keys(user)
    by_id(driver, "password").send_keys(password)
    by_id(driver, "sign-in").click()
    wait_for("the cluster list", lambda: driver.current_url.rstrip("/").endswith("/dashboard"))


def cluster_count(server: FloeServer) -> int:
    db = Database(f"sqlite:///{server.home / 'floe.db'}")
    try:
        with db.session() as s:
            return s.scalar(select(func.count()).select_from(Cluster))
    finally:
        db.dispose()


def user_token(server: FloeServer, user: str, project: str) -> str:
    r = httpx.post(server.url + "/identity/v3/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": "Default"}, "password": PASSWORD}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}})
    assert r.status_code == 201, r.text
    return r.headers["X-Subject-Token"]


def test_member_creates_watches_resizes_and_deletes_a_cluster(server: FloeServer, browser) -> None:
    from selenium.webdriver.common.by import By

    template = server.http.post("/v1/clustertemplates", json={"name": "swarm", "coe": "swarm", "public": True})
    assert template.status_code == 201, template.text
    server.add_member("lab", "ann")
    server.add_member("other", "bob")
    bob = user_token(server, "bob", "other")
    theirs = httpx.post(server.url + "/v1/clusters", headers={"X-Auth-Token": bob}, json={
        "name": "bobs", "cluster_template_id": "swarm", "node_count": 1})
    assert theirs.status_code == 202, theirs.text
    bobs_uuid = theirs.json()["uuid"]

    sign_in(browser, server.url, "ann")
    assert "bobs" not in browser.page_source

    # A bad form: an error on the page, nothing created.
    by_id(browser, "new-cluster").click()
    by_id(browser, "name").send_keys("web1")
    by_id(browser, "node-count").clear()
    by_id(browser, "node-count").send_keys("two")
    by_id(browser, "create").click()
    wait_for("the form's error", lambda: "node count must be a whole number" in error_text(browser))
    assert cluster_count(server) == 1  # bob's only

    # A good one: the cluster's page, updated live until the cluster is complete and healthy.
    by_id(browser, "node-count").clear()
    by_id(browser, "node-count").send_keys("1")
    by_id(browser, "create").click()
    wait_for("the cluster page", lambda: CLUSTER_PAGE.search(browser.current_url))
    uuid = browser.current_url.rsplit("/", 1)[1]
    assert by_id(browser, "status").text == "CREATE_IN_PROGRESS"
    browser.execute_script("window.floeSamePage = true")  # gone if the page reloads
    wait_for("CREATE_COMPLETE", lambda: by_id(browser, "status").text == "CREATE_COMPLETE")
    wait_for("HEALTHY", lambda: by_id(browser, "health").text == "HEALTHY")
    assert browser.execute_script("return window.floeSamePage") is True, "the page reloaded"
    rows = browser.find_elements(By.CSS_SELECTOR, "#nodes tr[data-node]")
    assert len(rows) == 2 and all(r.find_element(By.CSS_SELECTOR, ".h").text == "HEALTHY" for r in rows)
    wait_for("a live chart", lambda: browser.find_elements(By.CSS_SELECTOR, "#nodes td.cpu svg polyline"))
    # The page was rendered while the cluster was in progress: its completion came by the live stream.
    wait_for("the live create-complete event", lambda: any(
        "operation.complete" in e.text for e in browser.find_elements(By.CSS_SELECTOR, "#events li")))

    # Credentials: the files `floe cluster config` writes, with a fresh key.
    by_id(browser, "download-credentials").click()
    bundle = wait_for("the download", lambda: list(browser.downloads.glob("web1-config.tar.gz")))[0]
    wait_for("the download to finish", lambda: bundle.stat().st_size > 0 and not list(
        browser.downloads.glob("*.crdownload")))
    with tarfile.open(fileobj=io.BytesIO(bundle.read_bytes())) as tar:
        names = set(tar.getnames())
        env_file = tar.extractfile("web1-config/env").read().decode()
    assert {"web1-config/ca.pem", "web1-config/cert.pem", "web1-config/key.pem"} <= names
    assert "DOCKER_HOST=tcp://10.192." in env_file

    # Resize to 2 workers: the node table grows on its own.
    by_id(browser, "resize-count").clear()
    by_id(browser, "resize-count").send_keys("2")
    by_id(browser, "resize-button").click()
    wait_for("the resize notice", lambda: "Resizing to 2" in browser.find_element(By.CSS_SELECTOR, "p.notice").text)
    wait_for("UPDATE_COMPLETE", lambda: by_id(browser, "status").text == "UPDATE_COMPLETE")
    wait_for("3 nodes", lambda: len(browser.find_elements(By.CSS_SELECTOR, "#nodes tr[data-node]")) == 3)

    # A POST without the CSRF token is refused, even from the signed-in page.
    status = browser.execute_async_script("""
        const done = arguments[0];
        fetch(location.pathname + '/delete',
              {method: 'POST', body: new URLSearchParams({}), credentials: 'same-origin'})
          .then(r => done(r.status));""")
    assert status == 403
    assert by_id(browser, "status").text == "UPDATE_COMPLETE"

    # Another project's cluster: not in the list, and its page is a 404.
    browser.get(f"{server.url}/dashboard/clusters/{bobs_uuid}")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Not found"

    # Delete ours: it leaves the list.
    browser.get(f"{server.url}/dashboard/clusters/{uuid}")
    by_id(browser, "delete-cluster").click()
    browser.switch_to.alert.accept()
    wait_for("the delete notice", lambda: "Deleting cluster web1" in browser.find_element(
        By.CSS_SELECTOR, "p.notice").text)
    wait_for("the cluster to go", lambda: by_id(browser, "status").text == "DELETED")
    browser.get(server.url + "/dashboard/")
    assert f"c-{uuid}" not in browser.page_source and "No clusters yet." in browser.page_source

    # A share: created from the form, shown with its usage once available, deleted.
    browser.find_element(By.LINK_TEXT, "Shares").click()
    by_id(browser, "share-name").send_keys("data")
    by_id(browser, "share-size").clear()
    by_id(browser, "share-size").send_keys("0")
    by_id(browser, "create-share-button").click()
    wait_for("the share form's error", lambda: "whole number of GiB" in error_text(browser))
    by_id(browser, "share-size").clear()
    by_id(browser, "share-size").send_keys("2")
    by_id(browser, "create-share-button").click()
    notice = lambda: browser.find_element(By.CSS_SELECTOR, "p.notice").text  # noqa: E731
    wait_for("the share notice", lambda: "Creating share data" in notice())
    wait_for("the share available", lambda: browser.refresh() or "s-available" in browser.page_source, every=0.5)
    row = browser.find_element(By.XPATH, "//table[@id='shares']//tr[td[1]='data']")
    assert "2 GiB" in row.text and row.find_elements(By.CSS_SELECTOR, ".gauge")
    row.find_element(By.TAG_NAME, "button").click()
    browser.switch_to.alert.accept()
    wait_for("the share gone", lambda: browser.refresh() or "No shares yet." in browser.page_source, every=0.5)

    # An admin sees every project's clusters.
    browser.find_element(By.CSS_SELECTOR, "form.who button").click()
    wait_for("signed out", lambda: "/dashboard/login" in browser.current_url)
    sign_in(browser, server.url, "admin", (server.home / "admin-password").read_text().strip())
    assert f"c-{bobs_uuid}" in browser.page_source
    browser.get(f"{server.url}/dashboard/clusters/{bobs_uuid}")
    assert by_id(browser, "status").text in ("CREATE_IN_PROGRESS", "CREATE_COMPLETE")
