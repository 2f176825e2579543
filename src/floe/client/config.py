"""Where the client finds the floe server and the token it authenticates with."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from floe.client.errors import FloeConfigError

DEFAULT_URL = "http://127.0.0.1:9511"


def floe_home(env: Mapping[str, str] | None = None) -> Path:
    """`$FLOE_HOME`, else `~/.local/share/floe` (the server's default home)."""
    env = os.environ if env is None else env
    home = env.get("FLOE_HOME")
    return Path(home).expanduser() if home else Path.home() / ".local/share/floe"


def resolve_url(env: Mapping[str, str] | None = None) -> str:
    """`$FLOE_URL`, else the local server's default address."""
    env = os.environ if env is None else env
    url = (env.get("FLOE_URL") or "").strip() or DEFAULT_URL
    return url.rstrip("/")


def token_file(env: Mapping[str, str] | None = None) -> Path:
    """The admin token file a local `floe server` writes on first start."""
    return floe_home(env) / "admin-token"


def resolve_token(env: Mapping[str, str] | None = None) -> str:
    """`$FLOE_TOKEN`, else the contents of `$FLOE_HOME/admin-token`.

    The token itself never appears in an error message: only where it was looked for.
    """
    env = os.environ if env is None else env
    token = (env.get("FLOE_TOKEN") or "").strip()
    if token:
        return token
    path = token_file(env)
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise FloeConfigError(
            f"no API token: set FLOE_TOKEN or start `floe server` once so it writes {path}"
        ) from None
    except OSError as exc:
        raise FloeConfigError(f"cannot read the API token from {path}: {exc.strerror or exc}") from None
    if not token:
        raise FloeConfigError(f"the API token file {path} is empty: set FLOE_TOKEN")
    return token
