"""Where the client finds the floe server and the token it authenticates with.

The token comes from, in order: `$FLOE_TOKEN`; the login `floe login` stored for this FLOE_URL
(`$XDG_CONFIG_HOME/floe/login.json`, default `~/.config/floe/login.json`, mode 0600); the admin
token a local `floe server` wrote to `$FLOE_HOME/admin-token`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


def login_file(env: Mapping[str, str] | None = None) -> Path:
    """Where `floe login` keeps its token: `$XDG_CONFIG_HOME/floe/login.json` (~/.config by default).

    Not under FLOE_HOME: that is the server's state, and a user logs in from anywhere.
    """
    env = os.environ if env is None else env
    base = (env.get("XDG_CONFIG_HOME") or "").strip()
    if base:
        return Path(base).expanduser() / "floe" / "login.json"
    home = env.get("HOME")
    return (Path(home) if home else Path.home()) / ".config" / "floe" / "login.json"


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time as Keystone writes it (`...Z`) to an aware datetime; None if absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def show_time(when: datetime | None) -> str:
    """A time for people: UTC to the second, or "never"."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if when else "never"


@dataclass(frozen=True)
class StoredLogin:
    """What `floe login` stored: the token and who it stands for (repr never shows the token)."""

    url: str
    token: str
    expires_at: datetime | None
    user: dict[str, Any]
    project: dict[str, Any] | None
    roles: list[str]
    method: str
    path: Path

    def __repr__(self) -> str:
        return f"StoredLogin(url={self.url!r}, user={self.user_name!r}, project={self.project_name!r})"

    @property
    def user_name(self) -> str:
        return str(self.user.get("name") or self.user.get("id") or "?")

    @property
    def project_name(self) -> str | None:
        return str(self.project.get("name") or self.project.get("id")) if self.project else None

    def expired(self, at: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (at or datetime.now(UTC))

    def describe(self) -> str:
        """`alice in project team at URL` (no secret)."""
        where = f" in project {self.project_name}" if self.project_name else " (no project)"
        return f"{self.user_name}{where} at {self.url}"


def load_login(env: Mapping[str, str] | None = None) -> StoredLogin | None:
    """The stored login, or None if there is none; FloeConfigError if the file is unreadable or broken."""
    path = login_file(env)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FloeConfigError(f"cannot read the stored login {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw)
        token = data["token"]
        url = data["url"]
        if not isinstance(token, str) or not token or not isinstance(url, str):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise FloeConfigError(f"the stored login {path} is damaged: run `floe login` again (or `floe logout`)"
                              ) from None
    return StoredLogin(
        url=url.rstrip("/"), token=token, expires_at=parse_time(data.get("expires_at")),
        user=data.get("user") if isinstance(data.get("user"), dict) else {},
        project=data.get("project") if isinstance(data.get("project"), dict) else None,
        roles=[str(r) for r in data.get("roles") or []], method=str(data.get("method") or ""), path=path,
    )


def save_login(data: dict[str, Any], env: Mapping[str, str] | None = None) -> Path:
    """Write the login atomically: directory 0700, file created 0600 (never readable by others, not even briefly)."""
    path = login_file(env)
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if directory.stat().st_mode & 0o077:
        directory.chmod(0o700)  # a directory made earlier with the umask's mode
    fd, tmp = tempfile.mkstemp(prefix=".login-", suffix=".tmp", dir=directory)  # mkstemp creates with 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)
            json.dump(data, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def forget_login(env: Mapping[str, str] | None = None) -> bool:
    """Remove the stored login; False if there was none."""
    try:
        login_file(env).unlink()
    except FileNotFoundError:
        return False
    return True


@dataclass(frozen=True)
class Credentials:
    """The token to send and where it came from: "env" (FLOE_TOKEN), "login" or "admin-file"."""

    token: str
    source: str
    login: StoredLogin | None = None
    path: Path | None = None

    def __repr__(self) -> str:
        return f"Credentials(source={self.source!r}, path={self.path!r})"


def resolve_credentials(env: Mapping[str, str] | None = None) -> Credentials:
    """`$FLOE_TOKEN`, else the login stored for this FLOE_URL, else `$FLOE_HOME/admin-token`.

    An expired stored login is an error, not a reason to fall back to the admin token: a user
    who logged in as someone must not silently act as someone else. No token ever appears in
    an error message: only where it was looked for.
    """
    env = os.environ if env is None else env
    token = (env.get("FLOE_TOKEN") or "").strip()
    if token:
        return Credentials(token, "env")
    login = load_login(env)
    if login is not None and login.url == resolve_url(env):
        if login.expired():
            raise FloeConfigError(
                f"your login as {login.describe()} expired at {show_time(login.expires_at)}: run `floe login` "
                f"(or `floe logout` to forget it)")
        return Credentials(login.token, "login", login=login, path=login.path)
    path = token_file(env)
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise FloeConfigError(
            f"no API token: run `floe login`, set FLOE_TOKEN, or start `floe server` once so it writes {path}"
        ) from None
    except OSError as exc:
        raise FloeConfigError(f"cannot read the API token from {path}: {exc.strerror or exc}") from None
    if not token:
        raise FloeConfigError(f"the API token file {path} is empty: set FLOE_TOKEN or run `floe login`")
    return Credentials(token, "admin-file", path=path)


def resolve_token(env: Mapping[str, str] | None = None) -> str:
    """The token to send (see resolve_credentials for the order)."""
    return resolve_credentials(env).token
