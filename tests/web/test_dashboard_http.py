"""The dashboard over HTTP (no browser): sign-in, the session cookie, CSRF, tenancy, bad input,
and `GET /` for browsers and for API clients. The real app and database; no engine runs, so
clusters stay CREATE_IN_PROGRESS (the browser test, tests/web/test_dashboard_browser.py, runs one)."""

from __future__ import annotations

import io
import re
import tarfile

from sqlalchemy import func, select

from floe.db.models import Cluster, Share
from floe.services import templates
from floe.services.templates import TemplateSpec
from tests.web.conftest import PASSWORD, Web, add_member


def _template(web: Web, name: str = "swarm-t", public: bool = True) -> str:
    ct = templates.create_template(web.env.db, web.admin, TemplateSpec(name=name, coe="swarm", public=public))
    return ct.uuid


def _clusters(web: Web) -> int:
    with web.env.db.session() as s:
        return s.scalar(select(func.count()).select_from(Cluster))


def test_root_redirects_browsers_and_answers_api_clients(web_app: Web) -> None:
    c = web_app.client
    browser = c.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}, follow_redirects=False)
    assert browser.status_code == 303 and browser.headers["location"] == "/dashboard/"
    for accept in ("application/json", "*/*", None):
        r = c.get("/", headers={"Accept": accept} if accept else {})
        assert r.status_code == 200 and r.json()["versions"][0]["id"] == "v1", (accept, r.text)
    manila = c.get("/", headers={"Accept": "application/json", "X-OpenStack-Manila-API-Version": "2.0"})
    assert manila.json()["versions"][0]["id"] == "v2.0"


def test_pages_need_a_session(web_app: Web) -> None:
    r = web_app.client.get("/dashboard/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/login?next=")
    assert web_app.client.get("/dashboard/clusters.json").status_code == 401
    assert web_app.client.get("/dashboard/login").status_code == 200


def test_sign_in_sets_a_strict_cookie_and_sign_out_revokes_it(web_app: Web) -> None:
    add_member(web_app.env.db, web_app.admin, "lab", "ann")
    bad = web_app.sign_in("ann", "wrong")
    assert bad.status_code == 401 and "Sign-in failed" in bad.text
    r = web_app.sign_in("ann")
    assert r.status_code == 303, r.text
    cookie = r.headers["set-cookie"]
    assert "floe_session=" in cookie and "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert "Path=/" in cookie
    page = web_app.client.get("/dashboard/")
    assert page.status_code == 200 and "ann" in page.text
    token = web_app.client.cookies.get("floe_session")
    out = web_app.client.post("/dashboard/logout", data={"csrf_token": web_app.csrf()}, follow_redirects=False)
    assert out.status_code == 303
    from floe.errors import NotAuthorized
    from floe.services import identity

    try:
        identity.authenticate(web_app.env.db, token)
        raise AssertionError("the session's token still works after signing out")
    except NotAuthorized:
        pass


def test_login_form_needs_its_csrf_cookie(web_app: Web) -> None:
    add_member(web_app.env.db, web_app.admin, "lab", "ann")
    r = web_app.client.post("/dashboard/login", data={"username": "ann", "password": PASSWORD, "csrf_token": "x"})
    assert r.status_code == 403 and "floe_session" not in r.headers.get("set-cookie", "")


