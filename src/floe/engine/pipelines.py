"""The ordered steps of each operation kind (create, update, repair, rotate_ca, delete)."""

from __future__ import annotations

from floe.coe.base import COEDriver
from floe.engine import rotation, steps
from floe.steps import Step


def create_pipeline(driver: COEDriver) -> list[Step]:
    return [
        Step("plan", steps.plan_create, "plan networks, certificates and nodes"),
        Step("registry", steps.ensure_registry, "start the image registry"),
        Step("network", steps.ensure_network, "create the cluster network"),
        Step("project_networks", steps.ensure_project_networks, "create the project networks the nodes attach to"),
        Step("nodes", steps.start_nodes, "start the nodes"),
        *driver.create_steps(),
        Step("finish", lambda ctx: steps.finish(ctx, "CREATE_COMPLETE"), "record the cluster's addresses"),
    ]


def update_pipeline(driver: COEDriver) -> list[Step]:
    return [
        Step("plan", steps.plan_resize, "plan the resize"),
        Step("registry", steps.ensure_registry, "start the image registry"),
        Step("network", steps.ensure_network, "check the cluster network"),
        Step("project_networks", steps.ensure_project_networks, "check the project networks"),
        Step("nodes", steps.start_nodes, "start new nodes"),
        *driver.grow_steps(),
        Step("remove_nodes", steps.remove_marked_nodes, "drain and remove nodes"),
        Step("finish", lambda ctx: steps.finish(ctx, "UPDATE_COMPLETE"), "record the cluster's addresses"),
    ]


def repair_pipeline(driver: COEDriver) -> list[Step]:
    """Bring back nodes that are not running (host restart, dead node) from their stored state."""
    return [
        Step("registry", steps.ensure_registry, "start the image registry"),
        Step("network", steps.ensure_network, "restore the cluster network"),
        Step("project_networks", steps.ensure_project_networks, "restore the project networks"),
        Step("nodes", steps.start_nodes, "restart nodes that are not running"),
        *driver.grow_steps(),
        Step("finish", lambda ctx: steps.finish(ctx, "UPDATE_COMPLETE"), "record the cluster's addresses"),
    ]


def rotate_ca_pipeline(driver: COEDriver) -> list[Step]:
    """A new cluster CA (Magnum's `ca rotate`): every node's TLS endpoint moves to it, then the cluster does."""
    return [
        Step("new_ca", rotation.new_ca, "make the new certificate authority"),
        # A node the rotation must restart (started before floe's TLS proxy) needs the registry's address.
        Step("registry", steps.ensure_registry, "start the image registry"),
        Step("node_certs", rotation.install_node_certs, "give every node a certificate of the new CA"),
        Step("switch_ca", rotation.switch_ca, "make the new CA the cluster's"),
        Step("finish", lambda ctx: steps.finish(ctx, "UPDATE_COMPLETE"), "record the cluster's addresses"),
    ]


def attach_network_pipeline(driver: COEDriver) -> list[Step]:
    """A project network for a running cluster (the memo's os_server_interface): an interface in
    every node, live; nodes that are not running get theirs when they start."""
    return [
        Step("plan", steps.plan_attached_network, "give every node an address on the network"),
        Step("project_networks", steps.ensure_project_networks, "create the network on the host"),
        Step("interfaces", steps.attach_interfaces, "add the interface to every running node"),
        Step("finish", lambda ctx: steps.finish(ctx, "UPDATE_COMPLETE"), "record the cluster's addresses"),
    ]


def delete_pipeline(driver: COEDriver) -> list[Step]:
    return [
        Step("nodes", steps.delete_nodes, "stop the nodes"),
        Step("network", steps.delete_network, "delete the cluster network"),
        Step("purge", steps.purge_host, "remove anything left on the host"),
        Step("release", steps.release_cluster, "release addresses and forget the cluster"),
    ]


PIPELINES = {
    "create": create_pipeline,
    "update": update_pipeline,
    "repair": repair_pipeline,
    "rotate_ca": rotate_ca_pipeline,
    "attach_network": attach_network_pipeline,
    "delete": delete_pipeline,
}
FAILED = {
    "create": "CREATE_FAILED", "update": "UPDATE_FAILED", "repair": "UPDATE_FAILED", "rotate_ca": "UPDATE_FAILED",
    "attach_network": "UPDATE_FAILED", "delete": "DELETE_FAILED",
}
