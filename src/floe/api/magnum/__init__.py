"""OpenStack Magnum's v1 API (`/v1`): cluster templates, clusters and their nodegroups, certificates,
quotas, stats and the version documents at `/` and `/v1`.

`MagnumGate` negotiates microversions and authenticates before routing; errors are
answered in Magnum's shape (`MAGNUM_ERRORS`).
"""

from fastapi import APIRouter

from floe.api.magnum import certificates, clusters, clustertemplates, nodegroups, quotas, unsupported, versions
from floe.api.magnum.errors import MAGNUM_ERRORS
from floe.api.magnum.gate import MagnumGate

router = APIRouter()
router.include_router(versions.router)
router.include_router(clustertemplates.router)
router.include_router(clusters.router)
router.include_router(nodegroups.router)
router.include_router(certificates.router)
router.include_router(quotas.router)
# Known Magnum routes floe answers without a feature behind them.
router.include_router(unsupported.router)

__all__ = ["MAGNUM_ERRORS", "MagnumGate", "router"]
