"""Slurm driver: a controller (slurmctld; a backup on the second master) and slurmd on every worker.

Steps (create and grow alike, each idempotent):

    slurm_munge       the cluster's munge key (made once, kept in the cluster's state) and its
                      munged on the host, whose socket every daemon and the host's clients use
    slurm_probe       `slurmd -C` in each new worker: the CPUs and memory it really has
    slurm_config      slurm.conf from the cluster's state, in the cluster's files directory
    slurm_accounting  with the label accounting=true: MariaDB and slurmdbd on the primary
                      controller, the cluster registered in it (before slurmctld needs it)
    slurm_controller  slurmctld on each master; restarted when slurm.conf changed (queue kept)
    slurm_nodes       slurmd on each worker
    slurm_ready       wait until Slurm reports every worker usable
    slurm_accounts    with accounting: the project's account and its members as Slurm users

Scale-down drains the nodes first: their jobs finish (or are requeued when the resize asked for
it), then slurm.conf loses them and the controller restarts before they stop.
"""

from __future__ import annotations

import base64
import secrets
import time
from pathlib import Path

from sqlalchemy import select

from floe.coe.base import (
    DATA_PATH_LABEL,
    NOT_RUNNING,
    ClusterHealth,
    ClusterRef,
    COEDriver,
    DriverContext,
    NodeHealth,
    NodeRef,
    load,
)
from floe.coe.slurm import accounting as acct
from floe.coe.slurm import config
from floe.coe.slurm.client import USABLE, SlurmTools
from floe.errors import PermanentError, TemporaryError
from floe.providers.base import InfraProvider, ProviderWithNodeProcesses
from floe.steps import Step

MUNGE_KEY_BYTES = 1024
POLL = 0.1
# The version the Debian packages floe uses report (recorded once it answers).
SLURMCTLD = "slurmctld"
SLURMD = "slurmd"
MUNGED = "munged"


def _provider(provider: InfraProvider) -> ProviderWithNodeProcesses:
    if not isinstance(provider, ProviderWithNodeProcesses):
        raise PermanentError(f"the {provider.name} provider cannot run Slurm's daemons on its nodes")
    return provider


def tools(provider: InfraProvider, tag: str) -> SlurmTools:
    """The host's Slurm clients for cluster `tag`."""
    return SlurmTools(_provider(provider).cluster_files_dir(tag, create=False) / "slurm.conf")


def _controllers(nodes: list[NodeRef]) -> list[NodeRef]:
    ctl = sorted((n for n in nodes if n.role == "manager" and n.state != "removing"), key=lambda n: n.index)
    if not ctl:
        raise PermanentError("the cluster has no controller node")
    return ctl[:2]  # Slurm has a primary and backups; floe runs one backup


def _workers(nodes: list[NodeRef], removing: bool = False) -> list[NodeRef]:
    return [n for n in nodes if n.role == "worker" and (removing or n.state != "removing")]


