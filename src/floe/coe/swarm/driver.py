"""Docker Swarm driver: init on the first manager, joins (managers one by one, workers in
batches), wait until every node is Ready, drain-and-remove on scale-down, health.

Swarm here has no IPVS (see docs): services use `endpoint_mode: dnsrr` and host-mode ports.
"""

from __future__ import annotations

import time

import docker.errors
import requests.exceptions

from floe.coe.base import (
    NODE_LABEL_KEYS,
    NOT_RUNNING,
    ClusterHealth,
    ClusterRef,
    COEDriver,
    DriverContext,
    NodeHealth,
    NodeRef,
    data_path_addresses,
    load,
    node_info,
    node_swarm_labels,
)
from floe.errors import PermanentError, TemporaryError
from floe.providers.base import InfraProvider
from floe.steps import Step

SWARM_PORT = 2377
JOIN_BATCH = 32
POLL = 0.1
REJOIN_AFTER = 15.0
LABEL_ATTEMPTS = 20
# A node's dockerd failing or not answering: the SDK raises its own errors, or requests' when
# the socket does not connect (clients are built without a round trip, see docker_client).
DOCKER_FAILURES = (docker.errors.DockerException, requests.exceptions.RequestException)


def _swarm_state(client) -> dict:
    return client.info().get("Swarm") or {}


