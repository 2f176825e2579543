"""What OpenStack's microversioned APIs share: the refusal of a version header, and its spelling."""

from __future__ import annotations


class VersionError(Exception):
    """A version header that is malformed (400) or asks for what floe lacks (406).

    Each API's gate answers it in its own error shape; `extra` holds fields that shape adds
    (Magnum's `max_version`/`min_version`).
    """

    def __init__(self, status: int, detail: str, **extra: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra


def fmt(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"
