"""Python client for the floe API: `FloeClient`, its errors, and URL/token resolution."""

from floe.client.client import FloeClient
from floe.client.config import (
    DEFAULT_URL,
    Credentials,
    StoredLogin,
    floe_home,
    forget_login,
    load_login,
    login_file,
    parse_time,
    resolve_credentials,
    resolve_token,
    resolve_url,
    save_login,
    show_time,
)
from floe.client.errors import FloeAPIError, FloeConfigError, FloeConnectionError, FloeError

__all__ = [
    "DEFAULT_URL",
    "Credentials",
    "FloeAPIError",
    "FloeClient",
    "FloeConfigError",
    "FloeConnectionError",
    "FloeError",
    "StoredLogin",
    "floe_home",
    "forget_login",
    "load_login",
    "login_file",
    "parse_time",
    "resolve_credentials",
    "resolve_token",
    "resolve_url",
    "save_login",
    "show_time",
]
