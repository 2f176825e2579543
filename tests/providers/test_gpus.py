"""GPUs on the local provider: discovery, one node per GPU, Swarm placing GPU tasks.

This machine has no GPU. The GPUs here are FAKES: a shell script that prints what
`nvidia-smi -L` prints on a 3-GPU host, and character device nodes made with mknod
(major 195, the NVIDIA driver's) in a temporary directory given as FLOE_GPU_DEVICE_DIR.
With no driver behind them, opening one that the devices cgroup lets through fails with
ENXIO, one it denies with EPERM: that is how exclusivity is checked. Everything else is
real: namespaces, cgroups, dockerd, Swarm. Needs root and LocalProvider.check(); skipped
otherwise. Uses only 10.172.0.0/16 and its own temporary home, and removes all it made.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import subprocess
import tarfile
import time
from dataclasses import replace
from pathlib import Path

import docker
import pytest
from docker.types import EndpointSpec, Resources, ServiceMode

from floe import pki
from floe.host import cgroups, commands, gpus
from floe.providers.base import GPUDevice, NetworkSpec, NodeSpec, ProviderError, TLSMaterial
from floe.providers.local import LocalProvider, naming
from floe.providers.local import node as node_module
from tests.providers.test_local import _traces

INFRA = "10.172.0.0/24"
IMAGE = "floe-box:1"
UUIDS = [f"GPU-{i}a1b2c3d-0000-1111-2222-33334444555{i}" for i in range(3)]
NVIDIA_MAJOR = 195
UVM_MAJOR = 510  # dynamic on a real host; any major no driver uses will do for a fake

SMI_OUTPUT = "".join(f"GPU {i}: NVIDIA H100 80GB HBM3 (UUID: {u})\n" for i, u in enumerate(UUIDS)) + (
    "  MIG 1g.10gb     Device  0: (UUID: MIG-0f3e7d2c-aaaa-bbbb-cccc-ddddeeeeffff)\n"
)

pytestmark = pytest.mark.timeout(300)


def _fake_smi(directory: Path, output: str, status: int = 0) -> Path:
    script = directory / "nvidia-smi"
    (directory / "smi-output").write_text(output)
    script.write_text(f'#!/bin/sh\n[ "$1" = "-L" ] || exit 2\ncat "{directory}/smi-output"\nexit {status}\n')
    script.chmod(0o755)
    return script


def _fake_devices(directory: Path, count: int) -> Path:
    """Fake NVIDIA device nodes (no driver behind them)."""
    directory.mkdir(parents=True, exist_ok=True)
    nodes = {f"nvidia{i}": (NVIDIA_MAJOR, i) for i in range(count)}
    nodes |= {"nvidiactl": (NVIDIA_MAJOR, 255), "nvidia-modeset": (NVIDIA_MAJOR, 254),
              "nvidia-uvm": (UVM_MAJOR, 0), "nvidia-uvm-tools": (UVM_MAJOR, 1)}
    for name, (major, minor) in nodes.items():
        os.mknod(directory / name, stat.S_IFCHR | 0o666, os.makedev(major, minor))
    return directory


@pytest.fixture(scope="module")
def fakes(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("fake-gpus")
    return _fake_smi(base, SMI_OUTPUT), _fake_devices(base / "dev", len(UUIDS))


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("floe-gpus")


@pytest.fixture(scope="module")
def made_tags() -> set[str]:
    return set()


@pytest.fixture(scope="module")
def provider(home, fakes, made_tags):
    smi, devdir = fakes
    prov = LocalProvider(home, INFRA, nvidia_smi=str(smi), gpu_device_dir=str(devdir))
    try:
        prov.check()
    except ProviderError as exc:
        pytest.skip(f"local provider cannot run here: {exc}")
    if not cgroups.has_devices_controller():
        pytest.skip("no cgroup v1 devices controller")
    yield prov
    for tag in made_tags:
        prov.purge_cluster(tag)
    prov.purge_all(only_this_home=True)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def ca() -> tuple[str, str]:
    return pki.new_ca("floe-gpus-ca")


# -- discovery --------------------------------------------------------------------


def test_nvidia_smi_list_is_parsed():
    assert gpus.parse_list(SMI_OUTPUT) == [(i, "NVIDIA H100 80GB HBM3", u) for i, u in enumerate(UUIDS)]
    assert gpus.parse_list("No devices were found\n") == []
    assert gpus.parse_list("") == []


def test_discovery_finds_the_fake_gpus(provider, fakes):
    _, devdir = fakes
    found = provider.host_gpus()
    assert found == [
        GPUDevice(index=i, uuid=u, device=f"{devdir}/nvidia{i}", model="NVIDIA H100 80GB HBM3")
        for i, u in enumerate(UUIDS)
    ]
    assert [d.path for d in gpus.control_devices(devdir)] == [
        f"{devdir}/{n}" for n in ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")
    ]


def test_no_nvidia_smi_or_a_failing_one_means_no_gpus(home, fakes, tmp_path):
    _, devdir = fakes
    assert LocalProvider(home, INFRA, nvidia_smi=str(tmp_path / "absent"), gpu_device_dir=str(devdir)).host_gpus() == []
    broken = _fake_smi(tmp_path, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n", 9)
    assert gpus.discover(str(broken), devdir) == []
    # A GPU without its device node cannot be given to a node: left out.
    (tmp_path / "more").mkdir()
    fourth = "GPU 3: NVIDIA H100 (UUID: GPU-ffffffff-0000-1111-2222-333344445555)\n"
    extra = _fake_smi(tmp_path / "more", SMI_OUTPUT + fourth)
    assert [g.uuid for g in gpus.discover(str(extra), devdir)] == UUIDS


def test_settings_read_the_gpu_variables(monkeypatch, tmp_path):
    from floe.config import Settings
    from floe.server import local_provider

    monkeypatch.setenv("FLOE_NVIDIA_SMI", "/opt/nvidia/bin/nvidia-smi")
    monkeypatch.setenv("FLOE_GPU_DEVICE_DIR", str(tmp_path))
    settings = Settings.from_env(home=tmp_path)
    assert (settings.nvidia_smi, settings.gpu_device_dir) == ("/opt/nvidia/bin/nvidia-smi", str(tmp_path))
    built = local_provider(settings)
    assert (built.nvidia_smi, built.gpu_device_dir) == ("/opt/nvidia/bin/nvidia-smi", str(tmp_path))
    monkeypatch.setenv("FLOE_GPU_DEVICE_DIR", "dev")
    with pytest.raises(ValueError, match="FLOE_GPU_DEVICE_DIR"):
        Settings.from_env(home=tmp_path)


def test_nvidia_runtime_config_and_daemon_json(monkeypatch, tmp_path):
    """The nvidia runtime is not installed here: a stand-in on PATH shows what daemon.json gets."""
    (tmp_path / "bin").mkdir()
    runtime = tmp_path / "bin" / "nvidia-container-runtime"
    runtime.write_text("#!/bin/sh\nexit 1\n")
    runtime.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    host_config = tmp_path / "config.toml"
    host_config.write_text('#swarm-resource = "DOCKER_RESOURCE_GPU"\nswarm-resource = "X"\n\n'
                           '[nvidia-container-cli]\nldconfig = "@/sbin/ldconfig"\n')
    monkeypatch.setattr(node_module, "NVIDIA_RUNTIME_CONFIG", str(host_config))
    paths = node_module.NodePaths(tmp_path / "node", "gpu-x")
    paths.dir.mkdir()
    written, target = node_module.write_nvidia_config(paths)
    assert target == str(host_config) and written == paths.xdg_config / "nvidia-container-runtime" / "config.toml"
    lines = written.read_text().splitlines()
    assert lines[0] == 'swarm-resource = "DOCKER_RESOURCE_NVIDIA-GPU"'
    assert 'swarm-resource = "X"' not in lines and '[nvidia-container-cli]' in lines

    net = NetworkSpec("0000aaaa", "mgmt", "10.172.9.0/24", "10.172.9.1")
    gpu = GPUDevice(0, UUIDS[0], "/dev/nvidia0")
    spec = NodeSpec("0000aaaa", "gpu-x", "10.172.9.2", net, "10.172.90.0/23", TLSMaterial("", "", ""), gpus=(gpu,))
    config = node_module.daemon_config(spec, paths, "floe-0000aaaa-gpu-x")
    assert config["node-generic-resources"] == [f"NVIDIA-GPU={UUIDS[0]}"]
    assert config["runtimes"] == {"nvidia": {"path": str(runtime)}} and config["default-runtime"] == "nvidia"
    plain = node_module.daemon_config(NodeSpec("0000aaaa", "cpu-x", "10.172.9.3", net, "10.172.92.0/23",
                                               TLSMaterial("", "", "")), paths, "floe-0000aaaa-cpu-x")
    assert "node-generic-resources" not in plain and "runtimes" not in plain


def test_a_gpu_not_on_the_host_is_refused_before_anything_changes(provider, ca, made_tags):
    tag = secrets.token_hex(4)
    made_tags.add(tag)
    net = NetworkSpec(tag, "mgmt", "10.172.8.0/24", "10.172.8.1")
    base = NodeSpec(tag, "gpu-z", "10.172.8.2", net, "10.172.80.0/23", TLSMaterial("", "", ""))
    for given in ((GPUDevice(7, "GPU-not-here", "/dev/nvidia7"),),
                  (GPUDevice(0, UUIDS[0], "x"), GPUDevice(0, UUIDS[0], "x"))):
        with pytest.raises(ProviderError, match="not on this host|given twice"):
            provider.start_node(replace(base, gpus=given))
    assert not (provider.nodes_dir / tag).exists() and _traces(provider, tag) == []


# -- nodes ------------------------------------------------------------------------------


def _box(tmp_path_factory) -> Path:
    archive = tmp_path_factory.mktemp("gpu-box") / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(commands.binary("busybox"), arcname="bin/busybox")
        for applet in ("sh", "cat", "sleep", "stat", "env"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    return archive


@pytest.fixture(scope="module")
def cluster(provider, ca, made_tags, tmp_path_factory):
    """A manager without GPU and two workers with one GPU each (GPU 2 stays free)."""
    tag = secrets.token_hex(4)
    made_tags.add(tag)
    net = NetworkSpec(tag, "mgmt", "10.172.2.0/24", "10.172.2.1")
    host = provider.host_gpus()
    nodes = {"mgr-0": (), "gpu-a": (host[0],), "gpu-b": (host[1],)}
    specs, infos, clients = {}, {}, {}
    archive = _box(tmp_path_factory)
    for i, (name, given) in enumerate(nodes.items()):
        address = f"10.172.2.{i + 2}"
        cert, key = pki.issue_server_cert(ca[0], ca[1], name, ips=[address], dns=[name])
        specs[name] = NodeSpec(tag, name, address, net, f"10.172.{64 + 2 * i}.0/23",
                               TLSMaterial(ca[0], cert, key), gpus=given, cpus=1.0, memory_mb=512)
        infos[name] = provider.start_node(specs[name])
        clients[name] = provider.docker_client(infos[name])
        clients[name].api.import_image(src=str(archive), repository="floe-box", tag="1")
    return {"tag": tag, "net": net, "specs": specs, "infos": infos, "clients": clients}


def _rdev(path: str) -> tuple[int, int]:
    st = os.stat(path)
    assert stat.S_ISCHR(st.st_mode), path
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def test_each_node_sees_only_its_own_gpu(cluster, fakes):
    _, devdir = fakes
    null = (1, 3)
    expected = {
        "gpu-a": {"nvidia0": (195, 0), "nvidia1": null, "nvidia2": null, "nvidiactl": (195, 255),
                  "nvidia-uvm": (UVM_MAJOR, 0)},
        "gpu-b": {"nvidia0": null, "nvidia1": (195, 1), "nvidia2": null, "nvidiactl": (195, 255)},
        "mgr-0": {"nvidia0": null, "nvidia1": null, "nvidia2": null, "nvidiactl": null, "nvidia-uvm": null},
    }
    for name, devices in expected.items():
        root = f"/proc/{cluster['infos'][name].pid}/root"
        for device, number in devices.items():
            assert _rdev(f"{root}{devdir}/{device}") == number, (name, device)
    # The host's view is untouched.
    assert _rdev(f"{devdir}/nvidia1") == (195, 1)


def _open_in_cgroup(cgroup: str, path: str, leaf: str = cgroups.DAEMON_LEAF) -> str:
    """Open `path` from a process in the node's devices cgroup; the error says who refused."""
    procs = f"/sys/fs/cgroup/devices/{cgroup}/{leaf}/cgroup.procs".replace("//", "/")
    out = subprocess.run(["sh", "-c", 'echo $$ > "$1" && exec cat "$2"', "sh", procs, path],
                         capture_output=True, text=True, timeout=10)
    return out.stderr


