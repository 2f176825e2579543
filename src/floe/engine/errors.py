"""Errors a step may raise: temporary ones are retried with backoff, permanent ones fail the operation."""


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
