"""Every failure is one `error: ...` line on stderr with a non-zero exit, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from floe.cli.main import app
from tests.cli.conftest import FLOE_ENV_VARS, LiveServer, assert_one_line_error, free_port


def _env(**values: str | None) -> dict[str, str | None]:
    env: dict[str, str | None] = dict.fromkeys(FLOE_ENV_VARS)
    env.update(values)
    return env


@pytest.fixture
def dead_url() -> str:
    # A port nothing listens on: bound once and released.
    return f"http://127.0.0.1:{free_port()}"


def test_server_down_is_one_clear_line(runner: CliRunner, dead_url: str):
    result = runner.invoke(app, ["cluster", "list"], env=_env(FLOE_URL=dead_url, FLOE_TOKEN="t0ken-xyz"))
    assert_one_line_error(result, f"cannot reach the floe server at {dead_url}", "floe server")
    assert "t0ken-xyz" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["cluster", "create", "c1", "--template", "t", "--label", "novalue"],
        ["cluster", "create", "c1", "--template", "t", "--label", "=v"],
        ["template", "create", "t1", "--label", "a=b", "--label", "broken"],
    ],
)
def test_bad_label_syntax(runner: CliRunner, dead_url: str, args: list[str]):
    # Checked before any request: the (absent) server is never asked.
    result = runner.invoke(app, args, env=_env(FLOE_URL=dead_url, FLOE_TOKEN="x"))
    assert_one_line_error(result, "invalid label", "KEY=VALUE", exit_code=1)


def test_no_token_anywhere(runner: CliRunner, tmp_path: Path, dead_url: str):
    result = runner.invoke(app, ["template", "list"], env=_env(FLOE_URL=dead_url, FLOE_HOME=str(tmp_path)))
    assert_one_line_error(result, "FLOE_TOKEN", str(tmp_path / "admin-token"))


def test_usage_errors_are_one_line(runner: CliRunner):
    result = runner.invoke(app, ["cluster", "create", "c1"], env=_env())
    assert_one_line_error(result, "--template", "floe cluster create --help", exit_code=2)
    result = runner.invoke(app, ["cluster", "frobnicate"], env=_env())
    assert_one_line_error(result, "frobnicate", exit_code=2)
    result = runner.invoke(app, ["cluster", "list", "-f", "yaml"], env=_env())
    assert_one_line_error(result, "yaml", exit_code=2)


def test_missing_image_file(runner: CliRunner, tmp_path: Path, dead_url: str):
    missing = tmp_path / "nope.tar"
    result = runner.invoke(app, ["image", "import", str(missing)], env=_env(FLOE_URL=dead_url, FLOE_TOKEN="x"))
    assert_one_line_error(result, "No such file", str(missing))


def test_bad_token(floe, live_server: LiveServer):
    result = floe("template", "list", FLOE_TOKEN="floe_not-a-real-token")
    assert_one_line_error(result, "401")


def test_unknown_template(floe):
    result = floe("cluster", "create", "c-orphan", "--template", "no-such-template")
    assert_one_line_error(result, "no-such-template", "404")
    result = floe("template", "show", "no-such-template")
    assert_one_line_error(result, "no-such-template", "404")


def test_unknown_cluster(floe):
    for args in (["cluster", "show", "ghost"], ["cluster", "delete", "ghost"], ["cluster", "nodes", "ghost"],
                 ["cluster", "config", "ghost"], ["cluster", "resize", "ghost", "--node-count", "2"]):
        assert_one_line_error(floe(*args), "404")
