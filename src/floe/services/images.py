"""Images: put users' saved images into the registry every node pulls from."""

from __future__ import annotations

from pathlib import Path

from floe import registry_auth
from floe.errors import Conflict, Forbidden, InvalidInput
from floe.providers.base import ProviderError, ProviderWithImageImport
from floe.runtime import Runtime
from floe.services.identity import Caller


def check_import(caller: Caller, library: bool) -> str:
    """The namespace an import by `caller` goes to: its project's, or `library` (admins only)."""
    if library and not caller.is_admin:
        # library is what every cluster pulls by Docker Hub names: only admins curate it.
        raise Forbidden("only an admin may import images into the public library namespace")
    return registry_auth.LIBRARY if library else registry_auth.project_namespace(caller.project_id)


def import_archive(runtime: Runtime, caller: Caller, archive: Path, library: bool = False) -> list[str]:
    """Push a `docker save` tarball into the caller's project namespace (or library); returns the
    names stacks can use."""
    namespace = check_import(caller, library)
    provider = runtime.provider
    if not isinstance(provider, ProviderWithImageImport):
        raise Conflict("this floe server's infra provider cannot import images")
    try:
        provider.ensure_registry()
        return provider.import_image_archive(archive, namespace)
    except ProviderError as exc:
        raise InvalidInput(f"image import failed: {exc}") from exc