class SwarmDriver(COEDriver):
    name = "swarm"
    coe_names = ("swarm", "swarm-mode")

    def create_steps(self) -> list[Step]:
        return [
            Step("swarm_init", self.init, "initialise the swarm on the first manager"),
            Step("swarm_join", self.join, "join managers and workers"),
            Step("swarm_ready", self.wait_ready, "wait until every node is Ready"),
            Step("swarm_labels", self.label_nodes, "label nodes with their nodegroup and flavor"),
        ]

    def grow_steps(self) -> list[Step]:
        return [
            Step("swarm_join", self.join, "join new nodes"),
            Step("swarm_ready", self.wait_ready, "wait until every node is Ready"),
            Step("swarm_labels", self.label_nodes, "label nodes with their nodegroup and flavor"),
        ]

    # --- steps ---------------------------------------------------------------------------
    def init(self, ctx: DriverContext) -> None:
        cluster, nodes = load(ctx)
        first = _managers(nodes)[0]
        client = ctx.docker(node_info(ctx, cluster, first))
        info = client.info()
        state = info.get("Swarm") or {}
        if state.get("LocalNodeState") != "active":
            data_path = data_path_addresses(ctx, cluster).get(first.name)
            try:
                client.swarm.init(
                    advertise_addr=first.address,
                    listen_addr=f"{first.address}:{SWARM_PORT}",
                    default_addr_pool=[cluster.swarm_pool],
                    subnet_size=24,
                    data_path_addr=data_path,
                )
            except docker.errors.APIError as exc:
                raise TemporaryError(f"swarm init on {first.name} failed: {exc.explanation}") from exc
        client.swarm.reload()
        tokens = client.swarm.attrs["JoinTokens"]
        with ctx.session() as s:
            c = ctx.cluster(s)
            c.coe_state = {
                "swarm_id": client.swarm.attrs["ID"],
                "manager_token": tokens["Manager"],
                "worker_token": tokens["Worker"],
                # finish records it: asking a manager that 30 joins just kept busy costs up to 0.4 s.
                "version": info.get("ServerVersion"),
            }

    def join(self, ctx: DriverContext) -> None:
        cluster, nodes = load(ctx)
        with ctx.session() as s:
            tokens = dict(ctx.cluster(s).coe_state or {})
        if "worker_token" not in tokens:
            raise PermanentError("the swarm has no join tokens: it was never initialised")
        live = [n for n in nodes if n.state != "removing"]
        managers = _managers(live)
        remotes = [f"{managers[0].address}:{SWARM_PORT}"]
        data_paths = data_path_addresses(ctx, cluster)
        # Raft wants managers added one at a time; workers can join in parallel.
        for m in managers[1:]:
            self._join_one(ctx, cluster, m, tokens["manager_token"], remotes, data_paths.get(m.name))
        workers = [n for n in live if n.role == "worker"]
        done = 0
        for i in range(0, len(workers), JOIN_BATCH):
            batch = workers[i : i + JOIN_BATCH]
            # All of a batch at once: a join is mostly the manager's time, and waves of joins
            # (fewer threads than nodes) serialise what the manager would pipeline.
            ctx.parallel(
                lambda n: self._join_one(ctx, cluster, n, tokens["worker_token"], remotes, data_paths.get(n.name)),
                batch, limit=len(batch),
            )
            done += len(batch)
            ctx.progress(f"step {ctx.step}: {done}/{len(workers)} workers joined")

    def _join_one(
        self, ctx: DriverContext, cluster: ClusterRef, node: NodeRef, token: str, remotes: list[str],
        data_path: str | None = None,
    ) -> None:
        client = ctx.docker(node_info(ctx, cluster, node))
        state = _swarm_state(client).get("LocalNodeState")
        if state in ("active", "pending"):
            return  # joined, or joining in the background: swarm_ready waits for it
        if state in ("error", "locked"):
            client.swarm.leave(force=True)
        try:
            client.swarm.join(
                remote_addrs=remotes,
                join_token=token,
                listen_addr=f"{node.address}:{SWARM_PORT}",
                advertise_addr=node.address,
                data_path_addr=data_path,
            )
        except docker.errors.APIError as exc:
            # On a busy host a join can outlast dockerd's own wait; it goes on in the background
            # and swarm_ready waits for the node (bounded by the operation's deadline).
            if "already part of a swarm" in str(exc) or "attempt to join the swarm will continue" in str(exc):
                return
            raise TemporaryError(f"{node.name} could not join the swarm: {exc.explanation}") from exc

    def wait_ready(self, ctx: DriverContext) -> None:
        cluster, nodes = load(ctx)
        live = {n.name: n for n in nodes if n.state != "removing"}
        manager = self._a_manager(ctx, cluster, nodes)
        ready: dict[str, str] = {}
        last_report = 0.0
        last_rejoin = time.monotonic()
        while True:
            ready.clear()
            for sn in manager.api.nodes():
                host = _hostname(sn)
                if host in live and sn.get("Status", {}).get("State") == "ready":
                    ready[host] = sn["ID"]
            if len(ready) == len(live):
                break
            ctx.check()
            if time.monotonic() - last_report > 1.0:
                last_report = time.monotonic()
                missing = sorted(set(live) - set(ready))
                waiting = ", ".join(missing[:5])
                ctx.progress(f"step {ctx.step}: {len(ready)}/{len(live)} nodes Ready (waiting for {waiting})")
            if time.monotonic() - last_rejoin > REJOIN_AFTER:
                last_rejoin = time.monotonic()
                self._rejoin_stuck(ctx, cluster, [live[n] for n in live if n not in ready], nodes)
            time.sleep(POLL)
        self._forget_stale(manager, set(ready.values()), set(live))
        from floe.db.models import Node  # local import keeps the driver's module graph small

        with ctx.session() as s:
            for n in s.query(Node).filter(Node.cluster_id == cluster.id, Node.name.in_(list(ready))):
                n.swarm_node_id = ready[n.name]
                n.state = "ready"
                n.health_status = "HEALTHY"
                n.health_reason = ""

    def _rejoin_stuck(self, ctx: DriverContext, cluster: ClusterRef, missing: list[NodeRef], nodes: list[NodeRef]):
        """A join that failed for good (e.g. the manager too busy to hand out its CA in time) leaves
        the node in 'error' and swarm does not retry it: join such nodes again."""
        with ctx.session() as s:
            tokens = dict(ctx.cluster(s).coe_state or {})
        remotes = [f"{m.address}:{SWARM_PORT}" for m in _managers(nodes)]
        data_paths = data_path_addresses(ctx, cluster)

        def one(node: NodeRef) -> None:
            try:
                client = ctx.docker(node_info(ctx, cluster, node))
                if _swarm_state(client).get("LocalNodeState") in ("error", "inactive"):
                    token = tokens["manager_token" if node.role == "manager" else "worker_token"]
                    self._join_one(ctx, cluster, node, token, remotes[:1], data_paths.get(node.name))
            except (TemporaryError, *DOCKER_FAILURES):
                pass  # still not ready: the next round tries again, the deadline bounds it

        ctx.parallel(one, missing, limit=JOIN_BATCH)

    def label_nodes(self, ctx: DriverContext) -> None:
        """Swarm node labels from the nodegroups (node.labels.floe.nodegroup == gpu places a
        service); floe's keys are set, a user's own labels on the node are kept (idempotent)."""
        cluster, nodes = load(ctx)
        wanted = node_swarm_labels(ctx, cluster)
        manager = self._a_manager(ctx, cluster, nodes)
        live = {n.name for n in nodes if n.state != "removing"}
        todo = [
            (host, sn) for sn in manager.api.nodes()
            if (host := _hostname(sn)) in live and host in wanted and sn["Status"].get("State") == "ready"
        ]
        ctx.parallel(lambda item: self._label(manager, item[0], item[1], wanted[item[0]]), todo, limit=16)

    @staticmethod
    def _label(manager, host: str, sn: dict, wanted: dict[str, str]) -> None:
        """Give one Swarm node floe's labels `wanted` (its other labels kept); no write if it has them."""
        for _attempt in range(LABEL_ATTEMPTS):
            labels = dict(sn["Spec"].get("Labels") or {})
            # floe's own keys, and the group's labels floe set before, are floe's: one the group
            # no longer has goes; labels a user set on the node by hand stay.
            set_before = set(filter(None, labels.get(NODE_LABEL_KEYS, "").split(",")))
            merged = {k: v for k, v in labels.items() if not k.startswith("floe.") and k not in set_before}
            merged |= wanted
            if merged == labels:
                return
            try:
                manager.api.update_node(sn["ID"], sn["Version"]["Index"], dict(sn["Spec"], Labels=merged))
                return
            except docker.errors.APIError as exc:
                # Right after joins the manager updates the node objects itself: a stale version
                # is refused ("update out of sequence"); read this node again.
                if "out of sequence" not in str(exc):
                    raise TemporaryError(f"labelling {host} failed: {exc.explanation}", delay=0.2) from exc
            time.sleep(0.02)
            sn = manager.api.inspect_node(sn["ID"])
        raise TemporaryError(f"labelling {host}: its node object kept changing", delay=0.2)

    @staticmethod
    def _forget_stale(manager, ready_ids: set[str], names: set[str]) -> None:
        """A node that rejoined after a crash leaves a 'down' twin behind: remove it."""
        for sn in manager.api.nodes():
            if sn["ID"] not in ready_ids and sn["Status"]["State"] == "down":
                if _hostname(sn) in names and sn["Spec"].get("Role") == "worker":
                    try:
                        manager.api.remove_node(sn["ID"], force=True)
                    except docker.errors.APIError:
                        pass

    def _a_manager(self, ctx: DriverContext, cluster: ClusterRef, nodes: list[NodeRef]):
        errors = []
        for m in _managers([n for n in nodes if n.state != "removing"]):
            try:
                client = ctx.docker(node_info(ctx, cluster, m))
                if _swarm_state(client).get("ControlAvailable"):
                    return client
            except (TemporaryError, *DOCKER_FAILURES) as exc:
                errors.append(f"{m.name}: {exc}")
        raise TemporaryError("no reachable swarm manager" + (f" ({'; '.join(errors)})" if errors else ""))

    def remove_nodes(self, ctx: DriverContext, nodes: list[NodeRef]) -> None:
        cluster, all_nodes = load(ctx)
        manager = self._a_manager(ctx, cluster, all_nodes)
        by_host = {_hostname(sn): sn for sn in manager.api.nodes()}

        def drain(node: NodeRef) -> None:
            sn = by_host.get(node.name)
            if sn is None:
                return
            spec = dict(sn["Spec"], Availability="drain")
            try:
                manager.api.update_node(sn["ID"], sn["Version"]["Index"], spec)
            except docker.errors.APIError:
                pass  # already gone or changed: leaving below settles it

        def forget(node: NodeRef) -> None:
            sn = by_host.get(node.name)
            if sn is None:
                return
            try:
                # Forced: the node is stopped right after, so asking it to leave first would only
                # cost time (its swarm components shut down slowly).
                manager.api.remove_node(sn["ID"], force=True)
            except docker.errors.NotFound:
                pass

        ctx.parallel(drain, nodes)
        self._wait_drained(ctx, manager, [by_host[n.name]["ID"] for n in nodes if n.name in by_host])
        ctx.parallel(forget, nodes)

    @staticmethod
    def _wait_drained(ctx: DriverContext, manager, node_ids: list[str], limit: float = 30.0) -> None:
        """Give the swarm a bounded time to move running tasks off draining nodes."""
        end = time.monotonic() + limit
        while node_ids and time.monotonic() < end:
            running = [
                t for t in manager.api.tasks(filters={"desired-state": "running"})
                if t.get("NodeID") in node_ids and t.get("Status", {}).get("State") == "running"
            ]
            if not running:
                return
            ctx.check()
            time.sleep(0.2)

    # --- health ----------------------------------------------------------------------------
    def health(self, provider: InfraProvider, cluster_tag: str, nodes: list[NodeRef]) -> ClusterHealth:
        reports: dict[str, NodeHealth] = {}
        swarm_nodes = None
        for m in _managers(nodes):
            info = provider.node_info(cluster_tag, m.name)
            if info is None or not info.running:
                continue
            try:
                client = provider.docker_client(info)
                try:
                    swarm_nodes = client.api.nodes()
                finally:
                    client.close()
                break
            except DOCKER_FAILURES:
                continue
        if swarm_nodes is None:
            return ClusterHealth(
                False, [NodeHealth(n.name, False, "no swarm manager answers") for n in nodes],
                "no swarm manager answers",
            )
        state = {}
        for sn in swarm_nodes:
            host = _hostname(sn)
            # Prefer the 'ready' entry if a node has a stale twin.
            if state.get(host, {}).get("Status", {}).get("State") != "ready":
                state[host] = sn
        for n in nodes:
            sn = state.get(n.name)
            info = provider.node_info(cluster_tag, n.name)
            if info is None or not info.running:
                reports[n.name] = NodeHealth(n.name, False, NOT_RUNNING)
            elif sn is None:
                reports[n.name] = NodeHealth(n.name, False, "not a member of the swarm")
            elif sn["Status"]["State"] != "ready":
                msg = sn["Status"].get("Message") or sn["Status"]["State"]
                reports[n.name] = NodeHealth(n.name, False, f"swarm reports {sn['Status']['State']}: {msg}")
            elif n.role == "manager" and (sn.get("ManagerStatus") or {}).get("Reachability") != "reachable":
                reports[n.name] = NodeHealth(n.name, False, "manager is not reachable in the raft quorum")
            else:
                reports[n.name] = NodeHealth(n.name, True, "")
        bad = [h for h in reports.values() if not h.healthy]
        return ClusterHealth(not bad, list(reports.values()), "; ".join(f"{h.name}: {h.reason}" for h in bad))


def _hostname(swarm_node: dict) -> str:
    """A node that is still joining has no description yet."""
    return (swarm_node.get("Description") or {}).get("Hostname", "")


def _managers(nodes: list[NodeRef]) -> list[NodeRef]:
    managers = sorted((n for n in nodes if n.role == "manager"), key=lambda n: n.index)
    if not managers:
        raise PermanentError("the cluster has no manager node")
    return managers
