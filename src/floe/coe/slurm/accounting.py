"""Slurm accounting and fair share: MariaDB and slurmdbd on the primary controller node.

Both run as node daemons of the controller (they die with it, nothing is left on the host but
files in the cluster's files directory, which go with the cluster):

    mariadbd   datadir <files>/mysql, socket /run/mysqld/mysqld.sock in the node's own /run,
               no TCP at all (--skip-networking): only processes in that node reach it
    slurmdbd   <files>/slurmdbd.conf (0600, with the database password), listening on
               <controller address>:6819, where slurmctld and the host's sacct, sacctmgr and
               sshare reach it (slurm.conf's AccountingStorageHost)

Order (see the driver): start_accounting, then register_cluster, then slurmctld; after it,
sync_associations with floe's projects. Every function here is idempotent: after a crash at any
point, calling it again finishes the job.
"""

from __future__ import annotations

import re
import secrets
import shutil
import socket
import time
from pathlib import Path

from floe.coe.slurm import config
from floe.coe.slurm.client import SlurmTools
from floe.errors import TemporaryError
from floe.host import commands
from floe.providers.base import ProviderError, ProviderWithNodeProcesses

MARIADBD = "mariadbd"
# A floe user name that can be a Slurm (Unix) user name; others are left out of the account.
USER_NAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
SLURMDBD = "slurmdbd"
DBD_PORT = config.DBD_PORT
DATADIR = "mysql"  # under the cluster's files directory
MYSQL_RUN = "/run/mysqld"  # the controller node's own /run
MYSQL_SOCKET = f"{MYSQL_RUN}/mysqld.sock"  # libmariadb's default: slurmdbd's StorageHost=localhost finds it
DATABASE = "slurm_acct_db"
DB_USER = "slurm"
DBD_CONF = "slurmdbd.conf"  # beside slurm.conf: slurmdbd finds it through SLURM_CONF's directory
# Accounts floe made carry this organisation: only they are removed when their project is gone.
ORGANIZATION = "floe"
RESERVED_ACCOUNTS = {"root"}


def account_name(project_name: str, project_id: str) -> str:
    """The Slurm account of a floe project: lower case letters, digits and '_', unique by the
    project id's start (Slurm folds account names to lower case; two projects may share a name)."""
    slug = re.sub(r"[^a-z0-9_]+", "_", project_name.lower()).strip("_")[:24] or "project"
    suffix = re.sub(r"[^a-z0-9]", "", project_id.lower())[:8]
    if not suffix:
        raise ValueError(f"project id {project_id!r} has no letters or digits")
    return f"{slug}_{suffix}"


def mariadbd_argv(files: Path) -> list[str]:
    """mariadbd in the foreground, with no host configuration (--no-defaults): Debian's
    /etc/mysql would point it at the host's /var/lib/mysql and its TCP port."""
    return [
        "mariadbd", "--no-defaults", "--user=root", f"--datadir={files / DATADIR}",
        f"--socket={MYSQL_SOCKET}", f"--pid-file={MYSQL_RUN}/mysqld.pid", f"--tmpdir={MYSQL_RUN}",
        "--skip-networking", "--skip-name-resolve",
        # Slurm's recommended lock timeout and log size; the pool stays at the default (slurmdbd
        # logs "not recommended values: innodb_buffer_pool_size" for any size a small node can give).
        "--innodb-buffer-pool-size=128M", "--innodb-log-file-size=64M", "--innodb-lock-wait-timeout=900",
    ]


def dbd_conf(cluster_files: Path, controller_name: str, controller_address: str, password: str) -> str:
    return "\n".join([
        "# Written by floe; the password is the cluster's own (generated).",
        "AuthType=auth/munge",
        f"AuthInfo=socket={cluster_files}/{config.MUNGE_SOCKET}",
        f"DbdHost={controller_name}",
        f"DbdAddr={controller_address}",
        f"DbdPort={DBD_PORT}",
        "SlurmUser=root",
        "PidFile=/run/slurmdbd.pid",
        "DebugLevel=info",
        "StorageType=accounting_storage/mysql",
        "StorageHost=localhost",
        f"StorageUser={DB_USER}",
        f"StoragePass={password}",
        f"StorageLoc={DATABASE}",
        "",
    ])


