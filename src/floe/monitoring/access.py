"""Who may scrape floe: its own monitoring, by a bearer token kept in FLOE_HOME.

floe's `/metrics`, the service-discovery endpoint and every node target behind it answer only
a request carrying `Authorization: Bearer <token>`, where the token is the one in
`$FLOE_HOME/monitoring/scrape-token` (0600, made on first use). The Prometheus that
`floe monitoring up` runs reads it with `credentials_file`; nothing else is given it.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path


def scrape_token_path(home: Path) -> Path:
    return Path(home) / "monitoring" / "scrape-token"


def scrape_token(home: Path) -> str:
    """The scrape token, made (0600, in a 0700 directory) the first time it is asked for."""
    path = scrape_token_path(home)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    token = secrets.token_urlsafe(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    try:
        os.link(tmp, path)  # first writer wins when two processes race
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()


def scrape_allowed(home: Path, authorization: str | None) -> bool:
    """Whether an `Authorization` header value carries the scrape token."""
    if not authorization:
        return False
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return False
    return hmac.compare_digest(value.strip().encode(), scrape_token(home).encode())
