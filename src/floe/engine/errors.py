"""The plug-in boundary of the engine: plug-in errors become work errors here, once.

Providers and the host toolkit raise `HostError` (= ProviderError), share backends
`StorageError`, the Docker SDK `APIError` and requests' `ConnectionError`; every step of
every kind of work (cluster operations, share work) is run through `translate`, so the
runner's one retry policy sees only `TemporaryError` (retry with backoff) and
`PermanentError` (stop, with the reason).
"""

from __future__ import annotations

import docker.errors
import requests.exceptions

from floe.errors import PermanentError, StepError, TemporaryError
from floe.providers.base import ProviderError
from floe.storage.base import StorageError

# How soon a temporary failure is retried first (the backoff grows from it): a provider's
# (a node or network call) as a step's own TemporaryError, a daemon's or a backend's sooner.
PROVIDER_RETRY_DELAY = 1.0
PLUGIN_RETRY_DELAY = 0.5


def describe(exc: BaseException) -> str:
    """The text a user reads for a failure (status_reason, operation error)."""
    if isinstance(exc, docker.errors.APIError):
        return f"docker: {exc.explanation or exc}"
    return str(exc) or type(exc).__name__


def translate(exc: BaseException, *, temporary: bool | None = None) -> BaseException:
    """The work error a plug-in error means; anything else is returned unchanged.

    `temporary` overrides the plug-in's own verdict (teardown retries whatever a provider
    says: leaving a node running is never the answer).
    """
    if isinstance(exc, StepError):
        return exc
    if isinstance(exc, docker.errors.APIError):
        retry = not exc.is_client_error()
    elif isinstance(exc, requests.exceptions.ConnectionError):
        retry = True
    elif isinstance(exc, (ProviderError, StorageError)):
        retry = bool(exc.temporary)
    else:
        return exc
    if temporary is not None:
        retry = temporary
    if retry:
        delay = PROVIDER_RETRY_DELAY if isinstance(exc, ProviderError) else PLUGIN_RETRY_DELAY
        return TemporaryError(describe(exc), delay=delay)
    return PermanentError(describe(exc))
