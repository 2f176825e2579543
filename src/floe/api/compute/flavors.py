"""Nova's flavor routes (`/v2.1/flavors…`): everyone reads the catalog, admins change it.

One service call per route (services/flavors.py). Bodies are read as Nova reads them: numbers
may come as strings of digits, booleans as Nova's words ("true", "yes", "1"…), and anything floe
cannot store (an ephemeral disk, swap, an RX/TX factor) is refused rather than dropped.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from floe.api.auth import CallerDep, RuntimeDep
from floe.api.compute import views
from floe.api.compute.versions import DESCRIPTION_VERSION, request_version
from floe.errors import InvalidInput, NotFound
from floe.services import flavors as svc

router = APIRouter(tags=["flavors"])

_INT = re.compile(r"-?[0-9]{1,18}")
_TRUE = {"true", "1", "on", "yes", "y", "t"}
_FALSE = {"false", "0", "off", "no", "n", "f"}
# Keys of a create body and the FlavorSpec field each fills (floe:gpus is floe's own).
_FIELDS = {"name": "name", "id": "id", "ram": "ram", "vcpus": "vcpus", "disk": "disk",
           "os-flavor-access:is_public": "is_public", svc.GPU_SPEC: "gpus", "description": "description"}
_NUMBERS = ("ram", "vcpus", "disk", svc.GPU_SPEC)
_REQUIRED = ("name", "ram", "vcpus", "disk")
# Nova's keys whose values floe has no room for: each is accepted only at its "nothing" value.
_NOTHING = {"OS-FLV-EXT-DATA:ephemeral": (0, "0"), "swap": (0, "0", ""), "rxtx_factor": (1, 1.0, "1", "1.0")}
_WHY_NOTHING = {"OS-FLV-EXT-DATA:ephemeral": "floe's nodes have no ephemeral disk",
                "swap": "floe's nodes have no swap space", "rxtx_factor": "floe does not scale nodes' bandwidth"}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 64 else text[:64] + "…"


def _invalid(field: str, value: Any, why: str) -> InvalidInput:
    # Nova's wording of a schema refusal, so its users recognise it.
    return InvalidInput(f"Invalid input for field/attribute {field}. Value: {_shown(value)}. {why}")


def _number(field: str, value: Any) -> Any:
    """A whole number from JSON's number or a string of ASCII digits, as Nova's schema takes it."""
    if isinstance(value, str) and _INT.fullmatch(value.strip()):
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _invalid(field, value, f"{_shown(value)} is not a whole number")


def _boolean(field: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise _invalid(field, value, f"{_shown(value)} is not a boolean")


def _create_spec(body: Any, version: tuple[int, int]) -> svc.FlavorSpec:
    """The FlavorSpec a Nova create body asks for; InvalidInput naming the first thing wrong."""
    flavor = body.get("flavor") if isinstance(body, dict) else None
    if not isinstance(body, dict) or set(body) != {"flavor"} or not isinstance(flavor, dict):
        raise InvalidInput("Invalid input: the body must be {\"flavor\": {\"name\": …, \"ram\": …, \"vcpus\": …, "
                           "\"disk\": …}}")
    allowed = set(_FIELDS) | set(_NOTHING)
    if version < DESCRIPTION_VERSION:
        allowed.discard("description")  # Nova takes it from 2.55 on
    extra = sorted(k for k in flavor if k not in allowed)
    if extra:
        raise InvalidInput(f"Invalid input for field/attribute flavor. Additional properties are not allowed "
                           f"({', '.join(repr(k[:64]) for k in extra[:5])} was unexpected)")
    for key in _REQUIRED:
        if key not in flavor:
            raise InvalidInput(f"Invalid input for field/attribute flavor. '{key}' is a required property")
    for key, nothing in _NOTHING.items():
        value = flavor.get(key, nothing[0])
        if isinstance(value, bool) or value not in nothing:
            raise _invalid(key, value, f"{_WHY_NOTHING[key]}: it must be {nothing[0]}")
    values: dict[str, Any] = {}
    for key, field in _FIELDS.items():
        if key not in flavor:
            continue
        value = flavor[key]
        if key in _NUMBERS:
            value = _number(key, value)
        elif key == "os-flavor-access:is_public":
            value = _boolean(key, value)
        if value is None and key in ("id", "description"):
            continue  # Nova: null id means "choose one", null description none
        values[field] = value
    try:
        return svc.FlavorSpec.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = next((k for k, f in _FIELDS.items() if f == str((err.get("loc") or ("",))[0])), "flavor")
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        raise _invalid(field, err.get("input"), msg) from None


def _query_int(request: Request, name: str, what: str) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if not _INT.fullmatch(value.strip()):
        raise InvalidInput(what.format(value=value[:64]))
    return int(value)


def _query_public(value: str | None) -> bool | None:
    """Nova's is_public filter: public only by default, "none" for all, else a boolean."""
    if value is None:
        return True
    if value.lower() == "none":
        return None
    if value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise InvalidInput(f"Invalid is_public filter [{value[:64]}]")


def _list(request: Request, runtime: RuntimeDep, caller: CallerDep, view) -> JSONResponse:
    q = request.query_params
    limit = _query_int(request, "limit", "limit param must be an integer")
    flavors = svc.list_flavors(
        runtime.db, caller,
        is_public=_query_public(q.get("is_public")),
        min_disk=_query_int(request, "minDisk", "Invalid minDisk filter [{value}]"),
        min_ram=_query_int(request, "minRam", "Invalid minRam filter [{value}]"),
        limit=limit, marker=q.get("marker"),
        sort_key=q.get("sort_key", "flavorid"), sort_dir=q.get("sort_dir", "asc"),
    )
    body: dict[str, Any] = {"flavors": [view(request, f) for f in flavors]}
    links = views.next_link(request, flavors, min(limit, svc.MAX_LIMIT) if limit is not None else svc.MAX_LIMIT)
    if links:
        body["flavors_links"] = links
    return JSONResponse(body)


