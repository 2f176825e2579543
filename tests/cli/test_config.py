"""Where the client finds its server and token: FLOE_URL, then FLOE_TOKEN over $FLOE_HOME/admin-token."""

from __future__ import annotations

from pathlib import Path

import pytest

from floe.client import DEFAULT_URL, FloeConfigError, resolve_token, resolve_url
from tests.cli.conftest import LiveServer, assert_one_line_error


def test_url_default_and_env():
    assert resolve_url({}) == DEFAULT_URL == "http://127.0.0.1:9511"
    assert resolve_url({"FLOE_URL": "http://10.0.0.1:9000/"}) == "http://10.0.0.1:9000"


def test_token_env_wins_over_file(tmp_path: Path):
    (tmp_path / "admin-token").write_text("from-file\n")
    assert resolve_token({"FLOE_HOME": str(tmp_path), "FLOE_TOKEN": "from-env"}) == "from-env"
    assert resolve_token({"FLOE_HOME": str(tmp_path)}) == "from-file"
    assert resolve_token({"FLOE_HOME": str(tmp_path), "FLOE_TOKEN": "  "}) == "from-file"


def test_token_missing_or_empty(tmp_path: Path):
    with pytest.raises(FloeConfigError, match="FLOE_TOKEN"):
        resolve_token({"FLOE_HOME": str(tmp_path)})
    (tmp_path / "admin-token").write_text("\n")
    with pytest.raises(FloeConfigError, match="empty"):
        resolve_token({"FLOE_HOME": str(tmp_path)})


def _home_with_token(tmp_path: Path, token: str) -> str:
    (tmp_path / "admin-token").write_text(token + "\n")
    return str(tmp_path)


def test_cli_env_token_over_file(floe, live_server: LiveServer, tmp_path: Path):
    # A wrong token in the file does not matter while FLOE_TOKEN is right ...
    home = _home_with_token(tmp_path, "floe_wrong")
    assert floe("template", "list", FLOE_HOME=home).exit_code == 0
    # ... and a right one in the file does not rescue a wrong FLOE_TOKEN.
    home = _home_with_token(tmp_path, live_server.token)
    assert_one_line_error(floe("template", "list", FLOE_HOME=home, FLOE_TOKEN="floe_wrong"), "401")


def test_cli_token_from_file(floe, live_server: LiveServer):
    # The server's own home holds the admin token it bootstrapped.
    result = floe("template", "list", FLOE_TOKEN=None, FLOE_HOME=str(live_server.home))
    assert result.exit_code == 0, result.output
