"""`floe cleanup --all`: remove everything a floe made on this host, with no server running."""

from __future__ import annotations

from floe.config import Settings


def purge_all_local(
    settings: Settings | None = None, host_wide: bool = False, delete_share_data: bool = False
) -> list[str]:
    """Everything of this FLOE_HOME (monitoring daemons, clusters, registry, infra network); with `host_wide`, every
    floe object on the host whatever home it came from.

    Shares are taken offline (their mounts and loop devices go) but their data stays, ready for
    the next server, unless `delete_share_data`. Clusters go first: the provider unmounts the
    shares attached to them and never deletes through a mount.
    """
    from floe import storage
    from floe.monitoring.stack import purge_host as purge_monitoring
    from floe.server import local_provider

    settings = settings or Settings.from_env()
    # floe's Prometheus and Alertmanager first: they would only scrape what goes next.
    removed = purge_monitoring(settings.home, host_wide=host_wide)
    removed += local_provider(settings).purge_all(only_this_home=not host_wide)
    return removed + storage.purge_host(settings.home, delete_data=delete_share_data)