def test_devices_cgroup_lets_a_node_open_only_its_own_gpu(cluster, fakes):
    _, devdir = fakes
    allowed = "No such device or address"  # through the cgroup, to a driver that is not there
    denied = "Operation not permitted"
    own = {"gpu-a": {"nvidia0"}, "gpu-b": {"nvidia1"}, "mgr-0": set()}
    for name, mine in own.items():
        cgroup = naming.cgroup_name(cluster["tag"], name)
        for device in ("nvidia0", "nvidia1", "nvidia2", "nvidiactl", "nvidia-uvm"):
            control = not device[-1].isdigit()
            want = allowed if device in mine or (control and mine) else denied
            assert want in _open_in_cgroup(cgroup, f"{devdir}/{device}"), (name, device)


def test_a_container_gets_its_node_gpu_and_no_other(cluster, fakes):
    _, devdir = fakes
    client = cluster["clients"]["gpu-a"]
    out = client.containers.run(
        IMAGE, ["sh", "-c", "cat /dev/nvidia0 2>&1; true"], devices=[f"{devdir}/nvidia0:/dev/nvidia0:rwm"], remove=True
    )
    assert b"No such device or address" in out
    # Another node's GPU cannot be granted: the node's cgroup denies it to every container in it.
    with pytest.raises(docker.errors.APIError, match="(?i)operation not permitted|devices"):
        client.containers.run(IMAGE, ["true"], device_cgroup_rules=["c 195:1 rwm"], remove=True)
    # What the node has at that path is /dev/null.
    out = client.containers.run(IMAGE, ["stat", "-c", "%t:%T", "/dev/nvidia1"],
                                devices=[f"{devdir}/nvidia1:/dev/nvidia1:rwm"], remove=True)
    assert out.strip() == b"1:3"
    # Not even a privileged container: runc gives one an allow-all devices cgroup ("a" written to
    # devices.allow), done here by hand because this sandbox cannot run privileged containers
    # (its capability bounding set lacks CAP_SYS_RESOURCE).
    cgroup = naming.cgroup_name(cluster["tag"], "gpu-a")
    child = Path(f"/sys/fs/cgroup/devices/{cgroup}/privileged-probe")
    child.mkdir()
    try:
        (child / "devices.allow").write_text("a")
        probe = f"{cgroup}/privileged-probe"
        assert "No such device or address" in _open_in_cgroup(probe, f"{devdir}/nvidia0", leaf="")
        assert "Operation not permitted" in _open_in_cgroup(probe, f"{devdir}/nvidia1", leaf="")
    finally:
        child.rmdir()
    # A node without GPUs runs containers as usual.
    assert cluster["clients"]["mgr-0"].containers.run(IMAGE, ["sh", "-c", "echo ok"], remove=True) == b"ok\n"


