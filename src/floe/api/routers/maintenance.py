"""floe's own operator endpoints: orphan cleanup and image import."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter, UploadFile

from floe.api.auth import CallerDep, RuntimeDep
from floe.services import images, maintenance
from floe.services.errors import Forbidden

router = APIRouter(prefix="/v1/floe", tags=["floe"])


@router.post("/cleanup")
def cleanup(runtime: RuntimeDep, caller: CallerDep) -> dict:
    """Remove host objects of clusters that no longer exist (admin only)."""
    if not caller.is_admin:
        raise Forbidden("only an admin may clean up the host")
    return {"removed": maintenance.cleanup_orphans(runtime)}


@router.post("/images")
def import_image(runtime: RuntimeDep, caller: CallerDep, file: UploadFile) -> dict:
    """Import a `docker save` tarball into the registry every node uses."""
    tmpdir = runtime.settings.home / "tmp"
    tmpdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.NamedTemporaryFile(dir=tmpdir, suffix=".tar") as tmp:
        shutil.copyfileobj(file.file, tmp)
        tmp.flush()
        return {"images": images.import_archive(runtime, caller, Path(tmp.name))}
