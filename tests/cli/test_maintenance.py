"""`floe server`, `floe cleanup [--all]` and `floe image import`: wiring and error paths."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from tests.cli.conftest import FLOE_ENV_VARS, LiveServer, assert_one_line_error, free_port


def _offline_env() -> dict[str, str | None]:
    env: dict[str, str | None] = dict.fromkeys(FLOE_ENV_VARS)
    env.update(FLOE_URL=f"http://127.0.0.1:{free_port()}", FLOE_TOKEN="x")
    return env


def test_cleanup_through_the_api(floe, live_server: LiveServer):
    # This server has no infra provider, so there is nothing on the host to find; the real
    # orphan purge is exercised end to end in tests/e2e.
    result = floe("cleanup")
    assert result.exit_code == 0, result.output
    assert "nothing to clean up" in result.stdout


def test_cleanup_needs_an_admin(floe, live_server: LiveServer):
    from floe.services import identity

    with live_server.runtime.db.session() as s:
        project = identity.create_project(s, "someone")
        token = identity.create_token(s, project.id)
    result = floe("cleanup", FLOE_TOKEN=token)
    assert_one_line_error(result)
    assert "only an admin" in result.output


def test_image_import_rejects_a_non_image(floe, live_server: LiveServer, tmp_path: Path):
    bogus = tmp_path / "not-an-image.tar"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    bogus.write_bytes(buf.getvalue())
    result = floe("image", "import", str(bogus))
    assert_one_line_error(result)
    assert "cannot import images" in result.output  # no provider here; e2e imports for real
