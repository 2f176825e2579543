"""floe's extension: what happened to a project's clusters, stored and live.

    GET /v1/floe/clusters/{ident}/events   the cluster's events, oldest first (?since=ID&limit=N)
    GET /v1/floe/events                    the project's events as a server-sent-events stream
                                           (text/event-stream), optionally of one ?cluster=;
                                           resumes after the Last-Event-ID header (or ?last_id=)
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from floe.api.auth import CallerDep, RuntimeDep
from floe.errors import InvalidInput
from floe.services import events as svc

router = APIRouter(prefix="/v1/floe", tags=["floe"])

MAX_ID = 2**63 - 1  # a database integer
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class EventView(BaseModel):
    id: int
    time: str
    project_id: str
    cluster_id: str | None
    cluster_name: str
    share_id: str | None
    kind: str
    level: str
    message: str
    operation: int | None
    step: str
    data: dict[str, Any]


class EventList(BaseModel):
    events: list[EventView]


@router.get("/clusters/{ident}/events", response_model=EventList)
def cluster_events(
    runtime: RuntimeDep, caller: CallerDep, ident: str,
    since: Annotated[int | None, Query(ge=0, le=MAX_ID, description="Only events after this id.")] = None,
    limit: Annotated[int, Query(ge=1, le=svc.MAX_LIMIT)] = 100,
) -> EventList:
    """The cluster's events (also of a cluster just deleted), oldest first."""
    return EventList(events=svc.list_events(runtime, caller, ident, since, limit))


def sse(event: dict[str, Any] | None) -> str:
    """One server-sent event (or a keep-alive comment for None)."""
    if event is None:
        return ": keep-alive\n\n"
    return f"id: {event['id']}\nevent: {event['kind']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


def _last_id(header: str | None, query: int | None) -> int | None:
    if query is not None:
        return query
    if header is None or not header.strip():
        return None
    value = header.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 18):
        raise InvalidInput(f"Last-Event-ID must be an event id (a non-negative integer), not {value[:40]!r}")
    return int(value)


@router.get(
    "/events", response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events, one per event."}},
)
async def event_stream(
    runtime: RuntimeDep, caller: CallerDep,
    cluster: Annotated[str | None, Query(max_length=255, description="Only this cluster's (name or uuid).")] = None,
    last_id: Annotated[int | None, Query(ge=0, le=MAX_ID, description="Resume after this event id.")] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """The project's events as they happen. The first message is a comment (`: ready`) sent once
    the stream's start is fixed: anything after it is delivered."""
    after = _last_id(last_event_id, last_id)
    events = await svc.open_stream(runtime, caller, cluster, after)  # a 404 comes before the 200

    async def body() -> AsyncIterator[str]:
        yield "retry: 2000\n: ready\n\n"
        async for event in events:
            yield sse(event)

    return StreamingResponse(body(), media_type="text/event-stream", headers=SSE_HEADERS)
