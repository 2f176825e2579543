"""Screenshots of the dashboard's main pages for docs/dashboard.md (docs/images/dashboard-*.png).

Starts a real `floe server` on the simulated provider (its own FLOE_HOME and port, addresses
from 10.192.0.0/16), makes a project `lab` with a member `ann`, signs in as ann in headless
Chromium (1280×800) and uses the pages as a user would: two clusters and a share from the
forms, then the list, a cluster with its live charts and events, the shares and the quotas.
Everything it made goes with the server's home at the end.

    .venv/bin/python scripts/dashboard_screenshots.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.web.conftest import FloeServer, start_chromium  # noqa: E402
from tests.web.test_dashboard_browser import CLUSTER_PAGE, sign_in, wait_for  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from selenium.webdriver.common.by import By

    server = FloeServer(FLOE_SIM_BOOT_DELAY="0.5")
    profile = tempfile.mkdtemp(prefix="floe-shots-chromium-")
    driver = None
    try:
        server.http.post("/v1/clustertemplates", json={"name": "swarm", "coe": "swarm", "public": True})
        server.http.post("/v1/clustertemplates", json={"name": "hpc", "coe": "slurm", "public": True})
        lab = server.add_member("lab", "ann")
        for resource, limit in (("Cluster", 10), ("Node", 40), ("Cores", 80)):
            server.http.post("/v1/quotas", json={"project_id": lab, "resource": resource, "hard_limit": limit})
        driver = start_chromium(profile)

        def shot(name: str) -> None:
            time.sleep(0.3)
            driver.save_screenshot(str(args.out / f"dashboard-{name}.png"))
            print("wrote", args.out / f"dashboard-{name}.png")

        driver.get(server.url + "/dashboard/login")
        driver.find_element(By.ID, "username").send_keys("ann")
        shot("login")
        sign_in(driver, server.url, "ann")
        for name, workers in (("analysis", 3), ("web", 1)):
            driver.get(f"{server.url}/dashboard/clusters/new?project={lab}")
            driver.find_element(By.ID, "name").send_keys(name)
            count = driver.find_element(By.ID, "node-count")
            count.clear()
            count.send_keys(str(workers))
            driver.find_element(By.ID, "create").click()
            wait_for("the cluster page", lambda: CLUSTER_PAGE.search(driver.current_url))
        wait_for("HEALTHY", lambda: driver.find_element(By.ID, "health").text == "HEALTHY")
        driver.get(f"{server.url}/dashboard/shares?project={lab}")
        driver.find_element(By.ID, "share-name").send_keys("results")
        size = driver.find_element(By.ID, "share-size")
        size.clear()
        size.send_keys("10")
        driver.find_element(By.ID, "create-share-button").click()
        wait_for("the share", lambda: "results" in driver.page_source)

        driver.get(server.url + "/dashboard/")
        wait_for("both healthy", lambda: driver.page_source.count(">HEALTHY<") == 2)
        shot("clusters")
        driver.find_element(By.LINK_TEXT, "analysis").click()
        wait_for("charts", lambda: len(driver.find_elements(By.CSS_SELECTOR, "#nodes td.cpu svg polyline")) == 4)
        time.sleep(24)  # a dozen readings, so the sparklines have a shape
        shot("cluster")
        driver.execute_script("document.getElementById('nodegroups').scrollIntoView()")
        shot("cluster-events")
        driver.get(f"{server.url}/dashboard/shares?project={lab}")
        wait_for("available", lambda: "s-available" in driver.page_source, timeout=30)
        driver.refresh()
        shot("shares")
        driver.get(f"{server.url}/dashboard/quotas?project={lab}")
        shot("quotas")
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        server.stop()


if __name__ == "__main__":
    main()
