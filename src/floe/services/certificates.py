"""Cluster certificates: the CA, client certificates for the caller, CA rotation (no HTTP here).

A client certificate gives full control of the cluster's dockerds, so only a caller who may
change the cluster gets one, and floe writes its subject (O=<project>, CN=<user>) from the
caller's identity: the CSR only proves possession of the key. Certificates expire after
`client_cert_days` (FLOE_CLIENT_CERT_DAYS); `floe cluster config` renews them.
"""

from __future__ import annotations

from floe import pki
from floe.db.models import Cluster
from floe.db.session import Database
from floe.engine.operations import start_operation
from floe.errors import Conflict, Forbidden, InvalidInput
from floe.runtime import Runtime
from floe.services.clusters import find_cluster
from floe.services.identity import Caller

# Where a rotation may start: a cluster whose nodes all exist, or one whose last change
# failed (a failed rotation is finished by rotating again).
ROTATABLE = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_FAILED")


def can_manage(caller: Caller) -> bool:
    """Whether the caller may act on its project's clusters: members and admins; readers only look."""
    return caller.can_write


def _check_manage(caller: Caller, what: str) -> None:
    if not can_manage(caller):
        raise Forbidden(f"{what} needs the member role in the cluster's project; a reader may only look")


def _ca(cluster: Cluster) -> tuple[str, str]:
    if not cluster.ca_cert_pem or not cluster.ca_key_pem:
        raise Conflict(
            f"cluster {cluster.name} is still being created: its certificate authority does not exist yet"
        )
    return cluster.ca_cert_pem, cluster.ca_key_pem


def get_ca_certificate(db: Database, caller: Caller, ident: str) -> tuple[str, str]:
    """(cluster uuid, CA certificate PEM) of one of the caller's clusters (the new CA once rotated)."""
    with db.session() as session:
        cluster = find_cluster(session, caller, ident)
        return cluster.uuid, _ca(cluster)[0]


def sign_certificate(runtime: Runtime, caller: Caller, ident: str, csr_pem: str) -> tuple[str, str]:
    """(cluster uuid, client certificate PEM) for the caller, signed by the cluster's CA.

    Refused while a rotation runs: a certificate of the CA being replaced would stop working
    when it ends, and nodes already moved would refuse it.
    """
    with runtime.db.session() as session:
        cluster = find_cluster(session, caller, ident)
        _check_manage(caller, "a client certificate")
        ca_cert, ca_key = _ca(cluster)
        if cluster.ca_next_cert_pem is not None and cluster.status == "UPDATE_IN_PROGRESS":
            raise Conflict(
                f"cluster {cluster.name} is rotating its certificate authority; ask again when it is UPDATE_COMPLETE"
            )
        uuid = cluster.uuid
    subject = pki.client_subject(caller.user_id or "unknown", caller.project_id)
    try:
        return uuid, pki.sign_csr(ca_cert, ca_key, csr_pem, days=runtime.settings.client_cert_days, subject=subject)
    except pki.CSRError as exc:
        raise InvalidInput(str(exc)) from None


def rotate_ca(runtime: Runtime, caller: Caller, ident: str) -> str:
    """Queue a CA rotation (Magnum's PATCH /v1/certificates/{cluster}); returns the cluster's uuid."""
    with runtime.db.session() as session:
        cluster = find_cluster(session, caller, ident)
        _check_manage(caller, "rotating the CA")
        _ca(cluster)
        if cluster.status not in ROTATABLE:
            raise Conflict(
                f"cluster {cluster.name} is {cluster.status}: its CA can be rotated once it is "
                f"{' or '.join(ROTATABLE)}"
            )
        start_operation(session, cluster, "rotate_ca")  # 409 while another operation runs
        uuid = cluster.uuid
    runtime.wake_engine("operation")
    return uuid
