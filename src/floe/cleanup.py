"""`floe cleanup --all`: remove everything a floe made on this host, with no server running."""

from __future__ import annotations

from floe.config import Settings


def purge_all_local(settings: Settings | None = None, host_wide: bool = False) -> list[str]:
    """Everything of this FLOE_HOME (clusters, registry, infra network); with `host_wide`, every
    floe object on the host whatever home it came from."""
    from floe.server import local_provider

    settings = settings or Settings.from_env()
    return local_provider(settings).purge_all(only_this_home=not host_wide)
