"""Nova's error shape, the OpenStack fault: {"itemNotFound": {"code": 404, "message": "..."}}."""

from floe.api.errors import fault_shape

NOVA_FAULTS = fault_shape("NovaFault", "Nova")
