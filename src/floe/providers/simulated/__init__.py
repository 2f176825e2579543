"""The simulated infra provider: nodes that only exist in floe's bookkeeping (for scale tests)."""

from floe.providers.simulated.provider import SimulatedProvider

__all__ = ["SimulatedProvider"]