def test_daemon_json_advertises_the_node_gpus(provider, cluster):
    for name, spec in cluster["specs"].items():
        config = json.loads(provider._node_paths(cluster["tag"], name).config.read_text())
        assert config.get("node-generic-resources", []) == [f"NVIDIA-GPU={g.uuid}" for g in spec.gpus]
        if commands.which(node_module.NVIDIA_RUNTIME) is None:
            assert "runtimes" not in config


def _wait_tasks(service, predicate, timeout: float = 60.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        tasks = [t for t in service.tasks() if t["DesiredState"] == "running"]
        if predicate(tasks) or time.monotonic() > deadline:
            return tasks
        time.sleep(0.3)


def test_swarm_places_gpu_tasks_on_gpu_nodes_only(cluster):
    specs, clients = cluster["specs"], cluster["clients"]
    mgr = clients["mgr-0"]
    address = specs["mgr-0"].address
    mgr.swarm.init(advertise_addr=address, listen_addr=f"{address}:2377",
                   default_addr_pool=["10.172.192.0/20"], subnet_size=24)
    token = mgr.swarm.attrs["JoinTokens"]["Worker"]
    for name in ("gpu-a", "gpu-b"):
        addr = specs[name].address
        assert clients[name].swarm.join(remote_addrs=[f"{address}:2377"], join_token=token,
                                        listen_addr=f"{addr}:2377", advertise_addr=addr)
    ids = {}
    for n in mgr.nodes.list():
        ids[n.attrs["Description"]["Hostname"]] = n.id
        advertised = n.attrs["Description"]["Resources"].get("GenericResources") or []
        named = [r["NamedResourceSpec"]["Value"] for r in advertised if "NamedResourceSpec" in r]
        assert named == [g.uuid for g in specs[n.attrs["Description"]["Hostname"]].gpus]
        # And the flavor: one CPU, 512 MiB (from the node's pinning and its /proc/meminfo).
        assert n.attrs["Description"]["Resources"]["NanoCPUs"] == 10**9
        assert n.attrs["Description"]["Resources"]["MemoryBytes"] == 512 << 20

    one = mgr.services.create(
        IMAGE, ["sleep", "600"], name="gpu-one", mode=ServiceMode("replicated", replicas=3),
        resources=Resources(generic_resources={"NVIDIA-GPU": 1}), endpoint_spec=EndpointSpec(mode="dnsrr"),
    )
    tasks = _wait_tasks(one, lambda ts: sum(t["Status"]["State"] == "running" for t in ts) == 2)
    running = [t for t in tasks if t["Status"]["State"] == "running"]
    assert sorted(t["NodeID"] for t in running) == sorted([ids["gpu-a"], ids["gpu-b"]]), tasks
    # Three tasks, two GPUs in the swarm: the third waits.
    waiting = [t for t in tasks if t["Status"]["State"] == "pending"]
    assert len(waiting) == 1 and "insufficient resources" in waiting[0]["Status"].get("Err", ""), tasks
    # Each task got its node's GPU.
    for name in ("gpu-a", "gpu-b"):
        (box,) = clients[name].containers.list(filters={"label": "com.docker.swarm.service.name=gpu-one"})
        env = box.attrs["Config"]["Env"]
        assert f"DOCKER_RESOURCE_NVIDIA-GPU={specs[name].gpus[0].uuid}" in env, env

    two = mgr.services.create(
        IMAGE, ["sleep", "600"], name="gpu-two", resources=Resources(generic_resources={"NVIDIA-GPU": 2}),
        endpoint_spec=EndpointSpec(mode="dnsrr"),
    )
    time.sleep(5)
    tasks = _wait_tasks(two, lambda ts: bool(ts), timeout=10)
    assert tasks and all(t["Status"]["State"] == "pending" for t in tasks), tasks
    assert "insufficient resources" in tasks[0]["Status"].get("Err", "")
    for service in (one, two):
        service.remove()


def test_stop_leaves_nothing(provider, cluster):
    tag = cluster["tag"]
    for name in cluster["specs"]:
        provider.stop_node(tag, name)
    provider.delete_network(cluster["net"])
    assert _traces(provider, tag) == []
