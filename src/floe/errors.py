"""floe's error model, one for every layer.

Request errors (`ServiceError` and its kinds) are raised by services and the queueing and
address code below them; each API maps one to an HTTP status in its own error shape.

Work errors are what a step of background work (a cluster operation, share work) may raise:
`TemporaryError` is retried with backoff, `PermanentError` stops the work and records why.
Plug-ins raise their own errors (the host toolkit's `HostError`, `StorageError`); the engine
translates them into these once, at the plug-in boundary.
"""

from __future__ import annotations

# --- request errors ---------------------------------------------------------------------

class ServiceError(Exception):
    status = 500
    title = "Internal Server Error"

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class InvalidInput(ServiceError):
    status = 400
    title = "Bad Request"


class NotAuthorized(ServiceError):
    status = 401
    title = "Unauthorized"


class Forbidden(ServiceError):
    status = 403
    title = "Forbidden"


class QuotaExceeded(Forbidden):
    """A change would take a project past one of its quotas.

    403, as Magnum answers (ResourceLimitExceeded); Manila's API answers it 413, as Manila's
    quota errors are. The message names the quota and the numbers.
    """

    def __init__(self, resource: str, limit: int, used: int, requested: int, unit: str = "", label: str = ""):
        self.resource, self.limit, self.used, self.requested = resource, limit, used, requested
        super().__init__(
            f"Quota exceeded for {label or resource}: {used}{unit} of {limit}{unit} used, {requested}{unit} requested"
        )


class NotFound(ServiceError):
    status = 404
    title = "Not Found"


class Conflict(ServiceError):
    status = 409
    title = "Conflict"


# --- work errors ------------------------------------------------------------------------

class StepError(Exception):
    pass


class TemporaryError(StepError):
    """Retry the step after `delay` seconds (until the operation's deadline)."""

    def __init__(self, message: str, delay: float = 1.0):
        super().__init__(message)
        self.delay = delay


class PermanentError(StepError):
    """Stop the operation and record why."""


class LeaseLost(Exception):
    """Another worker owns the operation now (or a delete superseded it): stop quietly."""


class DeadlineExceeded(PermanentError):
    pass
