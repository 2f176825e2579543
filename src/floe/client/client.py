"""A typed HTTP client for floe's Magnum-shaped v1 API, its floe extensions, Manila's v2, Keystone's v3 and
Nova's flavors (/v2.1)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, quote, urlsplit

import httpx

from floe.client.errors import FloeAPIError, FloeConfigError, FloeConnectionError

API_VERSION_HEADER = "container-infra latest"
# The Manila microversion floe's share calls are written for.
MANILA_VERSION = "2.65"
MANILA_HEADERS = {"X-OpenStack-Manila-API-Version": MANILA_VERSION}
# The Nova microversion floe's flavor calls are written for (descriptions and extra specs).
COMPUTE_HEADERS = {"OpenStack-API-Version": "compute 2.61"}
# Uploading and loading a `docker save` tarball can take minutes; only connecting is bounded.
UPLOAD_TIMEOUT = httpx.Timeout(None, connect=10.0)

JSON = dict[str, Any]


def _client_version() -> str:
    """floe's installed version, for the User-Agent (read from metadata: the client imports no other floe)."""
    try:
        return version("floe")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


CLIENT_VERSION = _client_version()


def _one_line(text: str, limit: int = 500) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error_from_response(response: httpx.Response) -> FloeAPIError:
    """Parse Magnum's `{"errors": [...]}` shape; fall back to FastAPI's `detail`, then raw text."""
    status = response.status_code
    title = response.reason_phrase or "Error"
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        body = None
    if isinstance(body, dict):
        keystone = body.get("error")
        if isinstance(keystone, dict) and isinstance(keystone.get("message"), str):
            # Keystone's shape: {"error": {"code": 403, "message": "...", "title": "Forbidden"}}.
            return FloeAPIError(status, str(keystone.get("title") or title), _one_line(keystone["message"]))
        if len(body) == 1:
            # Manila's fault shape: {"itemNotFound": {"code": 404, "message": "..."}}.
            ((name, fault),) = body.items()
            if isinstance(fault, dict) and isinstance(fault.get("message"), str):
                return FloeAPIError(status, title, _one_line(fault["message"]))
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            detail = first.get("detail") or first.get("title") or ""
            return FloeAPIError(status, str(first.get("title") or title), _one_line(str(detail)))
        detail = body.get("detail")
        if isinstance(detail, str):
            return FloeAPIError(status, title, _one_line(detail))
        if isinstance(detail, list):
            # FastAPI request-validation errors: [{"loc": [...], "msg": "..."}].
            parts = []
            for item in detail:
                if isinstance(item, dict):
                    loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                    parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
            return FloeAPIError(status, title, _one_line("; ".join(parts) or str(detail)))
    return FloeAPIError(status, title, _one_line(response.text or title))


class _CountingReader:
    """A binary file that reports how far it has been read (httpx reads it in chunks)."""

    def __init__(self, raw: BinaryIO, progress: Callable[[int], None]):
        self._raw = raw
        self._progress = progress
        self._done = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._raw.read(size)
        self._done += len(chunk)
        self._progress(self._done)
        return chunk

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._raw.seek(offset, whence)
        self._done = position
        return position

    def tell(self) -> int:
        return self._raw.tell()

    def fileno(self) -> int:
        return self._raw.fileno()


def _path(ident: str) -> str:
    # Names may hold characters that are special in a URL path; quote them all.
    return quote(str(ident), safe="")


