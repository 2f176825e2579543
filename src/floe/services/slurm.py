"""What the stock Slurm clients need to use a Slurm cluster from the floe host (`floe cluster config`)."""

from __future__ import annotations

from floe.errors import Conflict
from floe.providers.base import ProviderWithNodeProcesses
from floe.runtime import Runtime
from floe.services.clusters import find_cluster
from floe.services.identity import Caller


def slurm_client_config(runtime: Runtime, caller: Caller, ident: str) -> dict[str, str]:
    """The cluster's slurm.conf (it names the munge socket of the cluster's munged on this host)."""
    with runtime.db.session() as s:
        cluster = find_cluster(s, caller, ident)
        name, coe, tag, status = cluster.name, cluster.coe, cluster.host_tag, cluster.status
    if coe != "slurm":
        raise Conflict(f"cluster {name} runs {coe}, not Slurm: use its Docker TLS bundle")
    provider = runtime.provider
    if not isinstance(provider, ProviderWithNodeProcesses):
        raise Conflict("this floe server's infra provider runs no Slurm daemons")
    conf = provider.cluster_files_dir(tag, create=False) / "slurm.conf"
    try:
        text = conf.read_text()
    except FileNotFoundError:
        raise Conflict(f"cluster {name} has no Slurm configuration yet (status {status})") from None
    return {"slurm_conf": text, "cluster_files": str(conf.parent)}
