"""The restricted node policy's decisions on request bodies, its plugin protocol and its setting.

Fast, no root: the plugin's rules (providers/local/authz.py) on the bodies the docker CLI and
SDKs send, and on the ones an attacker would send to slip past a naive check (dockerd decodes
JSON field names case-insensitively, reads HostConfig fields at the top level of a create,
matches percent-decoded paths, and applies a HostConfig on a start through API < 1.24).
tests/providers/test_node_policy.py runs the same against real dockerd.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from floe.config import Settings
from floe.providers.base import ProviderError
from floe.providers.local import LocalProvider, authz
from floe.server import local_provider

CREATE = "/v1.41/containers/create"


def _create(host_config: dict | None = None, **top) -> bytes:
    body: dict = {"Image": "busybox", "Cmd": ["true"], **top}
    if host_config is not None:
        body["HostConfig"] = host_config
    return json.dumps(body).encode()


def _service(container_spec: dict, **task) -> bytes:
    return json.dumps({"Name": "s", "TaskTemplate": {"ContainerSpec": {"Image": "busybox", **container_spec},
                                                     **task}}).encode()


REFUSED = [
    # (what, method, uri, body, a word of the reason)
    ("--privileged", "POST", CREATE, _create({"Privileged": True}), "privileged"),
    ("-v /:/host", "POST", CREATE, _create({"Binds": ["/:/host"]}), "bind mount of /"),
    ("-v /etc:/e:ro", "POST", CREATE, _create({"Binds": ["/etc:/e:ro"]}), "bind mount of /etc"),
    ("-v /mnt:/m", "POST", CREATE, _create({"Binds": ["/mnt:/m"]}), "bind mount of /mnt"),
    ("a directory inside a share", "POST", CREATE, _create({"Binds": ["/mnt/data/sub:/d"]}), "/mnt/data/sub"),
    ("/mnt/.. escapes", "POST", CREATE, _create({"Binds": ["/mnt/..:/d"]}), "bind mount"),
    ("/mnt/data/../../etc", "POST", CREATE, _create({"Binds": ["/mnt/data/../../etc:/d"]}), "bind mount"),
    ("--mount type=bind,src=/etc", "POST", CREATE,
     _create({"Mounts": [{"Type": "bind", "Source": "/etc", "Target": "/x"}]}), "bind mount of /etc"),
    ("a bind by volume options", "POST", CREATE,
     _create({"Mounts": [{"Type": "volume", "Source": "v", "Target": "/x", "VolumeOptions": {"DriverConfig": {
         "Name": "local", "Options": {"type": "none", "o": "bind", "device": "/"}}}}]}), "refused"),
    ("tmpfs type with o=bind", "POST", CREATE,
     _create({"Mounts": [{"Type": "volume", "Source": "v", "Target": "/x", "VolumeOptions": {"DriverConfig": {
         "Options": {"type": "tmpfs", "o": "bind", "device": "tmpfs"}}}}]}), "mount options"),
    ("an unknown mount type", "POST", CREATE, _create({"Mounts": [{"Type": "npipe", "Target": "/x"}]}), "npipe"),
    ("--cap-add SYS_ADMIN", "POST", CREATE, _create({"CapAdd": ["SYS_ADMIN"]}), "SYS_ADMIN"),
    ("--cap-add ALL", "POST", CREATE, _create({"CapAdd": ["ALL"]}), "ALL"),
    ("--cap-add cap_sys_ptrace", "POST", CREATE, _create({"CapAdd": ["cap_sys_ptrace"]}), "cap_sys_ptrace"),
    ("--pid host", "POST", CREATE, _create({"PidMode": "host"}), "--pid host"),
    ("--ipc host", "POST", CREATE, _create({"IpcMode": "host"}), "--ipc host"),
    ("--userns host", "POST", CREATE, _create({"UsernsMode": "host"}), "--userns host"),
    ("--device", "POST", CREATE, _create({"Devices": [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda",
                                                       "CgroupPermissions": "rwm"}]}), "devices"),
    ("--device-cgroup-rule", "POST", CREATE, _create({"DeviceCgroupRules": ["b 8:* rmw"]}), "cgroup rules"),
    ("seccomp=unconfined", "POST", CREATE, _create({"SecurityOpt": ["seccomp=unconfined"]}), "seccomp"),
    ("apparmor=unconfined", "POST", CREATE, _create({"SecurityOpt": ["apparmor=unconfined"]}), "apparmor"),
    ("systempaths=unconfined", "POST", CREATE, _create({"MaskedPaths": [], "ReadonlyPaths": []}), "MaskedPaths"),
    # What a naive check would let through, and dockerd would still apply:
    ("HostConfig fields at the top level", "POST", CREATE, _create(Privileged=True), "privileged"),
    ("lower-case field names", "POST", CREATE, json.dumps({"Image": "b", "hostconfig": {"privileged": True}}).encode(),
     "privileged"),
    ("a Kelvin sign and a long s", "POST", CREATE,
     json.dumps({"Image": "b", "HostConfig": {"Bind\u017f": ["/:/h"], "CapAdd": ["SYS_ADMIN"]}}).encode(), "bind"),
    ("a repeated key", "POST", CREATE, b'{"Image":"b","HostConfig":{"Privileged":true,"Privileged":false}}',
     "privileged"),
    ("two HostConfigs", "POST", CREATE, b'{"Image":"b","HostConfig":{},"HostConfig":{"Privileged":true}}',
     "privileged"),
    ("a percent-encoded path", "POST", "/v1.41/containers/%63reate?name=x", _create({"Privileged": True}),
     "privileged"),
    ("no version prefix", "POST", "/containers/create", _create({"Privileged": True}), "privileged"),
    ("a doubled slash", "POST", "/v1.41//containers/create", _create({"Privileged": True}), "privileged"),
    ("a body dockerd did not forward", "POST", CREATE, None, "no JSON body"),
    ("a body that is not JSON", "POST", CREATE, b"{nope", "not JSON"),
    ("trailing data", "POST", CREATE, _create() + b' {"HostConfig":{"Privileged":true}}', "not JSON"),
    ("deep nesting", "POST", CREATE, b'{"a":' * 100000 + b"1" + b"}" * 100000, "not JSON"),
    ("a start with a HostConfig (API < 1.24)", "POST", "/v1.23/containers/abc/start",
     json.dumps({"Privileged": True}).encode(), "start"),
    ("any start through API < 1.24", "POST", "/v1.19/containers/abc/start", None, "start"),
    ("API 1.23 spelled 01.23", "POST", "/v01.23/containers/abc/start", None, "start"),
    ("API 1.23 spelled 1.023", "POST", "/v1.023/containers/abc/start", None, "start"),
    ("--privileged exec", "POST", "/v1.41/containers/abc/exec",
     json.dumps({"Cmd": ["sh"], "Privileged": True}).encode(), "privileged exec"),
    ("update with devices", "POST", "/v1.41/containers/abc/update",
     json.dumps({"Devices": [{"PathOnHost": "/dev/sda"}]}).encode(), "devices"),
    ("a volume binding /", "POST", "/v1.41/volumes/create",
     json.dumps({"Name": "v", "Driver": "local", "DriverOpts": {"type": "none", "o": "bind", "device": "/"}}).encode(),
     "refused"),
    ("a volume on a block device", "POST", "/v1.41/volumes/create",
     json.dumps({"Name": "v", "DriverOpts": {"type": "ext4", "device": "/dev/sda1"}}).encode(), "type 'ext4'"),
    ("plugin install", "POST", "/v1.41/plugins/pull?remote=vieux/sshfs", b"[]", "plugins"),
    ("plugin set", "POST", "/v1.41/plugins/sshfs/set", b'["mount.source=/"]', "plugins"),
    ("a service binding /etc", "POST", "/v1.41/services/create",
     _service({"Mounts": [{"Type": "bind", "Source": "/etc", "Target": "/x"}]}), "/etc"),
    ("a service update binding /", "POST", "/v1.41/services/abc/update?version=3",
     _service({"Mounts": [{"Type": "bind", "Source": "/", "Target": "/x"}]}), "bind mount of /"),
    ("a service volume binding /", "POST", "/v1.41/services/create",
     _service({"Mounts": [{"Type": "volume", "Target": "/x", "VolumeOptions": {"DriverConfig": {
         "Name": "local", "Options": {"type": "none", "o": "bind", "device": "/"}}}}]}), "refused"),
    ("a service with SYS_ADMIN", "POST", "/v1.41/services/create", _service({"CapabilityAdd": ["CAP_SYS_ADMIN"]}),
     "CAP_SYS_ADMIN"),
    ("a plugin service", "POST", "/v1.41/services/create",
     json.dumps({"TaskTemplate": {"Runtime": "plugin", "PluginSpec": {"Remote": "x"}}}).encode(), "plugin"),
    ("a service without a readable body", "POST", "/v1.41/services/create", None, "no JSON body"),
]

ALLOWED = [
    ("a plain container", "POST", CREATE, _create({})),
    ("--network host", "POST", CREATE, _create({"NetworkMode": "host"})),
    ("a share's root", "POST", CREATE, _create({"Binds": ["/mnt/data:/data", "/mnt/results/:/r:ro"]})),
    ("--mount type=bind,src=/mnt/data", "POST", CREATE,
     _create({"Mounts": [{"Type": "bind", "Source": "/mnt/data", "Target": "/data"}]})),
    ("a named volume", "POST", CREATE, _create({"Binds": ["vol:/data"], "Mounts": [
        {"Type": "volume", "Source": "v2", "Target": "/v2"}, {"Type": "tmpfs", "Target": "/t"}]})),
    ("an anonymous volume at /etc", "POST", CREATE, _create({"Binds": ["/etc"]})),
    ("a tmpfs volume", "POST", CREATE, _create({"Mounts": [{"Type": "volume", "Target": "/x", "VolumeOptions": {
        "DriverConfig": {"Name": "local", "Options": {"type": "tmpfs", "device": "tmpfs", "o": "size=10m,uid=1"}}}}]})),
    ("default capabilities and no-new-privileges", "POST", CREATE,
     _create({"CapAdd": ["NET_BIND_SERVICE", "CAP_CHOWN"], "CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"]})),
    ("the CLI's nulls", "POST", CREATE, _create({"Privileged": False, "Binds": None, "CapAdd": None, "Devices": [],
                                                 "MaskedPaths": None, "ReadonlyPaths": None, "PidMode": ""})),
    ("--uts host", "POST", CREATE, _create({"UTSMode": "host"})),
    ("an exec", "POST", "/v1.41/containers/abc/exec", json.dumps({"Cmd": ["sh"], "Privileged": False}).encode()),
    ("a start", "POST", "/v1.41/containers/abc/start", None),
    ("a start through API 1.24", "POST", "/v1.24/containers/abc/start", None),
    ("a start without a version", "POST", "/containers/abc/start", None),
    ("a service on a share with host networking", "POST", "/v1.41/services/create",
     _service({"Mounts": [{"Type": "bind", "Source": "/mnt/data", "Target": "/d"}]},
              Networks=[{"Target": "host"}])),
    ("a plain volume", "POST", "/v1.41/volumes/create", json.dumps({"Name": "v", "Driver": "local"}).encode()),
    ("reads", "GET", "/v1.41/containers/json?all=1", None),
    ("an image import", "POST", "/v1.41/images/create?fromSrc=-&repo=bb", None),
    ("swarm init", "POST", "/v1.41/swarm/init", json.dumps({"ListenAddr": "0.0.0.0:2377"}).encode()),
    ("a plugin removal", "DELETE", "/v1.41/plugins/sshfs", None),
]


@pytest.mark.parametrize(("what", "method", "uri", "body", "word"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused(what, method, uri, body, word):
    reason = authz.decide(method, uri, body)
    assert reason is not None, f"{what} was allowed"
    assert word.casefold() in reason.casefold(), reason


@pytest.mark.parametrize(("what", "method", "uri", "body"), ALLOWED, ids=[a[0] for a in ALLOWED])
def test_allowed(what, method, uri, body):
    assert authz.decide(method, uri, body) is None


def test_a_start_whose_headers_announce_a_body_is_refused():
    assert authz.decide("POST", "/v1.41/containers/abc/start", None, {"Content-Length": "42"}) is not None
    assert authz.decide("POST", "/v1.41/containers/abc/start", None, {"Content-Length": "0"}) is None


def _call(path: str, doc: dict) -> tuple[int, dict]:
    return authz.answer(path, json.dumps(doc).encode())


def test_plugin_protocol():
    assert _call("/Plugin.Activate", {}) == (200, {"Implements": ["authz"]})
    assert _call("/AuthZPlugin.AuthZRes", {"RequestUri": CREATE}) == (200, {"Allow": True})
    ok = {"RequestMethod": "POST", "RequestUri": CREATE, "RequestBody": base64.b64encode(_create({})).decode()}
    assert _call("/AuthZPlugin.AuthZReq", ok) == (200, {"Allow": True})
    bad = {**ok, "RequestBody": base64.b64encode(_create({"Privileged": True})).decode()}
    status, doc = _call("/AuthZPlugin.AuthZReq", bad)
    assert status == 200 and doc["Allow"] is False
    assert doc["Msg"].startswith("floe node policy (restricted): privileged containers refused")
    # Whatever the plugin cannot read is refused, not allowed.
    assert authz.answer("/AuthZPlugin.AuthZReq", b"not json")[1]["Allow"] is False
    assert _call("/AuthZPlugin.AuthZReq", {**ok, "RequestBody": "%%%"})[1]["Allow"] is False
    assert _call("/Nope", {})[0] == 404


def test_plugin_serves_http_on_its_socket(tmp_path: Path):
    sock = tmp_path / "plugins" / "p.sock"
    threading.Thread(target=authz.serve, args=(str(sock),), daemon=True).start()
    deadline = time.monotonic() + 5
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sock.stat().st_mode & 0o777 == 0o600 and (tmp_path / "plugins").stat().st_mode & 0o777 == 0o700
    req = {"RequestMethod": "POST", "RequestUri": CREATE,
           "RequestBody": base64.b64encode(_create({"Binds": ["/:/h"]})).decode()}
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://plugin", timeout=5) as client:
        assert client.post("/Plugin.Activate").json() == {"Implements": ["authz"]}
        # The same connection again (dockerd keeps it open), and a chunked body.
        refused = client.post("/AuthZPlugin.AuthZReq", json=req).json()
        chunked = client.post("/AuthZPlugin.AuthZReq", content=iter([json.dumps(req).encode()])).json()
    assert refused == chunked and refused["Allow"] is False and "bind mount of /" in refused["Msg"]


def test_daemon_config_names_the_plugin_only_when_restricted():
    from floe.providers.local import node

    assert authz.daemon_options() == {"authorization-plugins": ["floe-policy"]}
    command = authz.node_command(["/usr/bin/docker-init", "--", "dockerd"], "/x/policy.log")
    assert command[:2] == ["/bin/sh", "-c"] and command[-3:] == ["/usr/bin/docker-init", "--", "dockerd"]
    assert authz.SOCKET in command and "/x/policy.log" in command
    assert node.NodePaths(Path("/x/n")).policy_log == Path("/x/n/policy.log")


def test_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("FLOE_NODE_POLICY", raising=False)
    assert Settings.from_env().node_policy == "open"
    monkeypatch.setenv("FLOE_NODE_POLICY", "restricted")
    monkeypatch.setenv("FLOE_HOME", str(tmp_path))
    assert Settings.from_env().node_policy == "restricted"
    assert local_provider(Settings.from_env()).node_policy == "restricted"  # what `floe server` builds
    monkeypatch.setenv("FLOE_NODE_POLICY", "strict")
    with pytest.raises(ValueError, match=r"^FLOE_NODE_POLICY 'strict' is unknown: use one of open, restricted$"):
        Settings.from_env()
    with pytest.raises(ProviderError, match="unknown node policy"):
        LocalProvider(tmp_path, "10.172.0.0/24", node_policy="strict")
    assert LocalProvider(tmp_path, "10.172.0.0/24", node_policy="restricted").node_policy == "restricted"
