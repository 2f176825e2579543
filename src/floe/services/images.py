"""Images: put users' saved images into the registry every node pulls from."""

from __future__ import annotations

from pathlib import Path

from floe.errors import Conflict, Forbidden, InvalidInput
from floe.providers.base import ProviderError, ProviderWithImageImport
from floe.runtime import Runtime
from floe.services.identity import Caller


def import_archive(runtime: Runtime, caller: Caller, archive: Path) -> list[str]:
    """Push a `docker save` tarball into the registry; returns the names stacks can use."""
    if not caller.is_admin:
        # The registry is shared by every project: only an admin may publish into it.
        raise Forbidden("only an admin may import images into floe's shared registry")
    provider = runtime.provider
    if not isinstance(provider, ProviderWithImageImport):
        raise Conflict("this floe server's infra provider cannot import images")
    try:
        provider.ensure_registry()
        return provider.import_image_archive(archive)
    except ProviderError as exc:
        raise InvalidInput(f"image import failed: {exc}") from exc
