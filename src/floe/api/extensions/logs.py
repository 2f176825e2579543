"""/v1/floe/clusters/{ident}/logs: a node daemon's log (dockerd by default), its last lines or followed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from floe.api.auth import CallerDep, RuntimeDep
from floe.services import logs as svc

router = APIRouter(prefix="/v1/floe", tags=["floe"])

TEXT = "text/plain; charset=utf-8"
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.get(
    "/clusters/{ident}/logs", response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "Log lines; with follow, a stream of them."}},
)
def cluster_logs(
    runtime: RuntimeDep, caller: CallerDep, ident: str,
    node: Annotated[str | None, Query(max_length=64, description="One node (by name); all nodes if absent.")] = None,
    daemon: Annotated[str | None, Query(max_length=32, description="dockerd (the default), journald, "
                                         "slurmd, slurmctld, munged, …")] = None,
    tail: Annotated[int | None, Query(ge=0, le=svc.MAX_TAIL, description="Last lines of each log (100).")] = None,
    follow: Annotated[bool, Query(description="Then stream new lines until the client goes.")] = False,
) -> Response:
    """A daemon's log on one node, or on every node (each line prefixed with `NODE | `)."""
    selection = svc.select_logs(runtime, caller, ident, node, daemon, tail)
    if follow:
        return StreamingResponse(svc.follow_logs(selection), media_type=TEXT, headers=STREAM_HEADERS)
    return PlainTextResponse(svc.read_logs(selection), media_type=TEXT)
