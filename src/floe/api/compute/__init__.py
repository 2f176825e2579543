"""OpenStack Nova's compute API (`/v2.1`), the part floe has: the flavor catalog (list, show,
create, delete, extra specs) for stock clients (`openstack flavor …`, openstacksdk); a
sub-application with Nova's microversions (up to 2.61) and faults (`NOVA_FAULTS`).
"""

from floe.api.compute.app import create_compute_app, install
from floe.api.compute.errors import NOVA_FAULTS

__all__ = ["NOVA_FAULTS", "create_compute_app", "install"]
