"""The local provider: cluster nodes as network namespaces with their own dockerd on this host."""

from floe.providers.local.provider import LocalProvider

__all__ = ["LocalProvider"]
