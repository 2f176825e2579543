"""floe's own API under /v1/floe (nodes, share attachments, project networks, cleanup, image
import), beside Magnum's: it passes Magnum's gate and answers errors in Magnum's shape."""

from fastapi import APIRouter

from floe.api.extensions import attachments, events, jobs, logs, maintenance, networks, nodes, slurm

router = APIRouter()
router.include_router(nodes.router)
router.include_router(maintenance.router)
router.include_router(attachments.router)
router.include_router(networks.router)
router.include_router(jobs.router)
router.include_router(slurm.router)
router.include_router(events.router)
router.include_router(logs.router)

__all__ = ["router"]
