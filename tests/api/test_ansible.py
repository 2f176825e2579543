"""Ansible's openstack.cloud collection against floe, as its users run it: a clouds.yaml with a
password, a playbook with `coe_cluster_template` and `coe_cluster`, run twice (the second run
changes nothing), then torn down with `state: absent`. The real ansible-playbook and collection
(the `ansible` package, in the .venv-ansible that `make install` builds: the collection it ships
needs an openstacksdk older than the openstack CLI's) run against a real uvicorn server; no
engine runs, so the cluster is left CREATE_IN_PROGRESS (`wait: false`) and the test completes its
delete as the engine would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from floe.db.models import Cluster

from .conftest import Live

ANSIBLE_VENV = Path(__file__).resolve().parents[2] / ".venv-ansible"
PLAYBOOK_BIN = ANSIBLE_VENV / "bin" / "ansible-playbook"

pytestmark = pytest.mark.skipif(not PLAYBOOK_BIN.exists(), reason="ansible is not installed: make install builds it")

PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: a Swarm template
      openstack.cloud.coe_cluster_template:
        cloud: floe
        name: ansible-tpl
        coe: swarm
        image_id: floe-node
        external_network_id: none
        labels: {{ purpose: ansible }}
        state: {state}
      register: tpl
    - name: a cluster from it
      openstack.cloud.coe_cluster:
        cloud: floe
        name: ansible-cluster
        cluster_template_id: "{{{{ tpl.cluster_template.id | default(omit) }}}}"
        node_count: 2
        master_count: 1
        wait: false
        state: {state}
"""


def play(tmp_path: Path, clouds: Path, state: str, tasks: str = "all") -> str:
    book = tmp_path / f"{state}.yml"
    text = PLAYBOOK.format(state=state)
    if state == "absent":  # the cluster goes before its template
        head, tpl, cluster = re.split(r"\n    - name: ", text)
        text = "\n    - name: ".join([head, cluster, tpl])
    book.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ANSIBLE_"))}
    env.update(OS_CLIENT_CONFIG_FILE=str(clouds), ANSIBLE_HOME=str(tmp_path / "ansible-home"),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_PYTHON_INTERPRETER=str(ANSIBLE_VENV / "bin" / "python"), ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    proc = subprocess.run([str(PLAYBOOK_BIN), "-i", "localhost,", str(book)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def recap(out: str) -> dict[str, int]:
    line = next(li for li in out.splitlines() if li.startswith("localhost"))
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def test_a_playbook_makes_and_removes_a_template_and_a_cluster(live: Live, tmp_path: Path) -> None:
    password = live.env.runtime.settings.admin_password_file.read_text().strip()
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(json.dumps({"clouds": {"floe": {"auth": {
        "auth_url": f"{live.url}/identity/v3", "username": "admin", "password": password,
        "project_name": "admin", "user_domain_name": "Default", "project_domain_name": "Default"},
        "identity_api_version": 3}}}))

    first = recap(play(tmp_path, clouds, "present"))
    assert first["failed"] == 0 and first["changed"] == 2
    cluster = live.env.cluster("ansible-cluster")
    assert (cluster.node_count, cluster.master_count, cluster.status) == (2, 1, "CREATE_IN_PROGRESS")

    again = recap(play(tmp_path, clouds, "present"))  # declarative: nothing to do the second time
    assert again["failed"] == 0 and again["changed"] == 0

    live.env.finish_create("ansible-cluster")

    def engine_deletes() -> None:  # no engine runs here: do what it does when a delete ends
        with live.env.db.session() as s:
            s.execute(delete(Cluster).where(Cluster.name == "ansible-cluster",
                                            Cluster.status == "DELETE_IN_PROGRESS"))

    import threading
    import time

    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            engine_deletes()
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        gone = recap(play(tmp_path, clouds, "absent"))
    finally:
        stop.set()
        watcher.join()
    assert gone["failed"] == 0 and gone["changed"] == 2
    with live.env.db.session() as s:
        assert s.scalars(select(Cluster).where(Cluster.name == "ansible-cluster")).first() is None