class SlurmDriver(COEDriver):
    name = "slurm"
    coe_names = ("slurm",)

    def create_steps(self) -> list[Step]:
        return self._steps()

    def grow_steps(self) -> list[Step]:
        return self._steps()

    def _steps(self) -> list[Step]:
        return [
            Step("slurm_munge", self.munge, "start the cluster's munge daemon"),
            Step("slurm_probe", self.probe, "ask each new node what it has"),
            Step("slurm_config", self.write_config, "write slurm.conf"),
            Step("slurm_accounting", self.accounting, "start the accounting database and slurmdbd"),
            Step("slurm_controller", self.controller, "start slurmctld"),
            Step("slurm_nodes", self.start_slurmd, "start slurmd on every compute node"),
            Step("slurm_ready", self.wait_ready, "wait until Slurm reports every node usable"),
            Step("slurm_accounts", self.accounts, "give the project's members their Slurm account"),
        ]

    # --- steps ---------------------------------------------------------------------------
    def munge(self, ctx: DriverContext) -> None:
        cluster, _ = load(ctx, ())
        provider = _provider(ctx.provider)
        with ctx.session() as s:
            c = ctx.cluster(s)
            state = dict(c.coe_state or {})
            if "munge_key" not in state:
                # Made once per cluster, never shared: a node of another cluster cannot decode it.
                state["munge_key"] = base64.b64encode(secrets.token_bytes(MUNGE_KEY_BYTES)).decode()
                c.coe_state = state
        files = provider.cluster_files_dir(cluster.tag)
        provider.open_host_ports(cluster.network(), *config.SRUN_PORTS)
        start_munged(provider, cluster.tag, files, base64.b64decode(state["munge_key"]))
        _wait(ctx, lambda: (files / config.MUNGE_SOCKET).exists(), 15.0, "the cluster's munged socket")

    def probe(self, ctx: DriverContext) -> None:
        cluster, nodes = load(ctx)
        provider = _provider(ctx.provider)
        with ctx.read() as s:
            known = dict((ctx.cluster(s).coe_state or {}).get("hardware") or {})
        todo = [n for n in _workers(nodes) if n.name not in known]

        def one(node: NodeRef) -> tuple[str, list[int]]:
            proc = provider.node_run(cluster.tag, node.name, ["slurmd", "-C"], timeout=30)
            if proc.returncode != 0:
                raise TemporaryError(f"slurmd -C on {node.name} failed: {proc.stderr.strip()}")
            cpus, mem = config.parse_slurmd_c(proc.stdout)
            return node.name, [cpus, mem]

        found = dict(ctx.parallel(one, todo, limit=16)) if todo else {}
        if found:
            with ctx.session() as s:
                c = ctx.cluster(s)
                state = dict(c.coe_state or {})
                state["hardware"] = {**(state.get("hardware") or {}), **found}
                c.coe_state = state

    def write_config(self, ctx: DriverContext) -> None:
        cluster, nodes = load(ctx)
        write_slurm_conf(ctx, cluster, nodes)

    def accounting(self, ctx: DriverContext) -> None:
        cluster, nodes = load(ctx)
        if not accounting_on(cluster):
            return
        provider = _provider(ctx.provider)
        primary = _controllers(nodes)[0]
        acct.start_accounting(provider, cluster.tag, primary.name, primary.address,
                              provider.cluster_files_dir(cluster.tag), timeout=min(120.0, ctx.remaining()))
        acct.register_cluster(tools(provider, cluster.tag), config.cluster_name(cluster.name, cluster.uuid))

    def accounts(self, ctx: DriverContext) -> None:
        """The cluster's project is a Slurm account; its members (who hold a role in it) are its
        users, by their floe user names (a Unix user of that name submits as them). Other
        projects' names stay out of this cluster."""
        cluster, _ = load(ctx, ())
        if not accounting_on(cluster):
            return
        from floe.db.models import Cluster, Project, RoleAssignment, User

        with ctx.read() as s:
            c = s.get(Cluster, cluster.id)
            project = s.get(Project, c.project_id)
            members = sorted({
                name.lower() for (name,) in s.execute(
                    select(User.name).join(RoleAssignment, RoleAssignment.user_id == User.id)
                    .where(RoleAssignment.project_id == c.project_id)
                ) if acct.USER_NAME.match(name.lower())
            })
        account = acct.account_name(project.name if project else c.project_id, c.project_id)
        acct.sync_associations(tools(ctx.provider, cluster.tag), config.cluster_name(cluster.name, cluster.uuid),
                               {account: members})

    def controller(self, ctx: DriverContext) -> None:
        cluster, nodes = load(ctx)
        restart_controllers(ctx, cluster, nodes)

    def start_slurmd(self, ctx: DriverContext) -> None:
        cluster, nodes = load(ctx)
        provider = _provider(ctx.provider)
        files = provider.cluster_files_dir(cluster.tag)

        def one(node: NodeRef) -> None:
            info = provider.node_info(cluster.tag, node.name)
            if info is None or not info.running:
                raise TemporaryError(f"node {node.name} is not running", delay=0.5)
            sock = info.docker_url.removeprefix("unix://")
            # Its spool on the node's own /run, and jobs reach the node's own dockerd at the usual
            # path; in the same nsenter as slurmd (one less per node: 0.1 s at 16 nodes).
            # The task prolog goes to the node's /run too: it runs as the job's user, who cannot
            # read floe's home.
            provider.start_node_daemon(cluster.tag, node.name, SLURMD, [
                "/bin/sh", "-c",
                'mkdir -p "$1" && ln -sfn "$2" /run/docker.sock && install -m 0755 "$3" "$4" && shift 4 && exec "$@"',
                "sh", config.SLURMD_SPOOL, sock, str(files / "task-prolog"), config.TASK_PROLOG_PATH,
                "slurmd", "-D", "-N", node.name, "-f", str(files / "slurm.conf"),
            ])

        ctx.parallel(one, _workers(nodes), limit=16)

    def wait_ready(self, ctx: DriverContext) -> None:
        cluster, nodes = load(ctx)
        slurm = tools(ctx.provider, cluster.tag)
        live = {n.name for n in _workers(nodes)}
        last = 0.0
        resumed: set[str] = set()
        while True:
            states = slurm.node_states() if live else {}
            usable = {n for n in live if _base(states.get(n, ("", ""))[0]) in USABLE}
            if usable == live:
                break
            # A node floe drained for a removal that did not happen (the resize failed or was
            # replaced) is floe's to resume; a node a user drained is reported, not touched.
            for n in live - usable:
                state, reason = states.get(n, ("", ""))
                if n not in resumed and reason.startswith(DRAIN_REASON) and "drain" in state:
                    slurm.run("scontrol", "update", f"NodeName={n}", "State=RESUME", check=False)
                    resumed.add(n)
            ctx.check()
            if time.monotonic() - last > 1.0:
                last = time.monotonic()
                waiting = ", ".join(f"{n} ({states.get(n, ('unknown', ''))[0] or 'unknown'})"
                                    for n in sorted(live - usable)[:5])
                ctx.progress(f"step {ctx.step}: {len(usable)}/{len(live)} nodes usable (waiting for {waiting})")
            time.sleep(POLL)
        version = slurm.run("sinfo", "--version").stdout.split()[-1]  # "slurm-wlm 22.05.8" on Debian
        from floe.db.models import Node  # local import keeps the driver's module graph small

        with ctx.session() as s:
            c = ctx.cluster(s)
            c.coe_state = {**(c.coe_state or {}), "version": f"slurm {version}"}
            for n in s.scalars(select(Node).where(Node.cluster_id == cluster.id, Node.state != "removing")):
                n.state = "ready"
                n.health_status, n.health_reason = "HEALTHY", ""

    # --- scale-down ------------------------------------------------------------------------
    def remove_nodes(self, ctx: DriverContext, nodes: list[NodeRef]) -> None:
        """Drain, wait for (or requeue) the nodes' jobs, then take them out of slurm.conf."""
        cluster, all_nodes = load(ctx)
        provider = _provider(ctx.provider)
        slurm = tools(provider, cluster.tag)
        names = [n.name for n in nodes if n.role == "worker"]
        if names:
            slurm.run("scontrol", "update", f"NodeName={','.join(names)}", "State=DRAIN",
                      f"Reason={DRAIN_REASON} removing the node", check=False)
            requeue = bool(ctx.params.get("requeue"))
            last = 0.0
            while jobs := slurm.jobs_on(names):
                if requeue:
                    slurm.run("scontrol", "requeue", ",".join(jobs), check=False)
                ctx.check()
                if time.monotonic() - last > 1.0:
                    last = time.monotonic()
                    ctx.progress(f"step {ctx.step}: waiting for job(s) {', '.join(jobs[:5])} on "
                                 f"{', '.join(names[:5])} to finish")
                time.sleep(0.5)
        # slurm.conf without them (the rows are still here, marked removing), then the controller.
        write_slurm_conf(ctx, cluster, all_nodes, removing=False)
        restart_controllers(ctx, cluster, all_nodes)
        for n in nodes:
            if n.role == "worker":
                provider.stop_node_daemon(cluster.tag, n.name, SLURMD)
        # What a removed node had is forgotten: a node added later under its name (another
        # flavor, say) is probed again.
        with ctx.session() as s:
            c = ctx.cluster(s)
            state = dict(c.coe_state or {})
            hardware = {k: v for k, v in (state.get("hardware") or {}).items() if k not in set(names)}
            if hardware != (state.get("hardware") or {}):
                c.coe_state = {**state, "hardware": hardware}

    # --- health ----------------------------------------------------------------------------
    def health(self, provider: InfraProvider, cluster_tag: str, nodes: list[NodeRef]) -> ClusterHealth:
        if not isinstance(provider, ProviderWithNodeProcesses):
            reason = f"the {provider.name} provider runs no Slurm daemons"
            return ClusterHealth(False, [NodeHealth(n.name, False, reason) for n in nodes], reason)
        p = provider
        reports: dict[str, NodeHealth] = {}
        running = {}
        for n in nodes:
            info = provider.node_info(cluster_tag, n.name)
            running[n.name] = info is not None and info.running
        if not p.cluster_daemon_running(cluster_tag, MUNGED):
            reason = "the cluster's munged is not running"
            return ClusterHealth(False, [NodeHealth(n.name, False, reason, heal=True) for n in nodes], reason)
        ctl = [n for n in nodes if n.role == "manager"]
        accounting = (p.cluster_files_dir(cluster_tag, create=False) / acct.DBD_CONF).exists()
        for n in ctl:
            if not running[n.name]:
                reports[n.name] = NodeHealth(n.name, False, NOT_RUNNING)
            elif n.index < 2 and not p.node_daemon_running(cluster_tag, n.name, SLURMCTLD):
                reports[n.name] = NodeHealth(n.name, False, "slurmctld is not running", heal=True)
            elif n.index == 0 and accounting and not acct.accounting_running(p, cluster_tag, n.name):
                reports[n.name] = NodeHealth(n.name, False, "slurmdbd or its database is not running", heal=True)
            else:
                reports[n.name] = NodeHealth(n.name, True)
        try:
            states = tools(provider, cluster_tag).node_states()
        except (TemporaryError, PermanentError) as exc:
            states = None
            why = f"slurmctld does not answer ({exc})"
        for n in nodes:
            if n.role != "worker":
                continue
            if not running[n.name]:
                reports[n.name] = NodeHealth(n.name, False, NOT_RUNNING)
            elif not p.node_daemon_running(cluster_tag, n.name, SLURMD):
                reports[n.name] = NodeHealth(n.name, False, "slurmd is not running", heal=True)
            elif states is None:
                reports[n.name] = NodeHealth(n.name, False, why)
            elif n.name not in states:
                reports[n.name] = NodeHealth(n.name, False, "not in Slurm's node list")
            else:
                state, reason = states[n.name]
                if _base(state) in USABLE and not state.endswith("*"):
                    reports[n.name] = NodeHealth(n.name, True)
                else:
                    detail = f"slurm reports {state.upper()}" + (f": {reason}" if reason else "")
                    # A node Slurm cannot reach (DOWN*, NOT_RESPONDING) gets its daemon restarted.
                    reports[n.name] = NodeHealth(n.name, False, detail, heal=state.endswith("*"))
        bad = [h for h in reports.values() if not h.healthy]
        return ClusterHealth(not bad, list(reports.values()), "; ".join(f"{h.name}: {h.reason}" for h in bad))


