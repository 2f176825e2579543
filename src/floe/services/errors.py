"""Service-level errors: they live in floe.errors (one error model for every layer)."""

from floe.errors import Conflict, Forbidden, InvalidInput, NotAuthorized, NotFound, ServiceError

__all__ = ["Conflict", "Forbidden", "InvalidInput", "NotAuthorized", "NotFound", "ServiceError"]
