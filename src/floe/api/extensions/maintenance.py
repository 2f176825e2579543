"""floe's own operator endpoints: orphan cleanup, image import and clusters' registry credentials."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import IO

from fastapi import APIRouter, Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from floe.api.auth import CallerDep, RuntimeDep
from floe.errors import Forbidden, InvalidInput
from floe.services import images, maintenance, registry

router = APIRouter(prefix="/v1/floe", tags=["floe"])

IMAGE_FIELD = "file"
_RAW_TYPES = (b"application/x-tar", b"application/octet-stream")
_MAX_PART_HEADERS = 16 * 1024  # bytes of one part's headers


@router.post("/cleanup")
def cleanup(runtime: RuntimeDep, caller: CallerDep) -> dict:
    """Remove host objects of clusters that no longer exist (admin only)."""
    if not caller.is_admin:
        raise Forbidden("only an admin may clean up the host")
    return {"removed": maintenance.cleanup_orphans(runtime)}


class _ArchiveWriter:
    """Writes the archive of an upload to `out` as its body streams in: the `file` field of a
    multipart/form-data body (what floe's client sends), or a raw application/x-tar body."""

    def __init__(self, content_type: str, out: IO[bytes]):
        self.out = out
        self.found = False
        ctype, params = parse_options_header(content_type)
        self.parser: MultipartParser | None = None
        if ctype == b"multipart/form-data":
            boundary = params.get(b"boundary")
            if not boundary:
                raise InvalidInput("the multipart/form-data body has no boundary")
            self._headers: dict[bytes, bytes] = {}
            self._field = self._value = b""
            self._header_bytes = 0
            self._in_file = False
            self.parser = MultipartParser(boundary, callbacks={
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            })
        elif ctype not in _RAW_TYPES:
            raise InvalidInput(
                f"send the archive as multipart/form-data (field {IMAGE_FIELD!r}) or as application/x-tar, "
                f"not {ctype.decode('latin-1') or 'an untyped body'}"
            )

    def write(self, chunk: bytes) -> None:
        if self.parser is None:
            self.found = self.found or bool(chunk)
            self.out.write(chunk)
            return
        try:
            self.parser.write(chunk)
        except FormParserError as exc:
            raise InvalidInput(f"the multipart/form-data body is malformed: {exc}") from None

    def finish(self) -> None:
        if self.parser is not None:
            try:
                self.parser.finalize()
            except FormParserError as exc:
                raise InvalidInput(f"the multipart/form-data body is malformed: {exc}") from None
        if not self.found:
            raise InvalidInput(f"the upload holds no archive: send it as the multipart field {IMAGE_FIELD!r}")
        self.out.flush()

    def _part_begin(self) -> None:
        self._headers, self._field, self._value, self._header_bytes = {}, b"", b"", 0

    def _grow(self, data: bytes) -> bytes:
        self._header_bytes += len(data)
        if self._header_bytes > _MAX_PART_HEADERS:
            raise InvalidInput(f"a multipart part has more than {_MAX_PART_HEADERS} bytes of headers")
        return data

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += self._grow(data[start:end])

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += self._grow(data[start:end])

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        # The first `file` field is the archive; other fields are ignored, never stored.
        self._in_file = not self.found and params.get(b"name") == IMAGE_FIELD.encode()
        self.found = self.found or self._in_file

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.out.write(data[start:end])

    def _part_end(self) -> None:
        self._in_file = False


@router.post(
    "/images",
    openapi_extra={"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {
            "type": "object", "required": [IMAGE_FIELD],
            "properties": {IMAGE_FIELD: {"type": "string", "format": "binary"}},
        }},
        "application/x-tar": {"schema": {"type": "string", "format": "binary"}},
    }}},
)
async def import_image(request: Request, runtime: RuntimeDep, caller: CallerDep, library: bool = False) -> dict:
    """Import a `docker save` tarball into the caller's project namespace of the registry every
    node uses (`?library=true`: the public library namespace, admins only).

    The caller is checked before a byte of the body is read, and the body streams to one
    temporary file under $FLOE_HOME/tmp (gone once the import ends, or the upload is refused
    for passing FLOE_MAX_IMAGE_BYTES).
    """
    images.check_import(caller, library)
    tmpdir = runtime.settings.home / "tmp"
    tmpdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.NamedTemporaryFile(dir=tmpdir, suffix=".tar") as tmp:
        writer = _ArchiveWriter(request.headers.get("content-type", ""), tmp)
        try:
            async for chunk in request.stream():
                if chunk:
                    await run_in_threadpool(writer.write, chunk)
        except ClientDisconnect:
            raise InvalidInput("the upload ended before its body did") from None
        await run_in_threadpool(writer.finish)
        return {"images": await run_in_threadpool(images.import_archive, runtime, caller, Path(tmp.name), library)}


@router.get("/clusters/{ident}/registry-credential")
def cluster_registry_credential(ident: str, runtime: RuntimeDep, caller: CallerDep) -> dict:
    """The cluster's pull credential for floe's registry: pulls library and the project's images."""
    return registry.cluster_pull_credential(runtime, caller, ident)
