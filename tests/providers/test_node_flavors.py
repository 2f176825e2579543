"""A local node gets exactly its flavor: CPUs (quota and pinning), memory (limit and meminfo), disk.

Real nodes (namespaces, dockerd, cgroups v1, loop-mounted ext4), no registry: the busybox
image is made here from busybox-static. Needs root and LocalProvider.check(); skipped
otherwise. Uses only 10.172.0.0/16 and its own temporary home, and removes all it made.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from floe import pki
from floe.host import cgroups, commands, processes
from floe.providers.base import NetworkSpec, NodeSpec, ProviderError, TLSMaterial
from floe.providers.local import LocalProvider, naming
from floe.providers.local import node as node_module
from tests.providers.test_local import _traces

INFRA = "10.172.0.0/24"
IMAGE = "floe-box:1"
GIB = 1 << 30
DISK_NODE = "disk-" + "x" * 58  # 63 characters, the longest DNS label

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("floe-flavors")


@pytest.fixture(scope="module")
def made_tags() -> set[str]:
    return set()


@pytest.fixture(scope="module")
def provider(home, made_tags):
    prov = LocalProvider(home, INFRA)
    try:
        prov.check()
    except ProviderError as exc:
        pytest.skip(f"local provider cannot run here: {exc}")
    if not cgroups.has_devices_controller() or not Path("/sys/fs/cgroup/cpuset/cpuset.cpus").exists():
        pytest.skip("these tests read cgroup v1 files")
    yield prov
    for tag in made_tags:
        prov.purge_cluster(tag)
    prov.purge_all(only_this_home=True)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def ca() -> tuple[str, str]:
    return pki.new_ca("floe-flavors-ca")


@pytest.fixture(scope="module")
def box_archive(tmp_path_factory) -> Path:
    """A busybox-static image as a rootfs tarball (the machine has no registry to pull from)."""
    archive = tmp_path_factory.mktemp("box") / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(commands.binary("busybox"), arcname="bin/busybox")
        for applet in ("sh", "dd", "cat", "sleep", "stat", "env"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    return archive


def _spec(tag: str, index: int, name: str, ca, **shape) -> NodeSpec:
    net = NetworkSpec(cluster_tag=tag, name="mgmt", subnet="10.172.1.0/24", gateway="10.172.1.1")
    address = f"10.172.1.{index + 2}"
    cert, key = pki.issue_server_cert(ca[0], ca[1], name, ips=[address], dns=[name])
    return NodeSpec(
        cluster_tag=tag, name=name, address=address, network=net, docker_pool=f"10.172.{64 + 2 * index}.0/23",
        tls=TLSMaterial(ca_pem=ca[0], cert_pem=cert, key_pem=key), **shape,
    )


def _client(provider, info, archive: Path):
    client = provider.docker_client(info)
    client.api.import_image(src=str(archive), repository=IMAGE.split(":")[0], tag=IMAGE.split(":")[1])
    return client


def _cgroup_file(controller: str, cgroup: str, name: str) -> Path:
    return Path(f"/sys/fs/cgroup/{controller}/{cgroup}/{name}")


def _dockerd_pid(cgroup: str) -> int:
    for pid in cgroups.members(cgroup):
        argv = processes.cmdline(pid)
        if argv and os.path.basename(argv[0]) == "dockerd":
            return pid
    raise AssertionError(f"no dockerd in {cgroup}")


@pytest.fixture(scope="module")
def cluster(provider, ca, made_tags):
    tag = secrets.token_hex(4)
    made_tags.add(tag)
    return {"tag": tag}


# -- without nodes ----------------------------------------------------------------


def test_meminfo_says_the_flavor_memory():
    host = "MemTotal:       24683520 kB\nMemFree:        23000000 kB\nMemAvailable:   23500000 kB\nBuffers: 1 kB\n"
    text = node_module.meminfo_text(host, 256)
    lines = dict(line.split(":", 1) for line in text.splitlines())
    assert lines["MemTotal"].split() == ["262144", "kB"]
    assert lines["MemFree"].split()[0] == lines["MemAvailable"].split()[0] == "262144"
    assert lines["Buffers"].strip() == "1 kB"
    # A flavor larger than the host: the node has the host's memory, no more.
    assert node_module.meminfo_text(host, 10**6).splitlines()[0].split()[1] == "24683520"


def test_cpus_are_chosen_within_the_host_and_spread():
    host = cgroups.host_cpus()
    assert host and set(host) <= set(range(os.cpu_count() or 1))
    assert cgroups.choose_cpus("floe-00000000-big", len(host) + 62) == host
    assert cgroups.choose_cpus("floe-00000000-any", None) == host
    assert len(cgroups.choose_cpus("floe-00000000-half", 0.5)) == 1
    if len(host) > 1:
        firsts = {cgroups.choose_cpus(f"floe-00000000-n{i}", 1)[0] for i in range(16)}
        assert len(firsts) > 1, "16 one-CPU nodes all hashed onto one CPU"
    assert cgroups.parse_cpu_list("0-2,5,7-8\n") == [0, 1, 2, 5, 7, 8]


def test_disk_image_is_made_sparse_fast_and_grows(tmp_path):
    paths = node_module.NodePaths(tmp_path / "n1", "n1")
    paths.dir.mkdir()
    started = time.monotonic()
    image = node_module.ensure_disk(paths, 20)
    elapsed = time.monotonic() - started
    print(f"\n20 GB disk image made in {elapsed:.3f}s, {image.stat().st_blocks * 512 >> 20} MiB allocated")
    assert image == paths.disk_image and image.stat().st_size == 20 * GIB
    assert image.stat().st_blocks * 512 < 64 << 20  # sparse: metadata only
    assert elapsed < 5
    assert not list(paths.dir.glob("*.partial"))
    # Again: kept as it is. Larger: grown (offline). Smaller: kept, never shrunk.
    assert node_module.ensure_disk(paths, 20) == image
    assert node_module.ensure_disk(paths, 21) == image and image.stat().st_size == 21 * GIB
    out = commands.run(["dumpe2fs", "-h", str(image)]).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    assert int(fields["Block count"]) * int(fields["Block size"]) == 21 * GIB
    assert node_module.ensure_disk(paths, 1) == image and image.stat().st_size == 21 * GIB
    assert node_module.ensure_disk(paths, None) == image  # the data lives there


def test_data_from_before_disks_stays_a_plain_directory(tmp_path):
    paths = node_module.NodePaths(tmp_path / "old", "old")
    (paths.data / "image").mkdir(parents=True)
    assert node_module.ensure_disk(paths, 5) is None
    assert not paths.disk_image.exists() and (paths.data / "image").is_dir()
    assert node_module.ensure_disk(node_module.NodePaths(tmp_path / "none", "none"), None) is None


def test_bad_disk_size_is_refused_before_anything_changes(provider, cluster, ca):
    spec = _spec(cluster["tag"], 9, "bad-disk", ca, disk_gb=-1)
    with pytest.raises(ProviderError, match="disk size"):
        provider.start_node(spec)
    assert not (provider.nodes_dir / cluster["tag"]).exists()


# -- CPU and memory -----------------------------------------------------------------


@pytest.fixture(scope="module")
def small(provider, cluster, ca, box_archive):
    """A 1-vCPU, 256 MiB node."""
    spec = _spec(cluster["tag"], 0, "small-0", ca, cpus=1.0, memory_mb=256)
    info = provider.start_node(spec)
    return {"spec": spec, "info": info, "client": _client(provider, info, box_archive),
            "cgroup": naming.cgroup_name(cluster["tag"], spec.name)}


def test_docker_info_reports_the_flavor(small):
    facts = small["client"].info()
    assert facts["NCPU"] == 1
    assert abs(facts["MemTotal"] - 256 * (1 << 20)) < 1 << 20
    pinned = cgroups.parse_cpu_list(_cgroup_file("cpuset", small["cgroup"], "cpuset.cpus").read_text())
    assert len(pinned) == 1
    assert os.sched_getaffinity(_dockerd_pid(small["cgroup"])) == set(pinned)
    assert _cgroup_file("cpu", small["cgroup"], "cpu.cfs_quota_us").read_text().strip() == "100000"


def test_cpu_hog_gets_one_cpu(small):
    client = small["client"]
    hog = client.containers.run(IMAGE, ["sh", "-c", "while :; do :; done & while :; do :; done"], detach=True)
    try:
        usage = _cgroup_file("cpuacct", small["cgroup"], "cpuacct.usage")
        time.sleep(0.5)  # both loops running
        t0, u0 = time.monotonic(), int(usage.read_text())
        time.sleep(3)
        t1, u1 = time.monotonic(), int(usage.read_text())
        cpus = (u1 - u0) / 1e9 / (t1 - t0)
        print(f"\ntwo busy loops in a 1-vCPU node used {cpus:.2f} CPUs")
        assert 0.2 < cpus < 1.3
        # Its container sits in the node's cpuset, on the node's CPU.
        container_cpus = _cgroup_file("cpuset", f"{small['cgroup']}/{hog.id}", "cpuset.cpus").read_text()
        assert container_cpus == _cgroup_file("cpuset", small["cgroup"], "cpuset.cpus").read_text()
    finally:
        hog.remove(force=True)


def test_memory_hog_is_oom_killed_and_the_node_lives(small):
    client = small["client"]
    dockerd = _dockerd_pid(small["cgroup"])
    # dd reads 400 MiB into one buffer: more than the whole node has.
    hog = client.containers.run(IMAGE, ["dd", "if=/dev/zero", "of=/dev/null", "bs=400M", "count=1"], detach=True)
    try:
        status = hog.wait(timeout=60)["StatusCode"]
        hog.reload()
        assert status == 137 or hog.attrs["State"]["OOMKilled"], (status, hog.logs())
    finally:
        hog.remove(force=True)
    # The node's limit is what stopped it (the container's own cgroup has none).
    assert int(_cgroup_file("memory", small["cgroup"], "memory.failcnt").read_text()) > 0
    peak = int(_cgroup_file("memory", small["cgroup"], "memory.max_usage_in_bytes").read_text())
    assert peak <= (256 + 1) << 20  # (+ the kernel's charge batching)
    assert processes.running(dockerd) and client.ping()


def test_start_again_adopts_the_shaped_node(provider, small):
    started = time.monotonic()
    again = provider.start_node(small["spec"])
    assert again.pid == small["info"].pid and time.monotonic() - started < 1.0


# -- disk -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def disky(provider, cluster, ca, box_archive):
    """A node with a 1 GB disk, more vCPUs than the host has and the longest name; a mount under the nodes
    directory on the host (as another node's would be) that it must not keep."""
    foreign = provider.nodes_dir / cluster["tag"] / "zz-other" / "mnt"
    foreign.mkdir(parents=True)
    commands.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(foreign)])
    try:
        # The longest node name: its directory is shortened, the image and mounts follow it.
        spec = _spec(cluster["tag"], 1, DISK_NODE, ca, cpus=64.0, memory_mb=1024, disk_gb=1)
        started = time.monotonic()
        info = provider.start_node(spec)
        print(f"\nnode with a 1 GB disk started in {time.monotonic() - started:.2f}s")
    finally:
        commands.run(["umount", str(foreign)])
        shutil.rmtree(foreign.parent)
    return {"spec": spec, "info": info, "client": _client(provider, info, box_archive),
            "paths": provider._node_paths(cluster["tag"], spec.name)}


