"""The host toolkit's one error: a command, mount, namespace or rule that failed."""

from __future__ import annotations


class HostError(Exception):
    """A host operation failed; `temporary` says whether retrying may help.

    The infra providers' `ProviderError` is this class, so a provider passes the toolkit's
    errors on unchanged and the engine translates one error family at the plug-in boundary.
    """

    def __init__(self, message: str, temporary: bool = False):
        super().__init__(message)
        self.temporary = temporary
