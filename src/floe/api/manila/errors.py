"""Manila's error shape, the OpenStack fault: {"itemNotFound": {"code": 404, "message": "...", "request_id": ...}}."""

from floe.api.errors import fault_shape

MANILA_FAULTS = fault_shape("ManilaFault", "Manila")
