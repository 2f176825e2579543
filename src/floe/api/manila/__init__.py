"""OpenStack Manila's v2 API (`/v2`): shares, access rules, export locations, share types,
limits; a sub-application with Manila's microversions (`ManilaGate`) and faults
(`MANILA_FAULTS`).
"""

from floe.api.manila.app import create_manila_app, install
from floe.api.manila.errors import MANILA_FAULTS
from floe.api.manila.versions import RootSwitch

__all__ = ["MANILA_FAULTS", "RootSwitch", "create_manila_app", "install"]
