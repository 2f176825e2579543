"""The host's NVIDIA GPUs: which there are (`nvidia-smi -L`) and the device nodes that reach them.

A GPU is reached through its own character device `/dev/nvidia<minor>` plus the driver's
shared control devices (`nvidiactl`, `nvidia-uvm`, `nvidia-uvm-tools`, `nvidia-modeset`),
which every process using any GPU opens. A node is given GPUs by what its devices cgroup
lets it open (see host/cgroups.set_devices) and by which of these nodes it can see.

The device minor is usually the index nvidia-smi prints, but not always (it follows the
driver's probe order, the index the PCI order): the driver's own files under
/proc/driver/nvidia/gpus/ tell the minor of each UUID where they exist.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from floe.host import commands
from floe.host.errors import HostError

log = logging.getLogger("floe.host.gpus")

DEFAULT_NVIDIA_SMI = "nvidia-smi"
DEFAULT_DEVICE_DIR = "/dev"
CONTROL_DEVICES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")
DRIVER_GPUS_DIR = Path("/proc/driver/nvidia/gpus")
# nvidia-smi hangs for long on a wedged driver; discovery must not hang floe with it.
SMI_TIMEOUT = 30.0

# "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5c9a…)"; MIG devices are indented lines and are skipped.
_LINE = re.compile(r"^GPU (\d+): (.*?) \(UUID: (GPU-[0-9A-Za-z-]+)\)\s*$")


@dataclass(frozen=True)
class Device:
    """A character device node of the GPU driver: its path and its device number."""

    path: str
    major: int
    minor: int

    @property
    def rule(self) -> str:
        """The devices-cgroup rule to deny opening exactly this device.

        Read and write only, not mknod ("m"): runc allows every container "c *:* m", which
        the kernel refuses in a cgroup whose parent denies any char device "m"; a device
        node that cannot be opened is harmless.
        """
        return f"c {self.major}:{self.minor} rw"


@dataclass(frozen=True)
class FoundGPU:
    """One GPU of `nvidia-smi -L` with its device node."""

    index: int
    uuid: str
    model: str
    device: str


def parse_list(text: str) -> list[tuple[int, str, str]]:
    """(index, model, uuid) of every GPU line of `nvidia-smi -L` output, in its order."""
    found = []
    for line in text.splitlines():
        if m := _LINE.match(line.rstrip()):
            found.append((int(m.group(1)), m.group(2).strip(), m.group(3)))
    return found


def _driver_minors() -> dict[str, int]:
    """UUID → device minor from the driver's /proc files (empty where there are none)."""
    minors: dict[str, int] = {}
    try:
        entries = list(DRIVER_GPUS_DIR.iterdir())
    except OSError:
        return minors
    for entry in entries:
        try:
            text = (entry / "information").read_text()
        except OSError:
            continue
        uuid = re.search(r"^GPU UUID:\s*(\S+)", text, re.M)
        minor = re.search(r"^Device Minor:\s*(\d+)", text, re.M)
        if uuid and minor:
            minors[uuid.group(1)] = int(minor.group(1))
    return minors


def char_device(path: str | Path) -> Device | None:
    """The device number of a character device node, None if `path` is not one."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISCHR(st.st_mode):
        return None
    return Device(str(path), os.major(st.st_rdev), os.minor(st.st_rdev))


def discover(nvidia_smi: str = DEFAULT_NVIDIA_SMI, device_dir: str | Path = DEFAULT_DEVICE_DIR) -> list[FoundGPU]:
    """The host's GPUs in index order; [] without nvidia-smi, when it fails, or with no GPU.

    A GPU whose device node is missing (or not a character device) is left out: a node
    could not be given it.
    """
    program = commands.which(nvidia_smi)
    if program is None:
        return []
    try:
        proc = commands.run([program, "-L"], check=False, timeout=SMI_TIMEOUT)
    except HostError as exc:
        log.warning("GPU discovery: %s", exc)
        return []
    if proc.returncode != 0:
        # "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver": no GPUs to give.
        detail = (proc.stderr or proc.stdout).strip()
        log.warning("GPU discovery: %s -L exited %d: %s", program, proc.returncode, detail)
        return []
    minors = _driver_minors()
    gpus: list[FoundGPU] = []
    for index, model, uuid in parse_list(proc.stdout):
        path = Path(device_dir, f"nvidia{minors.get(uuid, index)}")
        if char_device(path) is None:
            log.warning("GPU discovery: %s (%s) has no device node %s; left out", uuid, model, path)
            continue
        gpus.append(FoundGPU(index, uuid, model, str(path)))
    return gpus


def control_devices(device_dir: str | Path = DEFAULT_DEVICE_DIR) -> list[Device]:
    """The driver's shared devices that exist in `device_dir` (nvidiactl, nvidia-uvm, …)."""
    found = []
    for name in CONTROL_DEVICES:
        device = char_device(Path(device_dir, name))
        if device is not None:
            found.append(device)
    return found
