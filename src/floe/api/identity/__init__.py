"""A Keystone v3 subset (`/identity/v3`): tokens (password, token, application credential),
domains, projects, users, roles, role assignments and application credentials; a
sub-application with Keystone's error shape (`KEYSTONE_ERRORS`)."""

from floe.api.identity.app import create_identity_app, install
from floe.api.identity.errors import KEYSTONE_ERRORS

__all__ = ["KEYSTONE_ERRORS", "create_identity_app", "install"]
