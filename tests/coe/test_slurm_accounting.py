"""The pure parts of Slurm accounting: account names, slurmdbd.conf, MariaDB's command line and
slurm.conf's accounting lines. The daemons themselves are tested end to end
(tests/e2e/test_slurm_accounting.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from floe.coe.slurm import accounting, config

SAFE = re.compile(r"^[a-z0-9_]+$")


@pytest.mark.parametrize("name", ["Lab", "my lab/ä", "ÄÖÜ", "", "x" * 200, "root", "a-b.c", "DEFAULT"])
def test_account_names_are_slurm_safe(name):
    acc = accounting.account_name(name, "0d6bacd0c3944a409e53f12c5912f97f")
    assert SAFE.match(acc) and len(acc) <= 33 and acc.endswith("_0d6bacd0")
    assert acc not in accounting.RESERVED_ACCOUNTS


def test_account_names_differ_by_project_not_by_case():
    a = accounting.account_name("Lab", "aaaaaaaa-1111")
    assert a == accounting.account_name("lab", "AAAAAAAA-1111")  # Slurm folds case: the same project
    assert a != accounting.account_name("Lab", "bbbbbbbb-1111")  # same name, another project
    with pytest.raises(ValueError):
        accounting.account_name("lab", "--")


def test_slurmdbd_conf(tmp_path: Path):
    text = accounting.dbd_conf(tmp_path, "c1-master-0", "10.9.4.2", "pw_1-x")
    lines = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    assert lines["DbdHost"] == "c1-master-0" and lines["DbdAddr"] == "10.9.4.2"
    assert lines["DbdPort"] == str(config.DBD_PORT)
    assert lines["StorageType"] == "accounting_storage/mysql" and lines["StorageHost"] == "localhost"
    assert lines["StoragePass"] == "pw_1-x"
    assert lines["AuthInfo"] == f"socket={tmp_path}/{config.MUNGE_SOCKET}"


def test_password_is_kept_across_reruns(tmp_path: Path):
    conf = tmp_path / accounting.DBD_CONF
    first = accounting._password(conf)
    assert re.fullmatch(r"[A-Za-z0-9_-]{20,}", first)
    conf.write_text(accounting.dbd_conf(tmp_path, "n", "10.0.0.2", first))
    assert accounting._password(conf) == first
    assert accounting._password(tmp_path / "missing") != first


def test_mariadb_stays_off_the_host(tmp_path: Path):
    argv = accounting.mariadbd_argv(tmp_path)
    assert argv[1] == "--no-defaults"  # must come first; Debian's /etc/mysql would be read otherwise
    assert "--skip-networking" in argv
    assert f"--datadir={tmp_path}/mysql" in argv
    assert all(not a.startswith("--socket=") or a.startswith("--socket=/run/") for a in argv)


def test_render_accounting_lines():
    c = config.SlurmCluster(name="c_1", files="/f", controllers=[("m0", "10.1.0.2")], nodes=[], accounting="10.1.0.2")
    text = config.render(c)
    assert "AccountingStorageType=accounting_storage/slurmdbd" in text
    assert "AccountingStorageHost=10.1.0.2" in text
    assert f"AccountingStoragePort={config.DBD_PORT}" in text
    # Without it slurmctld and sacctmgr look for munge at /run/munge and never reach slurmdbd.
    assert f"AccountingStoragePass=/f/{config.MUNGE_SOCKET}" in text
    assert "PriorityType=priority/multifactor" in text
    off = config.render(config.SlurmCluster(name="c_1", files="/f", controllers=[("m0", "10.1.0.2")], nodes=[]))
    assert "AccountingStorageType=accounting_storage/none" in off and "slurmdbd" not in off
