"""python-magnumclient against the real server (uvicorn on 127.0.0.1)."""

from __future__ import annotations

import pytest
from cryptography import x509
from magnumclient import exceptions
from magnumclient.common import utils as magnum_utils
from magnumclient.v1 import client as magnum

from .conftest import Live


@pytest.fixture(params=[None, "latest", "1.10"], ids=["no-version", "latest", "1.10"])
def mc(live: Live, request: pytest.FixtureRequest) -> magnum.Client:
    return magnum.Client(endpoint_override=live.url + "/v1", auth_token=live.env.admin_token,
                         api_version=request.param)


def test_cluster_templates(mc: magnum.Client) -> None:
    ct = mc.cluster_templates.create(name="mc-tpl", coe="swarm-mode", image_id="floe-node",
                                     labels={"a": "b"}, tls_disabled=False, public=False,
                                     external_network_id=None, flavor_id="m1.small")
    try:
        assert ct.coe == "swarm-mode" and ct.labels == {"a": "b"} and ct.uuid
        assert "mc-tpl" in [t.name for t in mc.cluster_templates.list()]
        assert [t.uuid for t in mc.cluster_templates.list(detail=True) if t.name == "mc-tpl"] == [ct.uuid]
        assert mc.cluster_templates.get("mc-tpl").uuid == ct.uuid
        updated = mc.cluster_templates.update(ct.uuid, [{"op": "replace", "path": "/flavor_id", "value": "m1.large"},
                                                        {"op": "add", "path": "/labels/c", "value": "d"}])
        assert updated.flavor_id == "m1.large" and updated.labels == {"a": "b", "c": "d"}
        with pytest.raises(exceptions.BadRequest):
            mc.cluster_templates.create(name="k8s", coe="kubernetes", image_id="x")
        with pytest.raises(exceptions.NotFound):
            mc.cluster_templates.get("no-such-template")
    finally:
        mc.cluster_templates.delete(ct.uuid)
    with pytest.raises(exceptions.NotFound):
        mc.cluster_templates.get(ct.uuid)


def test_clusters_and_certificates(mc: magnum.Client, live: Live) -> None:
    ct = mc.cluster_templates.create(name="mc-ct", coe="swarm", image_id="floe-node")
    created = mc.clusters.create(cluster_template_id="mc-ct", name="mc-cluster", node_count=2, master_count=1,
                                 create_timeout=30, labels={"x": "1"}, merge_labels=True)
    uuid = created.uuid
    try:
        listed = {c.name: c for c in mc.clusters.list()}
        assert listed["mc-cluster"].uuid == uuid and listed["mc-cluster"].status == "CREATE_IN_PROGRESS"
        assert listed["mc-cluster"].node_count == 2
        cluster = mc.clusters.get("mc-cluster")
        assert cluster.uuid == uuid and cluster.cluster_template_id == ct.uuid and cluster.labels == {"x": "1"}
        assert cluster.labels_added == {"x": "1"}
        with pytest.raises(exceptions.Conflict):  # the create is still queued
            mc.clusters.update(uuid, [{"op": "replace", "path": "/node_count", "value": 3}])

        ca_pem = live.env.give_ca(uuid)
        live.env.finish_create(uuid, api_address="tcp://10.160.4.2:2376")
        mc.clusters.update(uuid, [{"op": "replace", "path": "/node_count", "value": 3}], rollback=True)
        assert live.env.operations(uuid)[-1].params == {"node_count": 3}
        assert mc.clusters.get(uuid).status == "UPDATE_IN_PROGRESS"
        with pytest.raises(exceptions.BadRequest):
            mc.clusters.update(uuid, [{"op": "replace", "path": "/name", "value": "renamed"}])

        assert mc.certificates.get(cluster_uuid=uuid).pem == ca_pem
        csr = magnum_utils.generate_csr_and_key()
        signed = mc.certificates.create(cluster_uuid=uuid, csr=csr["csr"])
        cert = x509.load_pem_x509_certificate(signed.pem.encode())
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem.encode()))

        with pytest.raises(exceptions.NotFound):
            mc.clusters.get("no-such-cluster")
    finally:
        mc.clusters.delete(uuid)
    assert mc.clusters.get(uuid).status == "DELETE_IN_PROGRESS"
    # The engine would drop the row when the delete ends; do as it does so the template can go.
    with live.env.db.session() as s:
        from floe.db.models import Cluster

        s.delete(s.get(Cluster, live.env.cluster(uuid).id))
    mc.cluster_templates.delete("mc-ct")


def test_resize(mc: magnum.Client, live: Live) -> None:
    mc.cluster_templates.create(name="mc-rs", coe="swarm", image_id="floe-node")
    uuid = mc.clusters.create(cluster_template_id="mc-rs", name="mc-resize", node_count=2).uuid
    live.env.finish_create(uuid)
    mc.clusters.resize(uuid, 1)
    assert live.env.operations(uuid)[-1].params == {"node_count": 1, "nodes_to_remove": []}
    with live.env.db.session() as s:
        from floe.db.models import Cluster

        s.delete(s.get(Cluster, live.env.cluster(uuid).id))
    mc.cluster_templates.delete("mc-rs")


def test_limit_and_sort_key(live: Live) -> None:
    mc = magnum.Client(endpoint_override=live.url + "/v1", auth_token=live.env.admin_token)
    made = [mc.cluster_templates.create(name=f"page-{i}", coe="swarm").uuid for i in range(5)]
    try:
        # The client sends limit and sort_key; the server's page carries a `next` link it may follow.
        got = mc.cluster_templates.list(limit=4, sort_key="name")
        assert [t.name for t in got] == ["page-0", "page-1", "page-2", "page-3"]
    finally:
        for uuid in made:
            mc.cluster_templates.delete(uuid)


def test_bad_token(live: Live) -> None:
    mc = magnum.Client(endpoint_override=live.url + "/v1", auth_token="floe_wrong")
    with pytest.raises(exceptions.Unauthorized):
        mc.clusters.list()
