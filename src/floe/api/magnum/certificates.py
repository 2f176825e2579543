"""/v1/certificates: a cluster's CA certificate, client-certificate signing (`coe cluster config`)
and CA rotation (`coe ca rotate`)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from floe.api.auth import CallerDep, RuntimeDep
from floe.api.http import host_url
from floe.api.magnum.schemas import CertificateOut, CertificateRequest, UUIDResponse
from floe.api.magnum.versions import resource_links
from floe.services import certificates

router = APIRouter(prefix="/v1/certificates", tags=["certificates"])


@router.get("/{cluster_ident}", response_model=CertificateOut, response_model_exclude_unset=True)
def show_ca(
    request: Request, runtime: RuntimeDep, caller: CallerDep, cluster_ident: str, ca_cert_type: str | None = None
) -> CertificateOut:
    """The cluster's CA certificate (floe has one CA per cluster, whatever ca_cert_type says)."""
    cluster_uuid, pem = certificates.get_ca_certificate(runtime.db, caller, cluster_ident)
    return CertificateOut(
        cluster_uuid=cluster_uuid, pem=pem, links=resource_links(host_url(request), "certificates", cluster_uuid)
    )


@router.post("", status_code=201, response_model=CertificateOut)
def sign(request: Request, runtime: RuntimeDep, caller: CallerDep, body: CertificateRequest) -> CertificateOut:
    """Sign a client CSR with the cluster's CA for the caller (floe sets the subject); the key never reaches floe."""
    cluster_uuid, pem = certificates.sign_certificate(runtime, caller, body.cluster_uuid, body.csr)
    return CertificateOut(
        cluster_uuid=cluster_uuid,
        csr=body.csr,
        pem=pem,
        links=resource_links(host_url(request), "certificates", cluster_uuid),
    )


@router.patch("/{cluster_ident}", status_code=202, response_model=UUIDResponse)
def rotate_ca(runtime: RuntimeDep, caller: CallerDep, cluster_ident: str) -> UUIDResponse:
    """Queue a CA rotation (Magnum answers 202 with the cluster's uuid): client certificates of the
    old CA stop working; the nodes' workloads keep running."""
    return UUIDResponse(uuid=certificates.rotate_ca(runtime, caller, cluster_ident))
