"""What the dashboard's pages read while they are open: events as they happen (server-sent
events), node stats for the live charts, and the statuses the lists and the cluster page show.

All under /dashboard/, authenticated by the session cookie; JSON errors are `{"error": …}`
with the service's status (the pages' scripts show the message).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from floe.errors import InvalidInput, ServiceError
from floe.services import clusters, dashboard, events, node_stats
from floe.web import session

router = APIRouter(prefix="/dashboard")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# A stream ends after this long and the browser's EventSource reconnects at once (Last-Event-ID:
# nothing is lost), so an open page never holds a server that is shutting down for long.
STREAM_SECONDS = 30.0


def _error(exc: ServiceError) -> JSONResponse:
    return JSONResponse({"error": exc.detail}, status_code=exc.status, headers={"Cache-Control": "no-store"})


def _json(body: Any) -> JSONResponse:
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.get("/clusters.json", include_in_schema=False)
def cluster_statuses(request: Request) -> Response:
    """uuid → [status, health, masters, workers] of the clusters a list page shows."""
    caller = session.caller_of(request)
    project = request.query_params.get("project") or "all"
    try:
        rows = dashboard.cluster_rows(request.app.state.runtime.db, caller, None if project == "all" else project)
    except ServiceError as exc:
        return _error(exc)
    return _json({r.uuid: [r.status, r.health_status, r.master_count, r.node_count] for r in rows})


@router.get("/clusters/{ident}/status.json", include_in_schema=False)
def cluster_status(request: Request, ident: str) -> Response:
    """The cluster's status and health, and its nodes' (for the cluster page's live table)."""
    caller = session.caller_of(request)
    db = request.app.state.runtime.db
    try:
        acting = dashboard.cluster_owner(db, caller, ident)
        cluster = clusters.get_cluster(db, acting, ident).cluster
        nodes = clusters.list_nodes(db, acting, ident)
    except ServiceError as exc:
        return _error(exc)
    return _json({
        "status": cluster.status, "status_reason": cluster.status_reason or "",
        "health_status": cluster.health_status, "node_count": cluster.node_count,
        "master_count": cluster.master_count, "api_address": cluster.api_address or "",
        "nodes": [{"name": v.node.name, "role": v.node.role, "nodegroup": v.nodegroup, "address": v.node.address or "",
                   "state": v.node.state, "health": v.node.health_status, "reason": v.node.health_reason or ""}
                  for v in nodes],
    })


@router.get("/clusters/{ident}/stats.json", include_in_schema=False)
def cluster_stats(request: Request, ident: str) -> Response:
    """Each node's counters now (node_stats.cluster_node_stats); the page charts their rates."""
    caller = session.caller_of(request)
    runtime = request.app.state.runtime
    try:
        acting = dashboard.cluster_owner(runtime.db, caller, ident)
        return _json({"time": time.time(), "nodes": node_stats.cluster_node_stats(runtime, acting, ident)})
    except ServiceError as exc:
        return _error(exc)


def _last_id(request: Request) -> int | None:
    value = request.headers.get("last-event-id") or request.query_params.get("last_id") or ""
    if not value.strip():
        return None
    value = value.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 18):
        raise InvalidInput(f"Last-Event-ID must be an event id, not {value[:40]!r}")
    return int(value)


def _sse(event: dict[str, Any] | None) -> str:
    if event is None:
        return ": keep-alive\n\n"
    return f"id: {event['id']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


@router.get("/events", include_in_schema=False)
async def event_stream(request: Request) -> Response:
    """Events as they happen: of ?cluster=UUID, else of ?project=ID (every project for an admin
    with ?project=all, else the session's project)."""
    caller = await run_in_threadpool(session.caller_of, request)
    runtime = request.app.state.runtime
    cluster = request.query_params.get("cluster")
    project = request.query_params.get("project") or ""
    try:
        after = _last_id(request)
        every = False
        if cluster:
            acting = await run_in_threadpool(dashboard.cluster_owner, runtime.db, caller, cluster)
        elif project == "all" and caller.is_admin:
            acting, every = caller, True
        else:
            acting = await run_in_threadpool(dashboard.acting_in, runtime.db, caller,
                                             project if project and project != "all" else caller.project_id)
        stream = await events.open_stream(runtime, acting, cluster or None, after, all_projects=every,
                                          heartbeat=10.0)
    except ServiceError as exc:
        return _error(exc)

    async def body() -> AsyncIterator[str]:
        yield "retry: 1000\n: ready\n\n"
        ends = time.monotonic() + STREAM_SECONDS
        async for event in stream:
            yield _sse(event)
            if time.monotonic() >= ends or await request.is_disconnected():
                return

    return StreamingResponse(body(), media_type="text/event-stream", headers=SSE_HEADERS)