def _node_mounts(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/mountinfo").read_text().splitlines()


def test_data_root_is_a_1gb_filesystem_of_the_node(disky):
    paths, pid = disky["paths"], disky["info"].pid
    assert disky["client"].info()["DockerRootDir"] == str(paths.data)
    st = os.statvfs(f"/proc/{pid}/root{paths.data}")
    size = st.f_blocks * st.f_frsize
    print(f"\ndata-root of a 1 GB node: {size / GIB:.3f} GiB, {st.f_bavail * st.f_frsize / GIB:.3f} GiB free")
    assert 0.9 * GIB < size <= GIB
    # Mounted in the node only: the host sees an empty directory, and no other node's mount.
    assert not any(" ext4 " in line and str(paths.data) in line for line in _node_mounts(os.getpid()))
    node_view = _node_mounts(pid)
    assert any(f" {paths.data} " in line and " - ext4 " in line for line in node_view)
    assert not [line for line in node_view if "zz-other" in line]
    assert node_module.loops_under(paths.dir)
    # More vCPUs than the host: every CPU.
    assert disky["client"].info()["NCPU"] == len(cgroups.host_cpus())


def test_writing_past_the_disk_fails_with_enospc(disky):
    client = disky["client"]
    box = client.containers.run(IMAGE, ["dd", "if=/dev/zero", "of=/big", "bs=1M", "count=2048"], detach=True)
    try:
        status = box.wait(timeout=120)["StatusCode"]
        logs = box.logs().decode()
    finally:
        box.remove(force=True)
    assert status != 0 and "No space left on device" in logs, logs


def test_killed_disk_node_restarts_on_its_own_disk(provider, disky):
    client = disky["client"]
    client.volumes.create("kept")
    pid = disky["info"].pid
    processes.kill([pid])
    assert processes.wait_gone([pid])
    restarted = provider.start_node(disky["spec"])
    assert restarted.pid != pid
    assert len(node_module.loops_under(disky["paths"].dir)) == 1
    assert "kept" in [v.name for v in provider.docker_client(restarted).volumes.list()]
    disky["info"] = restarted


def test_stop_node_leaves_no_loop_mount_or_cgroup(provider, cluster, small, disky):
    tag = cluster["tag"]
    for spec in (small["spec"], disky["spec"]):
        provider.stop_node(tag, spec.name)
    assert node_module.loops_under(provider.nodes_dir / tag) == []
    out = subprocess.run(["losetup", "--list", "--noheadings"], capture_output=True, text=True).stdout
    assert str(provider.home) not in out
    provider.delete_network(small["spec"].network)
    assert _traces(provider, tag) == []


def test_purge_cluster_frees_the_disk_of_a_running_node(provider, ca, made_tags):
    tag = secrets.token_hex(4)
    made_tags.add(tag)
    provider.start_node(_spec(tag, 2, "purged-0", ca, disk_gb=1))
    assert node_module.loops_under(provider.nodes_dir / tag)
    removed = provider.purge_cluster(tag)
    assert any("process" in r for r in removed)
    assert node_module.loops_under(provider.nodes_dir / tag) == []
    assert _traces(provider, tag) == []
