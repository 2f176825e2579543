"""Settings from FLOE_* variables: the share types a server offers, and refusals that name the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from floe.config import Settings
from floe.storage import Backends

FLOE = str(Path(sys.executable).parent / "floe")


def test_share_types_default_and_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOE_SHARE_TYPES", raising=False)
    assert Settings.from_env().share_types == ("local", "glusterfs")
    monkeypatch.setenv("FLOE_SHARE_TYPES", " simulated , local ")
    settings = Settings.from_env()
    assert settings.share_types == ("simulated", "local")
    backends = Backends(settings.home, names=settings.share_types)
    assert backends.default == "simulated"
    assert [t.name for t in backends.types()] == ["simulated", "local"]


@pytest.mark.parametrize("value", ["nfs", "local,local", ",", "local,glusterfs,ceph"])
def test_unknown_or_repeated_share_types_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("FLOE_SHARE_TYPES", value)
    with pytest.raises(ValueError, match="FLOE_SHARE_TYPES"):
        Settings.from_env()


def test_a_type_not_offered_is_refused_by_the_registry(tmp_path: Path) -> None:
    from floe.storage.base import StorageError

    backends = Backends(tmp_path, names=("simulated",))
    with pytest.raises(StorageError, match="not offered"):
        backends.get("local")
    assert backends.get("simulated").name == "simulated"


def test_floe_server_says_which_variable_is_wrong(tmp_path: Path) -> None:
    env = {**os.environ, "FLOE_HOME": str(tmp_path / "home"), "FLOE_SHARE_TYPES": "local,nfs"}
    proc = subprocess.run([FLOE, "server"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "error: FLOE_SHARE_TYPES 'local,nfs' is not a list of distinct share types from: local, glusterfs, simulated"
    )
    assert not (tmp_path / "home").exists()  # refused before anything was made
