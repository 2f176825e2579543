"""The host toolkit: what floe does on the host for every plug-in that works there.

Commands (argument lists, never a shell), processes floe starts and tracks, mounts, network
namespaces and links, firewall rules, cgroups. The local infra provider and the local and
GlusterFS share backends use only this package for host work; it imports nothing of floe
above it.
"""
