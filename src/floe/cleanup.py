"""`floe cleanup --all`: remove everything floe made on this host, with no server running."""

from __future__ import annotations

from floe.config import Settings


def purge_all_local(settings: Settings | None = None) -> list[str]:
    from floe.server import local_provider

    settings = settings or Settings.from_env()
    return local_provider(settings).purge_all()