def test_post_without_csrf_token_is_refused_and_changes_nothing(web_app: Web) -> None:
    add_member(web_app.env.db, web_app.admin, "lab", "ann")
    ct = _template(web_app)
    web_app.sign_in("ann")
    form = {"cluster_template_id": ct, "name": "c1", "master_count": "1", "node_count": "1"}
    for token in (None, "", "0" * 64):
        data = dict(form, **({"csrf_token": token} if token is not None else {}))
        r = web_app.client.post("/dashboard/clusters", data=data, follow_redirects=False)
        assert r.status_code == 403 and "security token" in r.text
    assert _clusters(web_app) == 0
    ok = web_app.client.post("/dashboard/clusters", data=dict(form, csrf_token=web_app.csrf()), follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"].startswith("/dashboard/clusters/")
    assert _clusters(web_app) == 1


def test_bad_input_shows_an_error_and_creates_nothing(web_app: Web) -> None:
    add_member(web_app.env.db, web_app.admin, "lab", "ann")
    ct = _template(web_app)
    web_app.sign_in("ann")
    token = web_app.csrf()
    cases = [
        ({"node_count": "two"}, "node count must be a whole number"),
        ({"node_count": "-1"}, "node count must be a whole number"),
        ({"master_count": "2"}, "master_count 2 is even"),
        ({"name": "bad name!"}, "name"),
        ({"cluster_template_id": "no-such-template"}, "no-such-template"),
    ]
    for change, words in cases:
        data = {"cluster_template_id": ct, "name": "c1", "master_count": "1", "node_count": "1", "csrf_token": token,
                **change}
        r = web_app.client.post("/dashboard/clusters", data=data)
        assert r.status_code == 400, (change, r.status_code)
        assert 'class="error"' in r.text and words in r.text, (change, re.findall(r'class="error"[^<]*<', r.text))
    assert _clusters(web_app) == 0


def test_other_projects_are_invisible_and_admins_see_all(web_app: Web) -> None:
    db = web_app.env.db
    add_member(db, web_app.admin, "lab", "ann")
    add_member(db, web_app.admin, "other", "bob")
    ct = _template(web_app)
    web_app.sign_in("bob")
    r = web_app.client.post("/dashboard/clusters", data={
        "cluster_template_id": ct, "name": "bobs", "node_count": "1", "csrf_token": web_app.csrf()},
        follow_redirects=False)
    bobs_url = r.headers["location"]
    web_app.client.cookies.clear()
    web_app.sign_in("ann")
    listing = web_app.client.get("/dashboard/")
    assert "bobs" not in listing.text
    assert web_app.client.get(bobs_url).status_code == 404
    assert web_app.client.get(bobs_url + "/status.json").status_code == 404
    refused = web_app.client.post(bobs_url + "/delete", data={"csrf_token": web_app.csrf()})
    assert refused.status_code == 404 and _clusters(web_app) == 1
    assert web_app.client.get("/dashboard/?project=" + _project_id(web_app, "other")).status_code == 404
    web_app.client.cookies.clear()
    admin_password = (web_app.env.runtime.settings.admin_password_file).read_text().strip()
    assert web_app.sign_in("admin", admin_password).status_code == 303
    assert "bobs" in web_app.client.get("/dashboard/").text
    assert web_app.client.get(bobs_url).status_code == 200


def _project_id(web: Web, name: str) -> str:
    from floe.services.identity import get_project

    with web.env.db.session() as s:
        return get_project(s, name).id


def test_credentials_bundle_has_what_floe_cluster_config_writes(web_app: Web) -> None:
    from cryptography import x509

    add_member(web_app.env.db, web_app.admin, "lab", "ann")
    ct = _template(web_app)
    web_app.sign_in("ann")
    r = web_app.client.post("/dashboard/clusters", data={
        "cluster_template_id": ct, "name": "c1", "node_count": "1", "csrf_token": web_app.csrf()},
        follow_redirects=False)
    url = r.headers["location"]
    early = web_app.client.post(url + "/credentials", data={"csrf_token": web_app.csrf()}, follow_redirects=False)
    assert early.status_code == 303 and "no+API+address" in early.headers["location"]
    web_app.env.give_ca("c1")
    web_app.env.finish_create("c1", api_address="tcp://10.192.0.2:2376")
    got = web_app.client.post(url + "/credentials", data={"csrf_token": web_app.csrf()})
    assert got.status_code == 200 and got.headers["content-type"] == "application/gzip"
    assert 'filename="c1-config.tar.gz"' in got.headers["content-disposition"]
    with tarfile.open(fileobj=io.BytesIO(got.content)) as tar:
        names = {m.name: m for m in tar.getmembers()}
        assert {"c1-config/ca.pem", "c1-config/cert.pem", "c1-config/key.pem", "c1-config/env"} <= set(names)
        assert names["c1-config/key.pem"].mode == 0o600
        cert = x509.load_pem_x509_certificate(tar.extractfile("c1-config/cert.pem").read())
        env_file = tar.extractfile("c1-config/env").read().decode()
    assert "DOCKER_HOST=tcp://10.192.0.2:2376" in env_file and "DOCKER_TLS_VERIFY=1" in env_file
    org = cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value
    assert org == _project_id(web_app, "lab")


def test_reader_cannot_create(web_app: Web) -> None:
    add_member(web_app.env.db, web_app.admin, "lab", "rita", role="reader")
    ct = _template(web_app)
    web_app.sign_in("rita")
    r = web_app.client.post("/dashboard/clusters", data={
        "cluster_template_id": ct, "name": "c1", "node_count": "1", "csrf_token": web_app.csrf()})
    assert r.status_code in (400, 403) and 'class="error"' in r.text
    assert _clusters(web_app) == 0


def test_shares_and_quotas_pages(web_app: Web) -> None:
    add_member(web_app.env.db, web_app.admin, "lab", "ann")
    web_app.sign_in("ann")
    token = web_app.csrf("/dashboard/shares")
    bad = web_app.client.post("/dashboard/shares", data={"name": "d", "size": "0", "csrf_token": token})
    assert bad.status_code == 400 and "whole number of GiB" in bad.text
    ok = web_app.client.post("/dashboard/shares", data={"name": "data", "size": "2", "csrf_token": token},
                             follow_redirects=False)
    assert ok.status_code == 303, ok.text
    page = web_app.client.get(ok.headers["location"])
    assert "data" in page.text and "2 GiB" in page.text
    with web_app.env.db.session() as s:
        (uuid,) = s.scalars(select(Share.uuid)).all()
    quotas = web_app.client.get("/dashboard/quotas")
    assert quotas.status_code == 200 and "Share space (GiB)" in quotas.text
    assert re.search(r"<td>Shares</td><td>1</td>", quotas.text), quotas.text
    # No engine runs here, so the share stays `creating`: the service refuses to delete it now,
    # and the page says why (the browser test deletes one that is available).
    early = web_app.client.post(f"/dashboard/shares/{uuid}/delete", data={"csrf_token": token})
    assert early.status_code == 409 and 'class="error"' in early.text


def test_reader_cannot_change_anything(web_app: Web) -> None:
    add_member(web_app.env.db, web_app.admin, "lab", "ann")
    add_member(web_app.env.db, web_app.admin, "lab2", "rita", role="reader")
    lab = _project_id(web_app, "lab")
    from floe.services import accounts

    (reader,) = accounts.list_roles(web_app.env.db, web_app.admin, name="reader")
    rita = accounts.list_users(web_app.env.db, web_app.admin, name="rita")[0]
    accounts.grant(web_app.env.db, web_app.admin, lab, rita.id, reader.id)
    ct = _template(web_app)
    web_app.sign_in("ann")
    made = web_app.client.post("/dashboard/clusters", data={
        "cluster_template_id": ct, "name": "c1", "node_count": "1", "csrf_token": web_app.csrf()},
        follow_redirects=False)
    url = made.headers["location"]
    web_app.client.cookies.clear()
    web_app.sign_in("rita")
    assert web_app.client.get(url).status_code == 200  # readers look
    token = web_app.csrf()
    resize = web_app.client.post(url + "/resize", data={"node_count": "3", "csrf_token": token})
    assert "reader role allows reading only" in resize.text
    web_app.client.post(url + "/delete", data={"csrf_token": token})
    assert web_app.env.cluster("c1").node_count == 1 and web_app.env.cluster("c1").status == "CREATE_IN_PROGRESS"
    share = web_app.client.post("/dashboard/shares", data={"project": lab, "size": "1", "csrf_token": token})
    assert share.status_code == 403