def _password(conf: Path) -> str:
    """The password slurmdbd.conf already has (a rerun keeps it), else a new one."""
    if conf.exists():
        m = re.search(r"^StoragePass=(\S+)$", conf.read_text(), re.M)
        if m:
            return m.group(1)
    return secrets.token_urlsafe(24)  # letters, digits, '-', '_': safe in SQL quotes and the conf


def _run(provider: ProviderWithNodeProcesses, tag: str, node: str, argv: list[str], what: str,
         timeout: float = 60.0) -> str:
    try:
        proc = provider.node_run(tag, node, argv, timeout=timeout)
    except ProviderError as exc:
        raise TemporaryError(f"{what} on {node}: {exc}", delay=0.5) from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise TemporaryError(f"{what} on {node} failed: {detail[-1] if detail else proc.returncode}", delay=0.5)
    return proc.stdout


def _wait(predicate, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise TemporaryError(f"waited {timeout:.0f}s for {what}", delay=1.0)
        time.sleep(0.1)


def init_datadir(provider: ProviderWithNodeProcesses, tag: str, node: str, files: Path) -> None:
    """The database's system tables, made once: in a scratch directory renamed into place when
    complete, so a crash half way leaves nothing that looks initialised."""
    datadir, scratch = files / DATADIR, files / f"{DATADIR}.init"
    if datadir.is_dir():
        return
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o700)
    # In the node (its CPU and memory limits; a crash kills the bootstrap server with the node).
    # root reaches the database through its socket as the Unix root (unix_socket), no password.
    _run(provider, tag, node, [
        "mariadb-install-db", "--no-defaults", "--user=root", f"--datadir={scratch}",
        "--auth-root-authentication-method=socket", "--skip-test-db",
    ], "mariadb-install-db", timeout=300)
    scratch.rename(datadir)


def _db_answers(provider: ProviderWithNodeProcesses, tag: str, node: str) -> bool:
    try:
        proc = provider.node_run(tag, node, ["mariadb-admin", "--no-defaults", f"--socket={MYSQL_SOCKET}",
                                             "--user=root", "ping"], timeout=10)
    except ProviderError:
        return False
    return proc.returncode == 0


def _port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1.0):
            return True
    except OSError:
        return False


def start_accounting(provider: ProviderWithNodeProcesses, tag: str, controller_name: str,
                     controller_address: str, files: Path, timeout: float = 120.0) -> None:
    """MariaDB and slurmdbd on the controller node, up and answering (idempotent).

    `files` is the cluster's files directory (provider.cluster_files_dir(tag))."""
    node = controller_name
    init_datadir(provider, tag, node, files)
    _run(provider, tag, node, ["mkdir", "-p", MYSQL_RUN], "mkdir /run/mysqld")
    provider.start_node_daemon(tag, node, MARIADBD, mariadbd_argv(files))
    _wait(lambda: _db_answers(provider, tag, node), timeout, f"MariaDB on {node}")

    # The password goes to slurmdbd.conf first, then into the database: a rerun after a crash
    # between the two reads it back and sets it again.
    conf = files / DBD_CONF
    password = _password(conf)
    text = dbd_conf(files, controller_name, controller_address, password)
    if not conf.exists() or conf.read_text() != text:
        commands.write_file(conf, text, mode=0o600)
        # A slurmdbd started from an older file (another address) reads the new one on restart.
        provider.stop_node_daemon(tag, node, SLURMDBD)
    sql = files / "accounting.sql"
    commands.write_file(sql, (
        f"CREATE DATABASE IF NOT EXISTS {DATABASE};\n"
        f"CREATE USER IF NOT EXISTS '{DB_USER}'@'localhost' IDENTIFIED BY '{password}';\n"
        f"ALTER USER '{DB_USER}'@'localhost' IDENTIFIED BY '{password}';\n"
        f"GRANT ALL ON {DATABASE}.* TO '{DB_USER}'@'localhost';\n"
    ), mode=0o600)
    try:
        # From a file, not argv: the password would show in every process listing.
        _run(provider, tag, node, ["mariadb", "--no-defaults", f"--socket={MYSQL_SOCKET}", "--user=root",
                                   "-e", f"source {sql}"], "creating the accounting database")
    finally:
        sql.unlink(missing_ok=True)

    # slurmdbd finds slurmdbd.conf in SLURM_CONF's directory; -D keeps it in the foreground.
    provider.start_node_daemon(tag, node, SLURMDBD, ["slurmdbd", "-D"],
                               env={"SLURM_CONF": str(files / "slurm.conf")})
    # It listens once it has connected to the database and made its tables.
    _wait(lambda: _port_open(controller_address, DBD_PORT), timeout, f"slurmdbd on {controller_address}:{DBD_PORT}")


