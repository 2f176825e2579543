"""Errors the floe client raises; each renders as one human-readable line."""

from __future__ import annotations


class FloeError(Exception):
    """Base class of every error the floe client raises on purpose."""


class FloeConfigError(FloeError):
    """The client cannot work out where the server is or which token to send."""


class FloeConnectionError(FloeError):
    """The server could not be reached (refused, DNS, timeout, TLS)."""

    def __init__(self, url: str, reason: str = ""):
        self.url = url
        self.reason = reason
        message = f"cannot reach the floe server at {url}: is `floe server` running?"
        if reason:
            message += f" ({reason})"
        super().__init__(message)


class FloeAPIError(FloeError):
    """The server answered with an error status (Magnum's `{"errors": [...]}` shape)."""

    def __init__(self, status: int, title: str, detail: str):
        self.status = status
        self.title = title
        self.detail = detail
        super().__init__(self._message())

    def _message(self) -> str:
        head = f"{self.status} {self.title}".strip()
        if self.detail and self.detail != self.title:
            return f"{self.detail} ({head})"
        return head
