"""/v1/certificates: a cluster's CA certificate and client-certificate signing (`coe cluster config`)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from floe.api.auth import CallerDep, RuntimeDep
from floe.api.http import host_url
from floe.api.magnum.schemas import CertificateOut, CertificateRequest
from floe.api.magnum.versions import resource_links
from floe.services import clusters

router = APIRouter(prefix="/v1/certificates", tags=["certificates"])


@router.get("/{cluster_ident}", response_model=CertificateOut, response_model_exclude_unset=True)
def show_ca(
    request: Request, runtime: RuntimeDep, caller: CallerDep, cluster_ident: str, ca_cert_type: str | None = None
) -> CertificateOut:
    """The cluster's CA certificate (floe has one CA per cluster, whatever ca_cert_type says)."""
    cluster_uuid, pem = clusters.get_ca_certificate(runtime.db, caller, cluster_ident)
    return CertificateOut(
        cluster_uuid=cluster_uuid, pem=pem, links=resource_links(host_url(request), "certificates", cluster_uuid)
    )


@router.post("", status_code=201, response_model=CertificateOut)
def sign(request: Request, runtime: RuntimeDep, caller: CallerDep, body: CertificateRequest) -> CertificateOut:
    """Sign a client CSR with the cluster's CA; the private key never reaches floe."""
    cluster_uuid, pem = clusters.sign_certificate(runtime.db, caller, body.cluster_uuid, body.csr)
    return CertificateOut(
        cluster_uuid=cluster_uuid,
        csr=body.csr,
        pem=pem,
        links=resource_links(host_url(request), "certificates", cluster_uuid),
    )
