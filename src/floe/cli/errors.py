"""The CLI's own error: a message for `error: ...` and the exit code to leave with."""

from __future__ import annotations

from floe.client.errors import FloeError


class CLIError(FloeError):
    """A failure the CLI reports as one line (bad input, a cluster that ended *_FAILED, ...)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code