class FloeClient:
    """One pooled HTTP connection to a floe server; use it as a context manager.

    The token is sent in `X-Auth-Token` and is kept out of `repr()` and of every error.
    """

    def __init__(
        self, url: str, token: str | None, timeout: float = 30, *, transport: httpx.BaseTransport | None = None
    ):
        """`token` None sends no X-Auth-Token (to log in); `transport` replaces the network (tests)."""
        self.url = url.rstrip("/")
        self.timeout = timeout
        headers = {
            "OpenStack-API-Version": API_VERSION_HEADER,
            "Accept": "application/json",
            "User-Agent": f"floe-client/{CLIENT_VERSION}",
        }
        if token:
            headers["X-Auth-Token"] = token
        try:
            self._http = httpx.Client(
                base_url=self.url,
                timeout=timeout,
                headers=headers,
                # The API is plain HTTP on localhost by default; proxies from the
                # environment would only get in the way of reaching it.
                trust_env=False,
                transport=transport,
            )
        except (httpx.InvalidURL, ValueError) as exc:
            raise FloeConfigError(f"invalid floe server URL {url!r}: {exc}") from None

    def __repr__(self) -> str:
        return f"FloeClient(url={self.url!r})"

    def __enter__(self) -> FloeClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    # -- plumbing -------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise FloeConnectionError(self.url, "timed out") from None
        except httpx.UnsupportedProtocol as exc:
            raise FloeConfigError(f"invalid floe server URL {self.url!r}: {exc}") from None
        except httpx.TransportError as exc:
            raise FloeConnectionError(self.url, _one_line(str(exc), 200)) from None
        except httpx.InvalidURL as exc:
            raise FloeConfigError(f"invalid floe server URL {self.url!r}: {exc}") from None
        if response.is_error:
            raise _error_from_response(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            raise FloeAPIError(
                response.status_code,
                "Bad Response",
                f"the server at {self.url} did not answer JSON: is it a floe server?",
            ) from None

    def _object(self, method: str, path: str, **kwargs: Any) -> JSON:
        body = self._json(method, path, **kwargs)
        if not isinstance(body, dict):
            raise FloeAPIError(200, "Bad Response", f"expected a JSON object from {method} {path}")
        return body

    def _list(self, path: str, key: str, first: dict[str, str] | None = None) -> list[JSON]:
        """Every item of a Magnum list, following its `next` links page by page (`first`: the
        first page's query parameters, e.g. a filter)."""
        items: list[JSON] = []
        params: dict[str, str] = dict(first or {})
        seen: set[str] = set()
        while True:
            body = self._object("GET", path, params=params)
            page = body.get(key)
            if not isinstance(page, list):
                raise FloeAPIError(200, "Bad Response", f"expected {key!r} in the answer to GET {path}")
            items.extend(page)
            nxt = body.get("next")
            if not page or not isinstance(nxt, str) or not nxt:
                return items
            # Only the paging parameters are taken from `next`: its host may be how the
            # server sees itself, not how this client reaches it.
            params = dict(parse_qsl(urlsplit(nxt).query))
            marker = params.get("marker")
            if not marker or marker in seen:
                return items
            seen.add(marker)

    # -- cluster templates ----------------------------------------------------

    def create_template(
        self,
        name: str,
        coe: str = "swarm",
        *,
        image_id: str | None = None,
        flavor_id: str | None = None,
        master_flavor_id: str | None = None,
        labels: dict[str, str] | None = None,
        public: bool = False,
        **fields: Any,
    ) -> JSON:
        """POST /v1/clustertemplates; extra Magnum fields pass through `fields`. Returns the template."""
        body: JSON = {"name": name, "coe": coe, "labels": labels or {}, "public": public}
        optional = {"image_id": image_id, "flavor_id": flavor_id, "master_flavor_id": master_flavor_id}
        body.update({key: value for key, value in optional.items() if value is not None})
        body.update(fields)
        return self._object("POST", "/v1/clustertemplates", json=body)

    def list_templates(self) -> list[JSON]:
        """GET /v1/clustertemplates."""
        return self._list("/v1/clustertemplates", "clustertemplates")

    def get_template(self, ident: str) -> JSON:
        """GET /v1/clustertemplates/{uuid_or_name}."""
        return self._object("GET", f"/v1/clustertemplates/{_path(ident)}")

    def update_template(self, ident: str, patch: list[JSON]) -> JSON:
        """PATCH /v1/clustertemplates/{ident} with a JSON-patch list; returns the template."""
        return self._object("PATCH", f"/v1/clustertemplates/{_path(ident)}", json=patch)

    def delete_template(self, ident: str) -> None:
        """DELETE /v1/clustertemplates/{ident}."""
        self._request("DELETE", f"/v1/clustertemplates/{_path(ident)}")

    # -- clusters -------------------------------------------------------------

    def create_cluster(
        self,
        name: str,
        cluster_template_id: str,
        *,
        node_count: int = 1,
        master_count: int = 1,
        labels: dict[str, str] | None = None,
        create_timeout: int | None = None,
        **fields: Any,
    ) -> str:
        """POST /v1/clusters; returns the new cluster's uuid (creation continues in the background)."""
        body: JSON = {
            "name": name,
            "cluster_template_id": cluster_template_id,
            "node_count": node_count,
            "master_count": master_count,
            "labels": labels or {},
        }
        if create_timeout is not None:
            body["create_timeout"] = create_timeout
        body.update(fields)
        return str(self._object("POST", "/v1/clusters", json=body)["uuid"])

    def list_clusters(self, detail: bool = False) -> list[JSON]:
        """GET /v1/clusters (or /v1/clusters/detail)."""
        return self._list("/v1/clusters/detail" if detail else "/v1/clusters", "clusters")

    def get_cluster(self, ident: str) -> JSON:
        """GET /v1/clusters/{uuid_or_name}."""
        return self._object("GET", f"/v1/clusters/{_path(ident)}")

    def update_node_count(self, ident: str, node_count: int) -> str:
        """PATCH node_count; returns the cluster uuid (the update runs in the background)."""
        patch = [{"op": "replace", "path": "/node_count", "value": node_count}]
        body = self._json("PATCH", f"/v1/clusters/{_path(ident)}", json=patch)
        return str(body.get("uuid", ident)) if isinstance(body, dict) else ident

    def resize(self, ident: str, node_count: int, nodes_to_remove: list[str] | None = None,
               requeue_jobs: bool = False) -> str:
        """POST /v1/clusters/{ident}/actions/resize; returns the cluster uuid."""
        body: JSON = {"node_count": node_count}
        if nodes_to_remove:
            body["nodes_to_remove"] = list(nodes_to_remove)
        if requeue_jobs:
            body["requeue_jobs"] = True
        answer = self._json("POST", f"/v1/clusters/{_path(ident)}/actions/resize", json=body)
        return str(answer.get("uuid", ident)) if isinstance(answer, dict) else ident

    def delete_cluster(self, ident: str) -> None:
        """DELETE /v1/clusters/{ident}; the cluster goes DELETE_IN_PROGRESS, then 404."""
        self._request("DELETE", f"/v1/clusters/{_path(ident)}")

    def cluster_nodes(self, ident: str) -> list[JSON]:
        """GET /v1/floe/clusters/{ident}/nodes (a floe extension)."""
        return self._list(f"/v1/floe/clusters/{_path(ident)}/nodes", "nodes")

    def slurm_config(self, ident: str) -> JSON:
        """GET /v1/floe/clusters/{ident}/slurm: a Slurm cluster's slurm.conf (a floe extension)."""
        return self._object("GET", f"/v1/floe/clusters/{_path(ident)}/slurm")

    @staticmethod
    def _log_params(node: str | None, daemon: str | None, tail: int | None, follow: bool) -> dict[str, Any]:
        params: dict[str, Any] = {"node": node, "daemon": daemon, "tail": tail, "follow": "true" if follow else None}
        return {k: v for k, v in params.items() if v is not None}

    def cluster_logs(self, ident: str, node: str | None = None, daemon: str | None = None,
                     tail: int | None = None) -> str:
        """GET /v1/floe/clusters/{ident}/logs: the last lines of a node daemon's log (dockerd by default;
        every node's, each line prefixed `NODE | `, without `node`)."""
        response = self._request("GET", f"/v1/floe/clusters/{_path(ident)}/logs", headers={"Accept": "text/plain"},
                                 params=self._log_params(node, daemon, tail, False))
        return response.text

    def follow_cluster_logs(self, ident: str, node: str | None = None, daemon: str | None = None,
                            tail: int | None = None) -> Iterator[str]:
        """cluster_logs, then each new line as it comes, until the caller stops iterating (no read
        timeout: a log may stay quiet for long)."""
        params = self._log_params(node, daemon, tail, True)
        try:
            with self._http.stream("GET", f"/v1/floe/clusters/{_path(ident)}/logs", params=params,
                                   timeout=httpx.Timeout(self.timeout, read=None),
                                   headers={"Accept": "text/plain"}) as response:
                if response.is_error:
                    response.read()
                    raise _error_from_response(response)
                yield from response.iter_lines()
        except httpx.TransportError as exc:
            raise FloeConnectionError(self.url, _one_line(str(exc), 200)) from None

    # -- certificates ---------------------------------------------------------

    def get_ca(self, cluster: str) -> str:
        """GET /v1/certificates/{cluster}: the cluster CA certificate (PEM)."""
        return str(self._object("GET", f"/v1/certificates/{_path(cluster)}")["pem"])

    def rotate_ca(self, cluster: str) -> str:
        """PATCH /v1/certificates/{cluster} (`coe ca rotate`): queues a new CA; returns the cluster uuid."""
        answer = self._json("PATCH", f"/v1/certificates/{_path(cluster)}")
        return str(answer.get("uuid", cluster)) if isinstance(answer, dict) else cluster

    def sign_csr(self, cluster_uuid: str, csr_pem: str) -> str:
        """POST /v1/certificates: a client certificate (PEM) signed by the cluster CA."""
        body = {"cluster_uuid": cluster_uuid, "csr": csr_pem}
        return str(self._object("POST", "/v1/certificates", json=body)["pem"])

    # -- floe extensions ------------------------------------------------------

    def registry_credential(self, cluster: str) -> JSON:
        """GET /v1/floe/clusters/{cluster}/registry-credential: the cluster's pull credential for
        floe's registry (`registry`, `username`, `password`, `namespace`)."""
        return self._object("GET", f"/v1/floe/clusters/{_path(cluster)}/registry-credential")

    def cleanup(self) -> list[str]:
        """POST /v1/floe/cleanup (admin): remove leftovers; returns what was removed."""
        return [str(x) for x in self._object("POST", "/v1/floe/cleanup", json={}).get("removed", [])]

    def import_image(
        self, path: str | os.PathLike[str], progress: Callable[[int], None] | None = None, library: bool = False
    ) -> list[str]:
        """Stream a `docker save` tarball to POST /v1/floe/images; returns the image names to use.

        The images go to the caller's project namespace, or with `library` (admins) to the
        public one. `progress`, when given, is called with the number of bytes read after each chunk.
        """
        path = Path(path)
        with path.open("rb") as raw:
            fh: Any = _CountingReader(raw, progress) if progress else raw
            files = {"file": (path.name, fh, "application/x-tar")}
            params = {"library": "true"} if library else None
            body = self._object("POST", "/v1/floe/images", files=files, params=params, timeout=UPLOAD_TIMEOUT)
        return [str(x) for x in body.get("images", [])]

    # -- shares (Manila's v2 API) ----------------------------------------------

    def _share_json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._json(method, f"/v2{path}", headers=MANILA_HEADERS, **kwargs)

    def share_types(self) -> list[JSON]:
        """GET /v2/types."""
        return list(self._share_json("GET", "/types")["share_types"])

    def get_share_type(self, ident: str) -> JSON:
        """GET /v2/types/{id_or_name}."""
        return dict(self._share_json("GET", f"/types/{_path(ident)}")["share_type"])

    def create_share(
        self,
        size_gb: int,
        *,
        name: str | None = None,
        share_type: str = "local",
        share_proto: str | None = None,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> JSON:
        """POST /v2/shares; the protocol defaults to the type's (LOCALFS, GLUSTERFS). Returns the share."""
        if share_proto is None:
            specs = self.get_share_type(share_type).get("extra_specs") or {}
            share_proto = str(specs.get("storage_protocol") or "LOCALFS")
        body = {"share": {"size": size_gb, "name": name, "share_type": share_type, "share_proto": share_proto,
                          "description": description, "metadata": metadata or {}}}
        return dict(self._share_json("POST", "/shares", json=body)["share"])

    def list_shares(self) -> list[JSON]:
        """GET /v2/shares/detail."""
        return list(self._share_json("GET", "/shares/detail")["shares"])

    def get_share(self, ident: str) -> JSON:
        """GET /v2/shares/{id_or_name}."""
        return dict(self._share_json("GET", f"/shares/{_path(ident)}")["share"])

    def _share_action(self, ident: str, action: str, args: JSON | None = None) -> Any:
        return self._share_json("POST", f"/shares/{_path(ident)}/action", json={action: args})

    def delete_share(self, ident: str, force: bool = False) -> None:
        """DELETE /v2/shares/{id}, or the force_delete action (detaches it everywhere first)."""
        if force:
            self._share_action(ident, "force_delete")
        else:
            self._share_json("DELETE", f"/shares/{_path(ident)}")

    def extend_share(self, ident: str, new_size_gb: int) -> None:
        self._share_action(ident, "extend", {"new_size": new_size_gb})

    def shrink_share(self, ident: str, new_size_gb: int) -> None:
        self._share_action(ident, "shrink", {"new_size": new_size_gb})

    def allow_access(self, ident: str, access_to: str, level: str = "rw", access_type: str = "floe_cluster") -> JSON:
        """The allow_access action; returns the new rule (queued_to_apply)."""
        args = {"access_type": access_type, "access_to": access_to, "access_level": level}
        return dict(self._share_action(ident, "allow_access", args)["access"])

    def deny_access(self, ident: str, rule_id: str) -> None:
        self._share_action(ident, "deny_access", {"access_id": rule_id})

    def list_access(self, ident: str) -> list[JSON]:
        """GET /v2/share-access-rules?share_id=."""
        return list(self._share_json("GET", "/share-access-rules", params={"share_id": ident})["access_list"])

    def export_locations(self, ident: str) -> list[JSON]:
        return list(self._share_json("GET", f"/shares/{_path(ident)}/export_locations")["export_locations"])

    # -- shares on clusters (floe extensions) ------------------------------------

    def attach_share(self, cluster: str, share: str, path: str | None = None, read_only: bool = False) -> JSON:
        """POST /v1/floe/clusters/{cluster}/shares: mount the share on every node (queued)."""
        body: JSON = {"share": share, "read_only": read_only}
        if path:
            body["path"] = path
        return self._object("POST", f"/v1/floe/clusters/{_path(cluster)}/shares", json=body)

    def detach_share(self, cluster: str, share: str) -> JSON:
        return self._object("DELETE", f"/v1/floe/clusters/{_path(cluster)}/shares/{_path(share)}")

    def cluster_shares(self, cluster: str) -> list[JSON]:
        return list(self._object("GET", f"/v1/floe/clusters/{_path(cluster)}/shares")["shares"])

    def share_mounts(self, share: str) -> list[JSON]:
        return list(self._object("GET", f"/v1/floe/shares/{_path(share)}/mounts")["mounts"])

    # -- project networks (floe extensions) -----------------------------------------

    def create_network(self, name: str, cidr: str | None = None) -> JSON:
        """POST /v1/floe/networks: a project network (a free /24 of floe's range without `cidr`)."""
        body: JSON = {"name": name}
        if cidr is not None:
            body["cidr"] = cidr
        return self._object("POST", "/v1/floe/networks", json=body)

    def list_networks(self) -> list[JSON]:
        return list(self._object("GET", "/v1/floe/networks")["networks"])

    def get_network(self, ident: str) -> JSON:
        return self._object("GET", f"/v1/floe/networks/{_path(ident)}")

    def delete_network(self, ident: str) -> None:
        """DELETE /v1/floe/networks/{ident}: refused (409) while a cluster uses it."""
        self._json("DELETE", f"/v1/floe/networks/{_path(ident)}")

    def cluster_networks(self, cluster: str) -> list[JSON]:
        """GET /v1/floe/clusters/{cluster}/networks: its networks in interface order."""
        return list(self._object("GET", f"/v1/floe/clusters/{_path(cluster)}/networks")["networks"])

    def attach_network(self, cluster: str, network: str) -> JSON:
        """POST /v1/floe/clusters/{cluster}/networks: every node gets an interface on it (queued)."""
        return self._object("POST", f"/v1/floe/clusters/{_path(cluster)}/networks", json={"network": network})

    # -- identity (Keystone's v3 API at /identity/v3) ----------------------------

    def _identity(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._json(method, f"/identity/v3{path}", **kwargs)

    def _issue(self, identity: JSON, scope: JSON | None) -> tuple[str, JSON]:
        auth: JSON = {"identity": identity}
        if scope is not None:
            auth["scope"] = scope
        response = self._request("POST", "/identity/v3/auth/tokens", params={"nocatalog": "1"},
                                 json={"auth": auth})
        secret = response.headers.get("X-Subject-Token", "")
        try:
            token = response.json()["token"]
        except (ValueError, KeyError, TypeError):
            token = None
        if not secret or not isinstance(token, dict):
            raise FloeAPIError(response.status_code, "Bad Response",
                               f"the server at {self.url} did not issue a Keystone token: is it a floe server?")
        return secret, token

    def issue_token_password(
        self, username: str, password: str, *, domain: str = "Default", project: str | None = None,
        project_id: str | None = None, project_domain: str | None = None,
    ) -> tuple[str, JSON]:
        """POST /identity/v3/auth/tokens with a password, scoped to a project (by name or id) or to the
        user's default project. Returns the token's secret (X-Subject-Token) and its `token` body."""
        ident = {"methods": ["password"],
                 "password": {"user": {"name": username, "domain": {"name": domain}, "password": password}}}
        scope: JSON | None = None
        if project_id:
            scope = {"project": {"id": project_id}}
        elif project:
            scope = {"project": {"name": project, "domain": {"name": project_domain or domain}}}
        return self._issue(ident, scope)

    def issue_token_application_credential(self, credential_id: str, secret: str) -> tuple[str, JSON]:
        """POST /identity/v3/auth/tokens with an application credential; returns (secret, token body)."""
        ident = {"methods": ["application_credential"],
                 "application_credential": {"id": credential_id, "secret": secret}}
        return self._issue(ident, None)

    def validate_token(self, subject: str) -> JSON:
        """GET /identity/v3/auth/tokens: what the token `subject` is (one's own, or any for an admin)."""
        body = self._identity("GET", "/auth/tokens", params={"nocatalog": "1"},
                              headers={"X-Subject-Token": subject})
        return dict(body["token"])

    def revoke_token(self, subject: str) -> None:
        """DELETE /identity/v3/auth/tokens: revoke the token `subject`."""
        self._identity("DELETE", "/auth/tokens", headers={"X-Subject-Token": subject})

    def _find(self, collection: str, key: str, ident: str, kind: str) -> JSON:
        """An object by id (GET /{collection}/{id}), else by name (GET ?name=); 404 if neither."""
        try:
            return dict(self._identity("GET", f"/{collection}/{_path(ident)}")[key])
        except FloeAPIError as exc:
            if exc.status != 404:
                raise
        found = self._identity("GET", f"/{collection}", params={"name": ident})[collection]
        if len(found) == 1:
            return dict(found[0])
        if len(found) > 1:
            raise FloeAPIError(409, "Conflict", f"{len(found)} {collection} are named {ident}: give an id")
        raise FloeAPIError(404, "Not Found", f"no {kind} with the name or id {ident}")

    # projects

    def list_projects(self, name: str | None = None) -> list[JSON]:
        """GET /identity/v3/projects (admins)."""
        params = {"name": name} if name is not None else None
        return list(self._identity("GET", "/projects", params=params)["projects"])

    def get_project(self, ident: str) -> JSON:
        """A project by id or name."""
        return self._find("projects", "project", ident, "project")

    def create_project(self, name: str, *, description: str | None = None, enabled: bool = True) -> JSON:
        """POST /identity/v3/projects."""
        body: JSON = {"name": name, "enabled": enabled}
        if description is not None:
            body["description"] = description
        return dict(self._identity("POST", "/projects", json={"project": body})["project"])

    def update_project(self, project_id: str, **fields: Any) -> JSON:
        """PATCH /identity/v3/projects/{id} with the fields given (name, description, enabled)."""
        return dict(self._identity("PATCH", f"/projects/{_path(project_id)}", json={"project": fields})["project"])

    def delete_project(self, project_id: str) -> None:
        """DELETE /identity/v3/projects/{id}."""
        self._identity("DELETE", f"/projects/{_path(project_id)}")

    # users

    def list_users(self, name: str | None = None) -> list[JSON]:
        """GET /identity/v3/users (admins)."""
        params = {"name": name} if name is not None else None
        return list(self._identity("GET", "/users", params=params)["users"])

    def get_user(self, ident: str) -> JSON:
        """A user by id or name."""
        return self._find("users", "user", ident, "user")

    def create_user(self, name: str, *, password: str | None = None, default_project_id: str | None = None,
                    email: str | None = None, description: str | None = None, enabled: bool = True) -> JSON:
        """POST /identity/v3/users."""
        body: JSON = {"name": name, "enabled": enabled}
        optional = {"password": password, "default_project_id": default_project_id, "email": email,
                    "description": description}
        body.update({key: value for key, value in optional.items() if value is not None})
        return dict(self._identity("POST", "/users", json={"user": body})["user"])

    def update_user(self, user_id: str, **fields: Any) -> JSON:
        """PATCH /identity/v3/users/{id} (name, password, email, description, default_project_id, enabled)."""
        return dict(self._identity("PATCH", f"/users/{_path(user_id)}", json={"user": fields})["user"])

    def delete_user(self, user_id: str) -> None:
        """DELETE /identity/v3/users/{id}."""
        self._identity("DELETE", f"/users/{_path(user_id)}")

    # roles and assignments

    def list_roles(self, name: str | None = None) -> list[JSON]:
        """GET /identity/v3/roles."""
        params = {"name": name} if name is not None else None
        return list(self._identity("GET", "/roles", params=params)["roles"])

    def get_role(self, ident: str) -> JSON:
        """A role by id or name."""
        return self._find("roles", "role", ident, "role")

    def _grant_path(self, project_id: str, user_id: str, role_id: str) -> str:
        return f"/projects/{_path(project_id)}/users/{_path(user_id)}/roles/{_path(role_id)}"

    def grant_role(self, project_id: str, user_id: str, role_id: str) -> None:
        """PUT /identity/v3/projects/{p}/users/{u}/roles/{r} (idempotent)."""
        self._identity("PUT", self._grant_path(project_id, user_id, role_id))

    def revoke_role(self, project_id: str, user_id: str, role_id: str) -> None:
        """DELETE /identity/v3/projects/{p}/users/{u}/roles/{r}."""
        self._identity("DELETE", self._grant_path(project_id, user_id, role_id))

    def has_role(self, project_id: str, user_id: str, role_id: str) -> bool:
        """HEAD /identity/v3/projects/{p}/users/{u}/roles/{r}."""
        try:
            self._request("HEAD", "/identity/v3" + self._grant_path(project_id, user_id, role_id))
        except FloeAPIError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def list_role_assignments(self, *, user_id: str | None = None, project_id: str | None = None,
                              role_id: str | None = None, include_names: bool = True) -> list[JSON]:
        """GET /identity/v3/role_assignments filtered by user, project and role."""
        params = {"user.id": user_id, "scope.project.id": project_id, "role.id": role_id}
        query = {key: value for key, value in params.items() if value}
        if include_names:
            query["include_names"] = "true"
        return list(self._identity("GET", "/role_assignments", params=query)["role_assignments"])

    # application credentials

    def _credentials(self, user_id: str) -> str:
        return f"/users/{_path(user_id)}/application_credentials"

    def list_credentials(self, user_id: str, name: str | None = None) -> list[JSON]:
        """GET /identity/v3/users/{user}/application_credentials."""
        params = {"name": name} if name is not None else None
        return list(self._identity("GET", self._credentials(user_id), params=params)["application_credentials"])

    def get_credential(self, user_id: str, ident: str) -> JSON:
        """An application credential of `user_id` by id or name."""
        try:
            return dict(self._identity("GET", f"{self._credentials(user_id)}/{_path(ident)}")
                        ["application_credential"])
        except FloeAPIError as exc:
            if exc.status != 404:
                raise
        found = self.list_credentials(user_id, name=ident)
        if len(found) == 1:
            return dict(found[0])
        raise FloeAPIError(404, "Not Found", f"no application credential with the name or id {ident}")

    def create_credential(self, user_id: str, name: str, *, description: str | None = None,
                          expires_at: str | None = None, roles: list[str] | None = None,
                          unrestricted: bool = False) -> JSON:
        """POST /identity/v3/users/{user}/application_credentials; the answer holds the secret (shown once)."""
        body: JSON = {"name": name, "unrestricted": unrestricted}
        if description is not None:
            body["description"] = description
        if expires_at is not None:
            body["expires_at"] = expires_at
        if roles:
            body["roles"] = [{"name": role} for role in roles]
        answer = self._identity("POST", self._credentials(user_id), json={"application_credential": body})
        return dict(answer["application_credential"])

    def delete_credential(self, user_id: str, credential_id: str) -> None:
        """DELETE /identity/v3/users/{user}/application_credentials/{id}."""
        self._identity("DELETE", f"{self._credentials(user_id)}/{_path(credential_id)}")

    # -- flavors (Nova's compute API at /v2.1) -----------------------------------

    def _compute(self, method: str, path: str, **kwargs: Any) -> Any:
        # httpx merges these over the client's headers: this request speaks Nova's microversion.
        return self._json(method, f"/v2.1{path}", headers=COMPUTE_HEADERS, **kwargs)

    def list_flavors(self, *, all_flavors: bool = False) -> list[JSON]:
        """GET /v2.1/flavors/detail, following its next links: public flavors, or every flavor
        (`all_flavors`: admins see private ones too)."""
        items: list[JSON] = []
        params: dict[str, str] = {"is_public": "none" if all_flavors else "true"}
        seen: set[str] = set()
        while True:
            body = self._compute("GET", "/flavors/detail", params=params)
            page = body.get("flavors") if isinstance(body, dict) else None
            if not isinstance(page, list):
                raise FloeAPIError(200, "Bad Response", "expected 'flavors' in the answer to GET /v2.1/flavors/detail")
            items.extend(page)
            nxt = [link.get("href") for link in body.get("flavors_links") or [] if link.get("rel") == "next"]
            if not page or not nxt or not isinstance(nxt[0], str):
                return items
            # Only the paging parameters are taken from the link (its host is how the server sees itself).
            params = dict(parse_qsl(urlsplit(nxt[0]).query))
            marker = params.get("marker")
            if not marker or marker in seen:
                return items
            seen.add(marker)

    def get_flavor(self, ident: str) -> JSON:
        """GET /v2.1/flavors/{id_or_name}."""
        return dict(self._compute("GET", f"/flavors/{_path(ident)}")["flavor"])

    def create_flavor(self, name: str, *, vcpus: int, ram_mb: int, disk_gb: int = 0, gpus: int = 0,
                      flavor_id: str | None = None, public: bool = True, description: str | None = None) -> JSON:
        """POST /v2.1/flavors (admins); `gpus` goes as floe's `floe:gpus`, in the same request."""
        body: JSON = {"name": name, "vcpus": vcpus, "ram": ram_mb, "disk": disk_gb,
                      "os-flavor-access:is_public": public}
        if gpus:
            body["floe:gpus"] = gpus
        if flavor_id is not None:
            body["id"] = flavor_id
        if description is not None:
            body["description"] = description
        return dict(self._compute("POST", "/flavors", json={"flavor": body})["flavor"])

    def delete_flavor(self, ident: str) -> None:
        """DELETE /v2.1/flavors/{id_or_name} (admins; refused while anything names the flavor)."""
        self._compute("DELETE", f"/flavors/{_path(ident)}")

    # -- nodegroups (Magnum's, microversion 1.9 on) --------------------------------

    def _nodegroups(self, cluster: str) -> str:
        return f"/v1/clusters/{_path(cluster)}/nodegroups"

    def list_nodegroups(self, cluster: str, role: str | None = None) -> list[JSON]:
        """GET /v1/clusters/{cluster}/nodegroups (summary fields), optionally of one role."""
        return self._list(self._nodegroups(cluster), "nodegroups", {"role": role} if role is not None else None)

    def get_nodegroup(self, cluster: str, ident: str) -> JSON:
        """GET /v1/clusters/{cluster}/nodegroups/{uuid_or_name}."""
        return self._object("GET", f"{self._nodegroups(cluster)}/{_path(ident)}")

    def create_nodegroup(
        self,
        cluster: str,
        name: str,
        *,
        node_count: int = 1,
        min_node_count: int = 0,
        max_node_count: int | None = None,
        flavor_id: str | None = None,
        image_id: str | None = None,
        labels: dict[str, str] | None = None,
        merge_labels: bool = False,
        node_labels: dict[str, str] | None = None,
        node_taints: list[str] | None = None,
    ) -> JSON:
        """POST /v1/clusters/{cluster}/nodegroups; returns the new group (CREATE_IN_PROGRESS).

        `node_taints` are "key=value:Effect" strings; left-out fields come from the cluster.
        """
        body: JSON = {"name": name, "node_count": node_count, "min_node_count": min_node_count,
                      "max_node_count": max_node_count}
        optional = {"flavor_id": flavor_id, "image_id": image_id, "labels": labels, "node_labels": node_labels,
                    "node_taints": node_taints}
        body.update({key: value for key, value in optional.items() if value is not None})
        if merge_labels:
            body["merge_labels"] = True
        return self._object("POST", self._nodegroups(cluster), json=body)

    def update_nodegroup(self, cluster: str, ident: str, patch: list[JSON]) -> JSON:
        """PATCH /v1/clusters/{cluster}/nodegroups/{ident} with a JSON-patch list; returns the group."""
        return self._object("PATCH", f"{self._nodegroups(cluster)}/{_path(ident)}", json=patch)

    def resize_nodegroup(self, cluster: str, ident: str, node_count: int,
                         nodes_to_remove: list[str] | None = None) -> str:
        """The cluster's resize action naming a nodegroup; returns the cluster uuid."""
        body: JSON = {"node_count": node_count, "nodegroup": ident}
        if nodes_to_remove:
            body["nodes_to_remove"] = list(nodes_to_remove)
        answer = self._json("POST", f"/v1/clusters/{_path(cluster)}/actions/resize", json=body)
        return str(answer.get("uuid", cluster)) if isinstance(answer, dict) else cluster

    def delete_nodegroup(self, cluster: str, ident: str) -> None:
        """DELETE /v1/clusters/{cluster}/nodegroups/{ident}; the group goes DELETE_IN_PROGRESS, then 404."""
        self._request("DELETE", f"{self._nodegroups(cluster)}/{_path(ident)}")

    # -- batch jobs on Slurm clusters (floe extension) ---------------------------------

    def _jobs(self, cluster: str) -> str:
        return f"/v1/floe/clusters/{_path(cluster)}/jobs"

    def submit_job(self, cluster: str, command: list[str], *, nodes: int = 1, image: str | None = None,
                   shares: list[str] | None = None, name: str | None = None, mpi: bool = False) -> JSON:
        """POST /v1/floe/clusters/{cluster}/jobs: sbatch `command` across `nodes` nodes; returns the job."""
        body: JSON = {"command": list(command), "nodes": nodes, "shares": list(shares or []), "mpi": mpi}
        if image is not None:
            body["image"] = image
        if name is not None:
            body["name"] = name
        return self._object("POST", self._jobs(cluster), json=body)

    def list_jobs(self, cluster: str) -> list[JSON]:
        return list(self._object("GET", self._jobs(cluster))["jobs"])

    def get_job(self, cluster: str, job: str) -> JSON:
        return self._object("GET", f"{self._jobs(cluster)}/{_path(job)}")

    def cancel_job(self, cluster: str, job: str) -> JSON:
        """DELETE /v1/floe/clusters/{cluster}/jobs/{job}: scancel; returns the job as Slurm reports it after."""
        return self._object("DELETE", f"{self._jobs(cluster)}/{_path(job)}")

    def job_output(self, cluster: str, job: str, offset: int = 0) -> tuple[bytes, int, str]:
        """The job's output from byte `offset`: (bytes, the output's size now, the job's state)."""
        response = self._request("GET", f"{self._jobs(cluster)}/{_path(job)}/output", params={"offset": offset},
                                 headers={"Accept": "text/plain"})
        return (response.content, int(response.headers.get("X-Floe-Output-Size", "0") or 0),
                response.headers.get("X-Floe-Job-State", ""))

    # -- events (floe extension) --------------------------------------------------------

    def cluster_events(self, cluster: str, since: int | None = None, limit: int = 100) -> list[JSON]:
        """GET /v1/floe/clusters/{cluster}/events: its events, oldest first (after `since`, or the newest `limit`)."""
        params: dict[str, Any] = {"limit": limit}
        if since is not None:
            params["since"] = since
        return list(self._object("GET", f"/v1/floe/clusters/{_path(cluster)}/events", params=params)["events"])

    def events_stream(self, cluster: str | None = None, last_id: int | None = None,
                      idle_timeout: float = 60.0) -> Iterator[JSON]:
        """GET /v1/floe/events: the project's events (of one cluster) as they happen, until the caller
        stops iterating. The first item is `{"kind": "stream.ready"}`: every event committed after it
        comes. FloeConnectionError if the server says nothing (not even its keep-alive) for
        `idle_timeout` seconds."""
        params: dict[str, Any] = {}
        if cluster is not None:
            params["cluster"] = cluster
        if last_id is not None:
            params["last_id"] = last_id
        timeout = httpx.Timeout(self.timeout, read=idle_timeout)
        try:
            with self._http.stream("GET", "/v1/floe/events", params=params, timeout=timeout,
                                   headers={"Accept": "text/event-stream"}) as response:
                if response.is_error:
                    response.read()
                    raise _error_from_response(response)
                data: list[str] = []
                for line in response.iter_lines():
                    if line == ": ready":
                        yield {"kind": "stream.ready"}
                    elif line.startswith("data:"):
                        data.append(line[5:].lstrip(" "))
                    elif line == "" and data:
                        try:
                            event = json.loads("\n".join(data))
                        except ValueError:
                            event = None
                        data = []
                        if isinstance(event, dict):
                            yield event
        except httpx.TimeoutException:
            raise FloeConnectionError(self.url, "the event stream went quiet") from None
        except httpx.TransportError as exc:
            raise FloeConnectionError(self.url, _one_line(str(exc), 200)) from None
