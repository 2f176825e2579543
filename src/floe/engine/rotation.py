"""The steps of a CA rotation (Magnum's `ca rotate`): new CA, node certificates, switch.

The cluster keeps its current CA until every node serves a certificate of the new one
(`clusters.ca_next_*` holds it meanwhile), so a crash anywhere resumes with the same new CA:
`new_ca` makes it only once, `install_node_certs` may install again (a fresh certificate of
the same CA each time), `switch_ca` moves it into place only once. Client certificates of the
old CA are refused by every node once `install_node_certs` is done.
"""

from __future__ import annotations

from sqlalchemy import update

from floe import pki
from floe.coe.base import NodeRef, load
from floe.db.models import Cluster
from floe.engine.context import StepContext
from floe.engine.steps import _Progress, node_spec
from floe.errors import PermanentError
from floe.providers.base import ProviderWithTLSRenewal


def new_ca(ctx: StepContext) -> None:
    """Make the cluster's next CA, unless an earlier (interrupted or failed) rotation did."""
    if not isinstance(ctx.provider, ProviderWithTLSRenewal):
        raise PermanentError(f"the {ctx.provider.name} provider cannot give running nodes new certificates")
    with ctx.session() as s:
        c = ctx.cluster(s)
        if c.ca_cert_pem is None:
            raise PermanentError("the cluster has no certificate authority yet")
        if c.ca_next_cert_pem is None:
            c.ca_next_cert_pem, c.ca_next_key_pem = pki.new_ca(f"floe cluster {c.uuid}", unit=c.name)


def install_node_certs(ctx: StepContext) -> None:
    """Every node gets a server certificate of the next CA and trusts only that CA (in parallel).

    A node that is not running gets its files and serves them when it starts again.
    """
    assert isinstance(ctx.provider, ProviderWithTLSRenewal)
    provider = ctx.provider
    with ctx.read() as s:
        c = ctx.cluster(s)
        ca = (c.ca_next_cert_pem, c.ca_next_key_pem)
    if ca[0] is None or ca[1] is None:
        raise PermanentError("the new CA is missing: rotate again")
    cluster, nodes = load(ctx)
    todo = [n for n in nodes if n.state != "removing"]
    progress = _Progress(ctx, len(todo), "nodes serve the new CA")

    def one(node: NodeRef) -> None:
        provider.renew_node_tls(node_spec(ctx, cluster, node, len(todo), ca=ca))  # errors: translated by the runner
        progress.tick()

    ctx.parallel(one, todo, limit=16)


def switch_ca(ctx: StepContext) -> None:
    """The next CA becomes the cluster's: GET /v1/certificates shows it, POST signs with it."""
    with ctx.session() as s:
        s.execute(
            update(Cluster)
            .where(Cluster.id == ctx.cluster_id, Cluster.ca_next_cert_pem.is_not(None))
            .values(
                ca_cert_pem=Cluster.ca_next_cert_pem, ca_key_pem=Cluster.ca_next_key_pem,
                ca_next_cert_pem=None, ca_next_key_pem=None,
            )
            .execution_options(synchronize_session=False)
        )
