"""`floe nodegroup …` against a real floe server whose engine runs on the simulated provider.

The server is the real app under uvicorn with the real engine; the simulated provider and COE
driver stand in for the machines (nothing is made on the host), so `--wait` follows real
operations to their end. The CLI runs through Typer's CliRunner with the server's admin token.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from typer.testing import CliRunner, Result

from floe.api.app import create_app
from floe.cli.main import app
from floe.cli.nodegroups import pick_gpu_flavor
from floe.client import FloeClient
from floe.config import Settings
from floe.server import build_runtime, make_provider
from floe.services import identity
from tests.cli.conftest import FLOE_ENV_VARS, assert_one_line_error, free_port

# Simulated nodes touch nothing on the host; the range only feeds floe's address table.
RANGE = "10.0.0.0/8"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """(url, admin token, home) of floe (API + engine) on the simulated provider."""
    home = tmp_path_factory.mktemp("cli-nodegroups-home")
    settings = Settings(home=home, provider="simulated", address_range=RANGE)
    provider = make_provider(settings)
    runtime = build_runtime(settings, provider)
    token = identity.bootstrap_admin(runtime.db, settings.admin_token_file)
    assert token
    runtime.engine.start()  # type: ignore[union-attr]
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="critical",
                                       access_log=False))
    thread = threading.Thread(target=uv.run, name="floe-cli-nodegroups", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", token, home
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        runtime.engine.stop(wait=True)  # type: ignore[union-attr]
        provider.close()
        runtime.db.dispose()


@pytest.fixture(scope="module")
def floe(server: tuple[str, str, Path]) -> Callable[..., Result]:
    url, token, home = server
    runner = CliRunner()

    def run(*args: str) -> Result:
        env: dict[str, str | None] = dict.fromkeys(FLOE_ENV_VARS)
        env.update(FLOE_URL=url, FLOE_TOKEN=token, FLOE_HOME=str(home))
        result = runner.invoke(app, list(args), env=env)
        assert token not in result.output
        return result

    return run


@pytest.fixture(scope="module")
def cluster(server: tuple[str, str, Path], floe: Callable[..., Result]) -> Iterator[str]:
    """A CREATE_COMPLETE cluster (1 manager, 1 worker); deleted afterwards."""
    url, token, _ = server
    name = f"cli-ng-{uuid.uuid4().hex[:6]}"
    with FloeClient(url, token) as client:
        client.create_template(f"{name}-tpl", "swarm")
    result = floe("cluster", "create", name, "--template", f"{name}-tpl", "--node-count", "1", "--wait")
    assert result.exit_code == 0, result.output
    yield name
    result = floe("cluster", "delete", name, "--wait")
    assert result.exit_code == 0, result.output
    with FloeClient(url, token) as client:
        client.delete_template(f"{name}-tpl")


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def test_create_show_resize_delete_with_wait(floe: Callable[..., Result], cluster: str) -> None:
    out = ok(floe("nodegroup", "create", cluster, "gpu", "--node-count", "2", "--min", "1", "--max", "4",
                  "--flavor", "m1.tiny", "--label", "a=b", "--node-label", "x=y", "--taint", "k=v:NoSchedule",
                  "--taint", "spot:PreferNoSchedule", "--wait"))
    assert "CREATE_COMPLETE" in out.stderr  # the progress lines
    assert "k=v:NoSchedule" in out.stdout and "spot=:PreferNoSchedule" in out.stdout  # the group, as a table
    shown = json.loads(ok(floe("nodegroup", "show", cluster, "gpu", "-f", "json")).stdout)
    assert shown["status"] == "CREATE_COMPLETE" and shown["node_count"] == 2
    assert (shown["min_node_count"], shown["max_node_count"], shown["flavor_id"]) == (1, 4, "m1.tiny")
    assert shown["node_labels"] == {"x": "y"} and shown["labels"] == {"a": "b"}
    assert shown["node_taints"][0] == {"key": "k", "value": "v", "effect": "NoSchedule"}
    listed = ok(floe("nodegroup", "list", cluster)).stdout
    assert "default-master" in listed and "default-worker" in listed and "gpu" in listed
    workers = json.loads(ok(floe("nodegroup", "list", cluster, "--role", "worker", "-f", "json")).stdout)
    assert [g["name"] for g in workers] == ["default-worker", "gpu"]

    out = ok(floe("nodegroup", "resize", cluster, "gpu", "3", "--wait"))
    assert "nodegroup gpu is UPDATE_COMPLETE with 3 nodes" in out.stdout
    assert_one_line_error(floe("nodegroup", "resize", cluster, "gpu", "5"), "outside the allowed range",
                          "max_node_count = 4")

    out = ok(floe("nodegroup", "delete", cluster, "gpu", "--wait"))
    assert "nodegroup gpu deleted" in out.stdout
    assert_one_line_error(floe("nodegroup", "show", cluster, "gpu"), "Nodegroup gpu could not be found")


def test_resize_the_default_workers(floe: Callable[..., Result], cluster: str) -> None:
    out = ok(floe("nodegroup", "resize", cluster, "default-worker", "2", "--wait"))
    assert "nodegroup default-worker is" in out.stdout and "with 2 nodes" in out.stdout
    ok(floe("nodegroup", "resize", cluster, "default-worker", "1", "--wait"))


def test_without_wait_the_request_is_accepted(floe: Callable[..., Result], cluster: str) -> None:
    out = ok(floe("nodegroup", "create", cluster, "later"))
    assert "Request to create nodegroup later" in out.stdout and "accepted" in out.stdout
    deadline = time.monotonic() + 60
    while json.loads(ok(floe("nodegroup", "show", cluster, "later", "-f", "json")).stdout)["status"] != (
            "CREATE_COMPLETE"):
        assert time.monotonic() < deadline, "nodegroup later was not built"
        time.sleep(0.2)
    out = ok(floe("nodegroup", "delete", cluster, "later"))
    assert "Request to delete nodegroup later" in out.stdout
    deadline = time.monotonic() + 60
    while floe("nodegroup", "show", cluster, "later").exit_code == 0:
        assert time.monotonic() < deadline, "nodegroup later was not deleted"
        time.sleep(0.2)


def test_refusals_are_one_line(floe: Callable[..., Result], cluster: str) -> None:
    assert_one_line_error(floe("nodegroup", "create", cluster, "bad", "--taint", "k=v"), "invalid taint 'k=v'")
    assert_one_line_error(floe("nodegroup", "create", cluster, "bad", "--taint", "k=v:Often"), "NoSchedule")
    assert_one_line_error(floe("nodegroup", "create", cluster, "bad", "--node-label", "novalue"),
                          "expected KEY=VALUE")
    assert_one_line_error(floe("nodegroup", "create", cluster, "bad", "--node-count", "5", "--max", "2"),
                          "above its max_node_count")
    assert_one_line_error(floe("nodegroup", "delete", cluster, "default-master"),
                          "Deleting a default nodegroup is not supported")
    assert_one_line_error(floe("nodegroup", "list", "no-such-cluster"), "Cluster no-such-cluster could not be found")
    groups = json.loads(ok(floe("nodegroup", "list", cluster, "-f", "json")).stdout)
    assert "bad" not in [g["name"] for g in groups]


def test_gpus_picks_the_smallest_flavor_that_fits(floe: Callable[..., Result], server: tuple[str, str, Path],
                                                  cluster: str) -> None:
    url, token, _ = server
    # No GPU flavor yet: the message says what an admin can run.
    line = assert_one_line_error(floe("nodegroup", "create", cluster, "g", "--gpus", "1"),
                                 "no public flavor has 1 GPU(s)")
    assert "floe flavor create NAME --vcpus 1 --ram 2048 --disk 20 --gpus 1" in line
    suffix = uuid.uuid4().hex[:6]
    with FloeClient(url, token) as client:
        big = client.create_flavor(f"g-big-{suffix}", vcpus=8, ram_mb=16384, disk_gb=100, gpus=2)
        small = client.create_flavor(f"g-small-{suffix}", vcpus=2, ram_mb=4096, disk_gb=40, gpus=1)
    try:
        result = floe("nodegroup", "create", cluster, "g", "--gpus", "1")
        assert f"flavor g-small-{suffix}: 1 GPU(s)" in result.stdout
        # The simulated provider has no GPUs to give: refused before anything is recorded.
        assert_one_line_error(result, "cannot give nodes GPUs")
        result = floe("nodegroup", "create", cluster, "g", "--gpus", "1", "--flavor", "m1.large")
        assert f"flavor g-big-{suffix}" in result.stdout
    finally:
        with FloeClient(url, token) as client:
            client.delete_flavor(big["id"])
            client.delete_flavor(small["id"])


def _flavor(name: str, vcpus: int, ram: int, disk: int, gpus: int = 0, public: bool = True) -> dict:
    specs = {"floe:gpus": str(gpus)} if gpus else {}
    return {"id": name, "name": name, "vcpus": vcpus, "ram": ram, "disk": disk, "extra_specs": specs,
            "os-flavor-access:is_public": public}


def test_pick_gpu_flavor_rules() -> None:
    flavors = [
        _flavor("m1.small", 1, 2048, 20), _flavor("m1.large", 4, 8192, 80),
        _flavor("gpu.2x", 8, 16384, 160, gpus=2), _flavor("gpu.1x", 4, 8192, 80, gpus=1),
        _flavor("gpu.tiny", 1, 1024, 10, gpus=1), _flavor("gpu.private", 1, 4096, 40, gpus=1, public=False),
    ]
    assert pick_gpu_flavor(flavors, 1, None)["name"] == "gpu.1x"  # gpu.tiny has less RAM than m1.small
    assert pick_gpu_flavor(flavors, 1, "m1.large")["name"] == "gpu.1x"
    assert pick_gpu_flavor(flavors, 2, None)["name"] == "gpu.2x"
    assert pick_gpu_flavor(flavors, 1, "gpu.tiny")["name"] == "gpu.tiny"
    with pytest.raises(Exception, match="no public flavor has 4 GPU"):
        pick_gpu_flavor(flavors, 4, None)
    with pytest.raises(Exception, match="flavor m9.huge could not be found"):
        pick_gpu_flavor(flavors, 1, "m9.huge")