DRAIN_REASON = "floe:"
#: Template or cluster label that turns on slurmdbd, accounting and fair share.
ACCOUNTING_LABEL = "accounting"


def accounting_on(cluster: ClusterRef) -> bool:
    return str(cluster.labels.get(ACCOUNTING_LABEL, "false")).lower() == "true"


def _base(state: str) -> str:
    """sinfo's state without its flags ('idle*' → 'idle', 'drained~' → 'drained')."""
    return state.rstrip("*~#!%$@^-+").lower()


def _wait(ctx: DriverContext, predicate, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        ctx.check()
        if time.monotonic() > end:
            raise TemporaryError(f"waited {timeout:.0f}s for {what}", delay=0.5)
        time.sleep(0.02)


def start_munged(provider: ProviderWithNodeProcesses, tag: str, files: Path, key: bytes) -> None:
    """The cluster's munged on the host, with its key (idempotent)."""
    from floe.host import commands

    munge = files / "munge"
    munge.mkdir(mode=0o755, exist_ok=True)
    keyfile = files / "munge.key"
    if not keyfile.exists() or keyfile.read_bytes() != key:
        commands.write_file(keyfile, key, mode=0o400)
    provider.start_cluster_daemon(tag, MUNGED, [
        commands.binary("munged"), "--foreground", f"--socket={munge}/munge.socket.2",
        f"--key-file={keyfile}", f"--pid-file={files}/munged.pidfile", f"--seed-file={files}/munged.seed",
        f"--log-file={files}/munged.log", "--num-threads=4", "--force",
    ])


def _hardware(ctx: DriverContext) -> dict[str, list[int]]:
    with ctx.read() as s:
        return dict((ctx.cluster(s).coe_state or {}).get("hardware") or {})


def slurm_cluster(ctx: DriverContext, cluster: ClusterRef, nodes: list[NodeRef],
                  removing: bool = True) -> config.SlurmCluster:
    """The cluster as slurm.conf describes it: controllers, live workers with what each really has
    (slurmd -C, capped at its flavor), and a partition per worker nodegroup."""
    from floe.db.flavors import node_flavor
    from floe.db.models import Cluster, Node, NodeGroup
    from floe.db.nodegroups import flavor_ref

    hardware = _hardware(ctx)
    files = str(_provider(ctx.provider).cluster_files_dir(cluster.tag))
    with ctx.read() as s:
        c = s.get(Cluster, cluster.id)
        groups = {g.id: g for g in s.scalars(select(NodeGroup).where(NodeGroup.cluster_id == cluster.id))}
        flavors = {gid: node_flavor(s, flavor_ref(c, g)) for gid, g in groups.items()}
        group_of = dict(s.execute(select(Node.name, Node.nodegroup_id).where(Node.cluster_id == cluster.id)).all())
    out = []
    for n in sorted(_workers(nodes, removing), key=lambda n: n.name):
        if n.name not in hardware:
            raise TemporaryError(f"node {n.name} was not probed yet", delay=0.2)
        cpus, mem = hardware[n.name]
        gid = group_of.get(n.name)
        f = flavors.get(gid)
        if f is not None:
            cpus, mem = min(cpus, max(1, int(f.vcpus))), min(mem, int(f.ram))
        g = groups.get(gid)
        partition = config.partition_name(g.name if g else "default-worker")
        out.append(config.SlurmNode(n.name, n.address, cpus, mem, partition))
    controllers = _controllers(nodes)
    return config.SlurmCluster(
        name=config.cluster_name(cluster.name, cluster.uuid), files=files,
        controllers=[(n.name, n.address) for n in controllers], nodes=out,
        accounting=controllers[0].address if accounting_on(cluster) else None,
    )


def write_slurm_conf(ctx: DriverContext, cluster: ClusterRef, nodes: list[NodeRef], removing: bool = True) -> str:
    """Write slurm.conf (and the task prolog) if they changed; return slurm.conf's digest.

    Nodes marked for removal stay in it (`removing`) until remove_nodes has drained them."""
    from floe.host import commands

    files = _provider(ctx.provider).cluster_files_dir(cluster.tag)
    text = config.render(slurm_cluster(ctx, cluster, nodes, removing))
    (files / "state").mkdir(exist_ok=True)
    (files / "jobs").mkdir(exist_ok=True)
    (files / "log").mkdir(exist_ok=True)
    prolog, prolog_text = files / "task-prolog", config.task_prolog(_mpi_network(ctx, cluster))
    if not prolog.exists() or prolog.read_text() != prolog_text:
        commands.write_file(prolog, prolog_text, mode=0o755)
    mpi = files / "mpi.conf"
    if not mpi.exists() or mpi.read_text() != config.MPI_CONF:
        commands.write_file(mpi, config.MPI_CONF, mode=0o644)
    conf = files / "slurm.conf"
    if not conf.exists() or conf.read_text() != text:
        commands.write_file(conf, text, mode=0o644)
    return config.digest(text)


def _mpi_network(ctx: DriverContext, cluster: ClusterRef) -> str:
    """The network MPI uses: the cluster's data-path network if it has one, else its own."""
    wanted = str(cluster.labels.get(DATA_PATH_LABEL) or "")
    if wanted:
        from floe.db.models import ClusterNetwork, Network

        with ctx.read() as s:
            cidr = s.scalars(
                select(Network.cidr).join(ClusterNetwork, ClusterNetwork.network_id == Network.id)
                .where(ClusterNetwork.cluster_id == cluster.id, (Network.name == wanted) | (Network.uuid == wanted))
            ).first()
        if cidr:
            return cidr
    return cluster.subnet


def restart_controllers(ctx: DriverContext, cluster: ClusterRef, nodes: list[NodeRef]) -> None:
    """slurmctld on each controller, restarted if slurm.conf changed since it started; then the
    slurmds re-read slurm.conf (`scontrol reconfigure`). Running and queued jobs are kept: they
    live in the state directory."""
    provider = _provider(ctx.provider)
    files = provider.cluster_files_dir(cluster.tag)
    text = (files / "slurm.conf").read_text()
    want = config.digest(text)
    with ctx.read() as s:
        had = (ctx.cluster(s).coe_state or {}).get("controller_conf")
    changed = had is not None and had != want
    controllers = _controllers(nodes)
    for n in controllers:
        if changed:
            provider.stop_node_daemon(cluster.tag, n.name, SLURMCTLD)
    for n in controllers:
        info = provider.node_info(cluster.tag, n.name)
        if info is None or not info.running:
            raise TemporaryError(f"controller {n.name} is not running", delay=0.5)
        provider.start_node_daemon(cluster.tag, n.name, SLURMCTLD, ["slurmctld", "-D", "-f", str(files / "slurm.conf")])
    slurm = SlurmTools(files / "slurm.conf")
    _wait(ctx, slurm.ping, 60.0, "slurmctld to answer")
    if changed:
        slurm.run("scontrol", "reconfigure", check=False)
    if had != want:
        with ctx.session() as s:
            c = ctx.cluster(s)
            c.coe_state = {**(c.coe_state or {}), "controller_conf": want}