_LIST_DOC = ("Query: is_public (true, false or none: admins only; others see public flavors), minDisk, minRam, "
             "limit, marker (a flavor id), sort_key (Nova's: flavorid, name, memory_mb, root_gb, vcpus, …), "
             "sort_dir.")


@router.get("/flavors", summary="Nova's flavor list: id, name, links", description=_LIST_DOC)
def list_flavors(request: Request, runtime: RuntimeDep, caller: CallerDep) -> JSONResponse:
    return _list(request, runtime, caller, views.summary)


@router.get("/flavors/detail", summary="Nova's flavor list with every field", description=_LIST_DOC)
def list_flavors_detail(request: Request, runtime: RuntimeDep, caller: CallerDep) -> JSONResponse:
    return _list(request, runtime, caller, views.detail)


@router.post("/flavors", summary="Create a flavor (admins)",
             description="Nova's body; `floe:gpus` (floe's) gives each node that many whole host GPUs.")
def create_flavor(request: Request, runtime: RuntimeDep, caller: CallerDep,
                  body: Any = Body(default=None)) -> JSONResponse:
    spec = _create_spec(body, request_version(request))
    return JSONResponse({"flavor": views.detail(request, svc.create_flavor(runtime.db, caller, spec))})


@router.get("/flavors/{flavor_id}", summary="One flavor, by id (or name)")
def show_flavor(flavor_id: str, request: Request, runtime: RuntimeDep, caller: CallerDep) -> JSONResponse:
    return JSONResponse({"flavor": views.detail(request, svc.show_flavor(runtime.db, caller, flavor_id))})


@router.delete("/flavors/{flavor_id}", status_code=202, response_class=Response,
               summary="Delete a flavor (admins; refused while a cluster, template or nodegroup names it)")
def delete_flavor(flavor_id: str, runtime: RuntimeDep, caller: CallerDep) -> Response:
    svc.delete_flavor(runtime.db, caller, flavor_id)
    return Response(status_code=202)


@router.get("/flavors/{flavor_id}/os-extra_specs", summary="A flavor's extra specs (floe:gpus)")
def list_extra_specs(flavor_id: str, runtime: RuntimeDep, caller: CallerDep) -> JSONResponse:
    return JSONResponse({"extra_specs": svc.extra_specs(svc.show_flavor(runtime.db, caller, flavor_id))})


@router.post("/flavors/{flavor_id}/os-extra_specs",
             summary="Set floe:gpus (admins; refused while the flavor is in use)")
def create_extra_specs(flavor_id: str, runtime: RuntimeDep, caller: CallerDep,
                       body: Any = Body(default=None)) -> JSONResponse:
    specs = body.get("extra_specs") if isinstance(body, dict) else None
    if not isinstance(specs, dict) or not specs:
        raise InvalidInput("Invalid input: the body must be {\"extra_specs\": {\"floe:gpus\": \"N\"}}")
    unknown = sorted(k for k in specs if k != svc.GPU_SPEC)
    if unknown:
        raise InvalidInput(f"floe's flavors have one extra spec, {svc.GPU_SPEC} (whole host GPUs per node); "
                           f"{unknown[0][:64]!r} is not it")
    flavor = svc.set_gpus(runtime.db, caller, flavor_id, _number(svc.GPU_SPEC, specs[svc.GPU_SPEC]))
    return JSONResponse({"extra_specs": svc.extra_specs(flavor)})


def _no_key(flavor_id: str, key: str) -> NotFound:
    return NotFound(f"Flavor {flavor_id} has no extra specs with key {key[:255]}.")


@router.get("/flavors/{flavor_id}/os-extra_specs/{key}", summary="One extra spec of a flavor")
def show_extra_spec(flavor_id: str, key: str, runtime: RuntimeDep, caller: CallerDep) -> JSONResponse:
    specs = svc.extra_specs(svc.show_flavor(runtime.db, caller, flavor_id))
    if key not in specs:
        raise _no_key(flavor_id, key)
    return JSONResponse({key: specs[key]})


@router.delete("/flavors/{flavor_id}/os-extra_specs/{key}", status_code=200, response_class=Response,
               summary="Remove floe:gpus (admins; refused while the flavor is in use)")
def delete_extra_spec(flavor_id: str, key: str, runtime: RuntimeDep, caller: CallerDep) -> Response:
    if key != svc.GPU_SPEC:
        svc.require_admin(caller, "os-flavor-extra-specs:delete")
        svc.show_flavor(runtime.db, caller, flavor_id)  # 404 for no such flavor first
        raise _no_key(flavor_id, key)
    svc.set_gpus(runtime.db, caller, flavor_id, 0)
    return Response(status_code=200)


@router.get("/flavors/{flavor_id}/os-flavor-access", summary="Projects given a private flavor (none: admins only)")
def flavor_access(flavor_id: str, runtime: RuntimeDep, caller: CallerDep) -> JSONResponse:
    flavor = svc.show_flavor(runtime.db, caller, flavor_id)
    if flavor.is_public:
        raise NotFound("Access list not available for public flavors.")
    # floe gives private flavors to no project: only admins see and use them.
    return JSONResponse({"flavor_access": []})
