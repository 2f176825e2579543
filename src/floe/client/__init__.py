"""Python client for the floe API: `FloeClient`, its errors, and URL/token resolution."""

from floe.client.client import FloeClient
from floe.client.config import DEFAULT_URL, floe_home, resolve_token, resolve_url
from floe.client.errors import FloeAPIError, FloeConfigError, FloeConnectionError, FloeError

__all__ = [
    "DEFAULT_URL",
    "FloeAPIError",
    "FloeClient",
    "FloeConfigError",
    "FloeConnectionError",
    "FloeError",
    "floe_home",
    "resolve_token",
    "resolve_url",
]
