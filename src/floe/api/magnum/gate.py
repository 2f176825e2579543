"""What stands in front of every /v1 route: Magnum's microversions, authentication, and the
answers to cluster reads kept until their data changes (floe's extensions under /v1/floe
pass through the same gate).

Pure ASGI, so a refusal costs no routing and no body read.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from floe.api import auth
from floe.api.cache import cacheable
from floe.api.http import header
from floe.api.magnum import versions
from floe.api.magnum.errors import MAGNUM_ERRORS
from floe.api.microversions import VersionError
from floe.errors import NotAuthorized

# Magnum's bookmark links are unversioned (/clusters/<uuid>); it serves them as /v1.
BOOKMARK_ROOTS = ("clusters", "clustertemplates", "certificates", "mservices", "quotas", "stats")


def with_bookmarks(path: str) -> str:
    """/clusters/<uuid> (a bookmark link) is /v1/clusters/<uuid>."""
    first = path.split("/", 2)[1]
    return "/v1" + path if first in BOOKMARK_ROOTS else path


def is_v1(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


class MagnumGate:
    """Negotiates the microversion and authenticates every /v1 request (the discovery document
    at /v1 is public), and answers cluster reads from the app's caches."""

    def __init__(self, app: ASGIApp):
        self.app = app
        # Cluster reads being built now, by key: (data version they started at, their answer).
        self._flights: dict[tuple, tuple[int, asyncio.Future]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = with_bookmarks(scope["path"])
        if path != scope["path"]:
            scope = dict(scope, path=path, raw_path=path.encode())
        if not is_v1(path):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        request_id = state.get("request_id", "")
        headers = state.setdefault("response_headers", {})

        try:
            version = versions.parse_version(header(scope, b"openstack-api-version"))
        except VersionError as exc:
            limits = versions.version_headers(versions.MIN_VERSION)
            headers.update({k: v for k, v in limits.items() if k != versions.HEADER})
            await MAGNUM_ERRORS.response(exc.status, exc.detail, request_id, **exc.extra)(
                scope, receive, send)
            return
        state["api_version"] = version
        headers.update(versions.version_headers(version))
        if path != "/v1":  # the discovery document is public
            try:
                caller = await auth.authenticate(scope)
            except NotAuthorized as exc:
                await MAGNUM_ERRORS.response(401, exc.detail, request_id)(scope, receive, send)
                return
            refusal = auth.authorize(scope, caller)
            if refusal is not None:
                await MAGNUM_ERRORS.response(403, refusal, request_id)(scope, receive, send)
                return
            if cacheable(scope):
                await self._cached(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _cached(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A cluster read: the kept answer if nothing changed since it was built, else a fresh one (kept)."""
        answers = scope["app"].state.caches.answers
        state = scope["state"]
        # Everything the answer depends on: who asks, what, in which version, and the base URL
        # its links are made of.
        key = (state["caller"], scope["path"], scope.get("query_string", b""), state["api_version"],
               scope.get("scheme"), header(scope, b"host"), scope.get("root_path", ""))
        kept = answers.get(key)
        version = answers.version()
        flight = self._flights.get(key)
        if kept is None and flight is not None and flight[0] == version:
            # The same read is being built from data as fresh as this request's: share it
            # (a burst of polls after a change builds the answer once, not once per poll).
            kept = await asyncio.shield(flight[1])
        if kept is not None:
            status, response_headers, body = kept
            await send({"type": "http.response.start", "status": status, "headers": response_headers})
            await send({"type": "http.response.body", "body": body})
            return
        done: asyncio.Future = asyncio.get_running_loop().create_future()
        self._flights[key] = (version, done)
        start: Message = {}
        body_parts: list[bytes] = []

        async def keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body_parts.append(message.get("body", b""))
                if not message.get("more_body") and start.get("status") == 200:
                    body = b"".join(body_parts)
                    answer = (200, list(start.get("headers", [])), body)
                    answers.put(key, answer, version, size=len(body))
                    if not done.done():
                        done.set_result(answer)
            await send(message)

        try:
            await self.app(scope, receive, keep)
        finally:
            # A later request may have replaced our entry (the data changed meanwhile) and
            # even finished and removed its own: remove the entry only if it is still ours.
            flight = self._flights.get(key)
            if flight is not None and flight[1] is done:
                del self._flights[key]
            if not done.done():
                done.set_result(None)  # an error or a refusal: those waiting build their own
