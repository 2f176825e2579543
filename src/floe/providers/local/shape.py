"""A local node's flavor and GPUs made real before it starts: cgroups and pinned CPUs, its
/proc/meminfo, its disk image, and the GPU devices it may not reach (docs/flavors-local.md)."""

from __future__ import annotations

import logging

from floe.host import cgroups, commands, gpus
from floe.providers.base import GPUDevice, NodeSpec, ProviderError
from floe.providers.local import node

log = logging.getLogger("floe.provider")


def check(spec: NodeSpec, host_gpus: list[GPUDevice]) -> list[GPUDevice]:
    """The host's records of the node's GPUs; ProviderError, before anything changes, for a bad shape."""
    if spec.disk_gb is not None and (not isinstance(spec.disk_gb, int) or spec.disk_gb < 0):
        raise ProviderError(f"node {spec.name}: invalid disk size {spec.disk_gb!r} (whole GB, 0 for none)")
    if not spec.gpus:
        return []
    uuids = [g.uuid for g in spec.gpus]
    if len(set(uuids)) != len(uuids):
        raise ProviderError(f"node {spec.name}: a GPU is given twice ({', '.join(uuids)})")
    host = {g.uuid: g for g in host_gpus}
    missing = [u for u in uuids if u not in host]
    if missing:
        raise ProviderError(
            f"node {spec.name}: GPU {', '.join(missing)} is not on this host "
            f"(it has {', '.join(host) or 'no GPU'})"
        )
    if not cgroups.has_devices_controller():
        raise ProviderError("this host cannot give a node GPUs of its own: it has no cgroup v1 devices controller")
    return [host[u] for u in uuids]


def masked_gpu_devices(host: list[GPUDevice], own: list[GPUDevice], device_dir: str) -> list[gpus.Device]:
    """The host's GPU devices a node with GPUs `own` must not reach (the control devices too if it has none)."""
    if not host:
        return []
    mine = {g.device for g in own}
    masked = [gpus.char_device(g.device) for g in host if g.device not in mine]
    if not own:
        masked += gpus.control_devices(device_dir)
    return [d for d in masked if d is not None]


def prepare(
    spec: NodeSpec, paths: node.NodePaths, cgroup: str, own: list[GPUDevice], masked: list[gpus.Device]
) -> tuple[list[str], node.NodeShape]:
    """A node about to start gets its flavor and GPUs: cgroups, CPUs, meminfo, disk, device masks.

    Returns the cgroup.procs files its daemons join and what launch must do in its namespace.
    """
    # A fresh cgroup: device rules can only be added (an old one may deny the GPUs it has now).
    if not cgroups.remove(cgroup):
        raise ProviderError(f"cgroups of node {spec.cluster_tag}/{spec.name} are still busy", temporary=True)
    pinned = cgroups.choose_cpus(cgroup, spec.cpus)
    procs = cgroups.prepare(cgroup, spec.cpus, spec.memory_mb, pinned)
    if masked and not cgroups.set_devices(cgroup, [d.rule for d in masked]):
        if own:
            raise ProviderError(f"cannot confine the GPU devices of node {spec.cluster_tag}/{spec.name}")
        log.warning("node %s/%s: no devices cgroup; other GPUs are only hidden from it", spec.cluster_tag,
                    spec.name)
    binds: list[tuple[str, str]] = []
    if meminfo := node.write_meminfo(paths, spec.memory_mb):
        binds.append((str(meminfo), "/proc/meminfo"))
    binds += [("/dev/null", d.path) for d in masked]
    xdg = None
    if own and commands.which(node.NVIDIA_RUNTIME):
        config, host_config = node.write_nvidia_config(paths)
        xdg = paths.xdg_config
        if host_config:
            binds.append((str(config), host_config))
    # The image of a node that died a moment ago may still be on its loop device: mounting it
    # again through a second one would put two filesystems on one image.
    if left := node.wait_loops_released(paths.dir):
        raise ProviderError(
            f"the disk of node {spec.cluster_tag}/{spec.name} is still in use ({', '.join(left)})", temporary=True
        )
    image = node.ensure_disk(paths, spec.disk_gb)
    every_cpu = pinned == cgroups.host_cpus()
    return procs, node.NodeShape(
        cpus=() if every_cpu else tuple(pinned), disk_image=image, binds=tuple(binds), xdg_config=xdg
    )