def stop_accounting(provider: ProviderWithNodeProcesses, tag: str, controller_name: str) -> None:
    """slurmdbd, then MariaDB (a clean shutdown); the data stays in the files directory."""
    provider.stop_node_daemon(tag, controller_name, SLURMDBD)
    provider.stop_node_daemon(tag, controller_name, MARIADBD)


def accounting_running(provider: ProviderWithNodeProcesses, tag: str, controller_name: str) -> bool:
    return all(provider.node_daemon_running(tag, controller_name, d) for d in (MARIADBD, SLURMDBD))


# --- associations (through the host's sacctmgr, which slurm.conf points at slurmdbd) ----------

def _sacctmgr(tools: SlurmTools, *args: str, check: bool = True):
    return tools.run("sacctmgr", "-i", *args, timeout=30.0, check=check)


def registered(tools: SlurmTools, cluster_name: str) -> bool:
    out = tools.run("sacctmgr", "-n", "-P", "show", "cluster", "format=cluster", timeout=30.0).stdout
    return cluster_name in {line.strip() for line in out.splitlines()}


def register_cluster(tools: SlurmTools, cluster_name: str) -> None:
    """The cluster in slurmdbd (with its root account and user), before slurmctld starts: a
    slurmctld of an unknown cluster gets no associations to enforce (idempotent)."""
    if not registered(tools, cluster_name):
        # "-i": no confirmation prompt. Adding an existing cluster fails: only add when missing.
        _sacctmgr(tools, "add", "cluster", cluster_name)


def associations(tools: SlurmTools, cluster_name: str) -> dict[str, set[str]]:
    """Account → its users (an account with no user yet maps to an empty set)."""
    out = tools.run("sacctmgr", "-n", "-P", "show", "associations", f"cluster={cluster_name}",
                    "format=account,user", timeout=30.0).stdout
    assoc: dict[str, set[str]] = {}
    for line in out.splitlines():
        account, _, user = line.strip().partition("|")
        if account:
            assoc.setdefault(account, set())
            if user:
                assoc[account].add(user)
    return assoc


def floe_accounts(tools: SlurmTools) -> set[str]:
    out = tools.run("sacctmgr", "-n", "-P", "show", "account", f"organization={ORGANIZATION}",
                    "format=account", timeout=30.0).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


def sync_associations(tools: SlurmTools, cluster_name: str, accounts: dict[str, list[str]]) -> None:
    """Make slurmdbd's accounts and users match `accounts` (account → Unix user names): one
    account per floe project under root, its members as users. Accounts floe made that are no
    longer wanted, and users no longer members, are removed; root's are never touched.

    Each user gets the account as default only when the user is new to the cluster (Slurm
    needs one); a user in several projects picks with `sbatch --account`."""
    register_cluster(tools, cluster_name)
    have = associations(tools, cluster_name)
    for account in sorted(accounts):
        if account in RESERVED_ACCOUNTS:
            raise ValueError(f"account name {account!r} is Slurm's own")
        if account not in have:
            _sacctmgr(tools, "add", "account", account, f"cluster={cluster_name}",
                      f"organization={ORGANIZATION}", f"description=floe project {account}")
            have[account] = set()
    users_anywhere = {u for members in have.values() for u in members}
    for account in sorted(accounts):
        for user in sorted(set(accounts[account]) - have[account]):
            extra = [] if user in users_anywhere else [f"defaultaccount={account}"]
            _sacctmgr(tools, "add", "user", user, f"account={account}", f"cluster={cluster_name}", *extra)
            users_anywhere.add(user)
    # Removals: users first (Slurm refuses to remove a user's default account while it has
    # others), then the accounts floe made for projects that are gone.
    managed = floe_accounts(tools)
    for account in sorted(set(have) & managed):
        gone = have[account] - set(accounts.get(account, ()))
        for user in sorted(gone):
            _sacctmgr(tools, "remove", "user", user, f"account={account}", f"cluster={cluster_name}", check=False)
        if account not in accounts:
            _sacctmgr(tools, "remove", "account", account, f"cluster={cluster_name}", check=False)
