"""Cluster templates: create, find, list, patch and delete, with Magnum's rules (no HTTP here).

Also home to what the template and cluster services share: name rules,
pagination and the wording of validation errors.
"""

from __future__ import annotations

import ast
import ipaddress
import json
import math
import random
import re
import uuid as uuidlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

import jsonpatch
import jsonpointer
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from floe.coe.base import SUPPORTED_COES
from floe.db.models import Cluster, ClusterTemplate
from floe.db.session import Database
from floe.errors import Conflict, Forbidden, InvalidInput, NotFound
from floe.services.flavors import check_flavor
from floe.services.identity import Caller

SUPPORTED_SERVER_TYPES = ("vm", "bm")
SUPPORTED_NETWORK_DRIVERS = ("docker",)
DEFAULT_IMAGE = "floe-node"
DRIVER = "floe"
MAX_LIMIT = 1000
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Magnum's generated names (zeta-22-cluster) use the Greek alphabet.
_GREEK = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
    "sigma tau upsilon phi chi psi omega"
).split()

# Bounds on what one request may store (each refusal names its bound).
MAX_LABELS = 100
MAX_LABEL_KEY = 255
MAX_LABEL_VALUE = 1024  # characters, of a value's text form
# python-magnumclient sends a patch's labels as one string: at most this many characters.
MAX_LABELS_TEXT = 128 * 1024
MAX_DOCKER_VOLUME_GB = 16384  # 16 TiB
_ASCII_INT = re.compile(r"[0-9]{1,18}")


def _finite(v: float) -> float:
    if not math.isfinite(v):
        # JSON has no NaN or Infinity: stored, they would make every answer non-standard JSON.
        raise ValueError(f"{v} is not a finite number")
    return v


LabelValue = str | int | bool | Annotated[float, AfterValidator(_finite)]


# ---------------------------------------------------------------------------
# Shared helpers


def check_dns_name(name: str, what: str = "name") -> str:
    """`name` if it is an RFC 1123 label (lower-case letters, digits, '-', at most 63)."""
    if len(name) > 63 or not DNS_LABEL.match(name):
        raise ValueError(
            f"{what} {name!r} is not DNS-safe: use 1-63 lower-case letters, digits or '-', "
            "starting and ending with a letter or digit"
        )
    return name


def generate_name(suffix: str) -> str:
    """A readable random name such as zeta-22-cluster (always DNS-safe)."""
    return f"{random.choice(_GREEK)}-{random.randint(0, 99)}-{suffix}"


def is_uuid_like(value: str) -> bool:
    try:
        return str(uuidlib.UUID(value)) == value.lower()
    except ValueError:
        return False


def describe_validation_errors(errors: Sequence[dict[str, Any]], skip: tuple[str, ...] = ()) -> str:
    """One readable sentence per Pydantic error, naming the field it is about."""
    parts = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if str(p) not in skip]
        field = ".".join(loc)
        kind = err.get("type", "")
        msg = str(err.get("msg", "invalid value"))
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if not field:
            if kind == "missing":
                parts.append("The request body is missing")
            else:
                parts.append(f"The request body is not acceptable: {msg}")
        elif kind == "extra_forbidden":
            parts.append(f"Unknown attribute '{field}'")
        elif kind == "missing":
            parts.append(f"Mandatory attribute '{field}' is missing")
        else:
            parts.append(f"Invalid value for '{field}': {msg}")
    return "; ".join(parts) or "invalid input"


def ascii_int(value: str) -> int | None:
    """The number a string of ASCII digits (at most 18) spells, else None.

    str.isdigit() also takes "²" (which int() refuses) and "١٢" (which it takes); a number
    given as text must be plain ASCII, and short enough that no bound is near.
    """
    value = value.strip()
    return int(value) if _ASCII_INT.fullmatch(value) else None


def check_labels(labels: dict[str, Any] | None) -> dict[str, Any] | None:
    """`labels` if within floe's bounds (count, key and value lengths), else ValueError."""
    if labels is None:
        return labels
    if len(labels) > MAX_LABELS:
        raise ValueError(f"{len(labels)} labels given: at most {MAX_LABELS} are allowed")
    for key, value in labels.items():
        if not 1 <= len(key) <= MAX_LABEL_KEY:
            raise ValueError(f"label key {key[:64]!r}… must be 1-{MAX_LABEL_KEY} characters")
        if len(str(value)) > MAX_LABEL_VALUE:
            raise ValueError(f"the value of label {key!r} is longer than {MAX_LABEL_VALUE} characters")
    return labels


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _literal_dict(text: str) -> dict | None:
    """A dict written as a Python literal of plain constants (python-magnumclient sends
    `str(dict)`), or None. Only that shape is accepted: nothing is evaluated."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    node = tree.body
    if not isinstance(node, ast.Dict):
        return None
    out: dict = {}
    for k, v in zip(node.keys, node.values, strict=True):
        if not (isinstance(k, ast.Constant) and isinstance(k.value, str) and isinstance(v, ast.Constant)):
            return None
        if not isinstance(v.value, str | int | float) or (isinstance(v.value, float) and not math.isfinite(v.value)):
            return None
        out[k.value] = v.value
    return out


def coerce_dict(value: Any, what: str) -> Any:
    """Accept a dict given as a string, as python-magnumclient sends labels in a patch
    (`str(dict)`: a Python literal), or as JSON text."""
    if not isinstance(value, str):
        return value
    if len(value) > MAX_LABELS_TEXT:
        raise InvalidInput(f"{what} given as text must be at most {MAX_LABELS_TEXT} characters")
    try:
        parsed = json.loads(value, parse_constant=_no_constant)
    except (ValueError, RecursionError, MemoryError):
        parsed = _literal_dict(value)
    if isinstance(parsed, dict):
        return parsed
    raise InvalidInput(f"{what} must be a dictionary, not {value[:200]!r}")


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list; `next_marker` is set when a further page may exist."""

    items: list[T]
    limit: int
    next_marker: str | None


def validate_paging(limit: int | None, sort_key: str, sort_dir: str, sort_keys: Sequence[str]) -> int:
    """Check Magnum's paging parameters; returns the effective limit."""
    if limit is not None and limit <= 0:
        raise InvalidInput("Limit must be positive")
    if sort_dir not in ("asc", "desc"):
        raise InvalidInput(f"Invalid sort direction: {sort_dir}. Acceptable values are 'asc' or 'desc'")
    if sort_key not in sort_keys:
        raise InvalidInput(
            f'The sort_key value "{sort_key}" is an invalid field for sorting; '
            f"valid keys: {', '.join(sorted(sort_keys))}"
        )
    return min(limit or MAX_LIMIT, MAX_LIMIT)


def paginate(
    session: Session,
    stmt: Select,
    model: type,
    *,
    limit: int,
    marker: Any | None,
    sort_key: str,
    sort_dir: str,
) -> list:
    """Keyset pagination ordered by (sort_key, id), NULLs first ascending (as SQLite does)."""
    col = getattr(model, sort_key)
    pk = model.id
    asc = sort_dir == "asc"
    if marker is not None:
        value = getattr(marker, sort_key)
        if asc:
            if value is None:
                after = or_(col.is_not(None), and_(col.is_(None), pk > marker.id))
            else:
                after = or_(col > value, and_(col == value, pk > marker.id))
        else:
            if value is None:
                after = and_(col.is_(None), pk < marker.id)
            else:
                after = or_(col < value, and_(col == value, pk < marker.id), col.is_(None))
        stmt = stmt.where(after)
    if asc:
        stmt = stmt.order_by(col.asc().nulls_first(), pk.asc())
    else:
        stmt = stmt.order_by(col.desc().nulls_last(), pk.desc())
    return list(session.scalars(stmt.limit(limit)))


def page_of(items: list[T], limit: int, marker_of) -> Page[T]:
    """Magnum offers a next page whenever a page came back full."""
    nxt = marker_of(items[-1]) if items and len(items) == limit else None
    return Page(items=items, limit=limit, next_marker=nxt)


# ---------------------------------------------------------------------------
# Template fields


class MagnumSpec(BaseModel):
    """A create request in Magnum's shape: unknown fields refused, null meaning the default, and
    `name`, when given, a DNS label."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=63)

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        # Magnum's clients send null for every option the user left out (create_timeout,
        # node_count…); for fields with a non-null default, null means "the default".
        if isinstance(data, dict):
            return {
                k: v
                for k, v in data.items()
                if not (v is None and k in cls.model_fields and cls.model_fields[k].default is not None)
            }
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return None if v is None else check_dns_name(v)


class TemplateSpec(MagnumSpec):
    """Every writable cluster-template field, with floe's rules; unknown fields are refused."""

    coe: str
    image_id: str = Field(default=DEFAULT_IMAGE, min_length=1, max_length=255)
    flavor_id: str | None = Field(default=None, min_length=1, max_length=255)
    master_flavor_id: str | None = Field(default=None, min_length=1, max_length=255)
    dns_nameserver: str | None = Field(default=None, min_length=1, max_length=255)
    keypair_id: str | None = Field(default=None, min_length=1, max_length=255)
    external_network_id: str | None = Field(default=None, min_length=1, max_length=255)
    fixed_network: str | None = Field(default=None, min_length=1, max_length=255)
    fixed_subnet: str | None = Field(default=None, min_length=1, max_length=255)
    network_driver: str | None = Field(default=None, min_length=1, max_length=255)
    volume_driver: str | None = Field(default=None, min_length=1, max_length=255)
    apiserver_port: int | None = Field(default=None, ge=1024, le=65535, strict=True)
    docker_volume_size: int | None = Field(default=None, ge=1, le=MAX_DOCKER_VOLUME_GB, strict=True)
    docker_storage_driver: str | None = Field(default=None, min_length=1, max_length=64)
    cluster_distro: str | None = Field(default=None, min_length=1, max_length=255)
    http_proxy: str | None = Field(default=None, min_length=1, max_length=255)
    https_proxy: str | None = Field(default=None, min_length=1, max_length=255)
    no_proxy: str | None = Field(default=None, min_length=1, max_length=255)
    insecure_registry: str | None = Field(default=None, min_length=1, max_length=255)
    labels: dict[str, LabelValue] = Field(default_factory=dict)
    tls_disabled: bool = False
    public: bool = False
    hidden: bool = False
    registry_enabled: bool = False
    master_lb_enabled: bool = False
    floating_ip_enabled: bool = False
    server_type: str = "vm"
    tags: str | None = Field(default=None, max_length=255)
    # Magnum lets a template name its driver; floe has exactly one.
    driver: str | None = None

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, LabelValue]) -> dict[str, LabelValue]:
        return check_labels(v)  # type: ignore[return-value]

    @field_validator("coe")
    @classmethod
    def _coe(cls, v: str) -> str:
        if v not in SUPPORTED_COES:
            raise ValueError(f"coe {v!r} is not supported; floe supports: {', '.join(SUPPORTED_COES)}")
        return v

    @field_validator("tls_disabled")
    @classmethod
    def _tls(cls, v: bool) -> bool:
        if v:
            raise ValueError("tls_disabled=true is not supported: floe nodes always use TLS")
        return v

    @field_validator("server_type")
    @classmethod
    def _server_type(cls, v: str) -> str:
        if v not in SUPPORTED_SERVER_TYPES:
            raise ValueError(
                f"Server type {v} is not supported, expecting a {'/'.join(SUPPORTED_SERVER_TYPES)} server type"
            )
        return v

    @field_validator("network_driver")
    @classmethod
    def _network_driver(cls, v: str | None) -> str | None:
        if v is not None and v not in SUPPORTED_NETWORK_DRIVERS:
            raise ValueError(
                f"Network driver type {v} is not supported, expecting a "
                f"{'/'.join((*SUPPORTED_NETWORK_DRIVERS, 'unspecified'))} network driver"
            )
        return v

    @field_validator("driver")
    @classmethod
    def _driver(cls, v: str | None) -> str | None:
        if v not in (None, "", DRIVER):
            raise ValueError(f"driver {v!r} is not available; floe has one driver: {DRIVER}")
        return None

    @field_validator("dns_nameserver")
    @classmethod
    def _dns(cls, v: str | None) -> str | None:
        if v is None:
            return v
        for part in v.split(","):
            try:
                ipaddress.ip_address(part.strip())
            except ValueError:
                raise ValueError(
                    f"Expected a single dns address or comma separated dns list, but received {v}"
                ) from None
        return v


# Fields that may change on a template clusters already use (Magnum lets
# publishing flags change; floe also allows a rename: clusters refer by uuid).
IN_USE_MUTABLE = frozenset({"name", "public", "hidden", "tags"})
READ_ONLY = frozenset({"id", "uuid", "links", "created_at", "updated_at", "project_id", "user_id"})
NON_REMOVABLE = frozenset(
    {"coe", "image_id", "network_driver", "external_network_id", "tls_disabled", "public",
     "server_type", "registry_enabled", "cluster_distro", "hidden"}
)
SORT_KEYS = (
    "id", "uuid", "name", "coe", "image_id", "flavor_id", "master_flavor_id", "keypair_id",
    "docker_volume_size", "server_type", "public", "hidden", "tags", "created_at", "updated_at",
)
_STORED = tuple(f for f in TemplateSpec.model_fields if f != "driver")


def template_fields(ct: ClusterTemplate) -> dict[str, Any]:
    """The writable fields of a stored template, as TemplateSpec names them."""
    return {f: getattr(ct, f) for f in _STORED} | {"driver": None}


# ---------------------------------------------------------------------------
# Queries


def _visible(caller: Caller):
    return or_(ClusterTemplate.project_id == caller.project_id, ClusterTemplate.public.is_(True))


def find_template(session: Session, caller: Caller, ident: str) -> ClusterTemplate:
    """A template the caller can see (its project's or a public one), by uuid or name.

    NotFound if none; Conflict if the name matches more than one.
    """
    base = select(ClusterTemplate).where(_visible(caller))
    if is_uuid_like(ident):
        ct = session.scalars(base.where(ClusterTemplate.uuid == ident.lower())).first()
        if ct is not None:
            return ct
    matches = list(session.scalars(base.where(ClusterTemplate.name == ident).limit(2)))
    if not matches:
        raise NotFound(f"ClusterTemplate {ident} could not be found.")
    if len(matches) > 1:
        raise Conflict(
            f"Multiple cluster templates exist with same name {ident}. "
            "Please use the cluster template uuid instead."
        )
    return matches[0]


def is_referenced(session: Session, ct: ClusterTemplate) -> bool:
    """Whether any cluster (in any project) was made from this template."""
    stmt = select(func.count()).select_from(Cluster).where(Cluster.cluster_template_id == ct.uuid)
    return bool(session.scalar(stmt))


def _check_owner(caller: Caller, ct: ClusterTemplate) -> None:
    if ct.project_id != caller.project_id and not caller.is_admin:
        raise Forbidden(f"ClusterTemplate {ct.uuid} belongs to another project and cannot be changed.")


def _check_publish(caller: Caller, public: bool, hidden: bool) -> None:
    if (public or hidden) and not caller.is_admin:
        raise Forbidden("Not authorized to set public or hidden flag for cluster template.")


def _name_taken(session: Session, project_id: str, name: str, exclude_id: int | None = None) -> bool:
    stmt = select(ClusterTemplate.id).where(
        ClusterTemplate.project_id == project_id, ClusterTemplate.name == name
    )
    if exclude_id is not None:
        stmt = stmt.where(ClusterTemplate.id != exclude_id)
    return session.scalars(stmt).first() is not None


# ---------------------------------------------------------------------------
# Operations


def create_template(db: Database, caller: Caller, spec: TemplateSpec) -> ClusterTemplate:
    """Create a template in the caller's project; name generated when absent."""
    _check_publish(caller, spec.public, spec.hidden)
    with db.session() as session:
        check_flavor(session, spec.flavor_id, caller)  # 400 unless in the catalog (or none: the default)
        check_flavor(session, spec.master_flavor_id, caller)
        name = spec.name
        if name is None:
            name = generate_name("template")
            while _name_taken(session, caller.project_id, name):
                name = generate_name("template")
        elif _name_taken(session, caller.project_id, name):
            raise Conflict(f"A ClusterTemplate named {name} already exists in this project.")
        values = spec.model_dump(exclude={"driver", "name"})
        ct = ClusterTemplate(project_id=caller.project_id, user_id=caller.user_id, name=name, **values)
        session.add(ct)
        try:
            session.flush()
        except IntegrityError:
            raise Conflict(f"A ClusterTemplate named {name} already exists in this project.") from None
        return ct


def get_template(db: Database, caller: Caller, ident: str) -> ClusterTemplate:
    """A visible template by uuid or name."""
    with db.session() as session:
        return find_template(session, caller, ident)


def list_templates(
    db: Database,
    caller: Caller,
    *,
    limit: int | None = None,
    marker: str | None = None,
    sort_key: str = "id",
    sort_dir: str = "asc",
) -> Page[ClusterTemplate]:
    """The caller's templates plus public ones (hidden ones only for admins)."""
    limit = validate_paging(limit, sort_key, sort_dir, SORT_KEYS)
    with db.session() as session:
        stmt = select(ClusterTemplate).where(_visible(caller))
        if not caller.is_admin:
            stmt = stmt.where(ClusterTemplate.hidden.is_(False))
        marker_row = None
        if marker is not None:
            marker_row = session.scalars(stmt.where(ClusterTemplate.uuid == marker)).first()
            if marker_row is None:
                raise InvalidInput(f"marker {marker} is not a cluster template in this list")
        items = paginate(
            session, stmt, ClusterTemplate, limit=limit, marker=marker_row, sort_key=sort_key, sort_dir=sort_dir
        )
        return page_of(items, limit, lambda ct: ct.uuid)


def _check_patch_paths(patch: list[dict[str, Any]]) -> None:
    for p in patch:
        if p.get("op") not in ("add", "replace", "remove"):
            raise InvalidInput(f"patch operation {p.get('op')!r} is not supported; use add, replace or remove")
        path = str(p.get("path", ""))
        parts = path.split("/")
        top = parts[1] if len(parts) > 1 else ""
        if top in READ_ONLY:
            raise InvalidInput(f"'/{top}' is an internal attribute and can not be updated")
        if top not in TemplateSpec.model_fields:
            raise InvalidInput(f"'{path}' is not an attribute of a cluster template that can be changed")
        if len(parts) > 2 and top != "labels":
            raise InvalidInput(f"'{path}' is not an attribute of a cluster template that can be changed")
        if p["op"] == "remove" and len(parts) == 2 and top in NON_REMOVABLE:
            raise InvalidInput(f"'{path}' is a mandatory attribute and can not be removed")
        if p["op"] != "remove" and "value" not in p:
            raise InvalidInput("'add' and 'replace' operations need a value")


def apply_patch(doc: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply a JSON patch (add, replace, remove) to `doc`; InvalidInput when it does not apply."""
    for p in patch:
        if p.get("op") not in ("add", "replace", "remove"):
            raise InvalidInput(f"patch operation {p.get('op')!r} is not supported; use add, replace or remove")
        if p.get("path") in ("/labels", "/health_status_reason") and p["op"] != "remove" and "value" in p:
            p["value"] = coerce_dict(p["value"], p["path"][1:])
    try:
        return jsonpatch.apply_patch(doc, patch)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, KeyError, TypeError) as exc:
        raise InvalidInput(f"Couldn't apply patch {json.dumps(patch)}. Reason: {exc}") from None


def update_template(db: Database, caller: Caller, ident: str, patch: list[dict[str, Any]]) -> ClusterTemplate:
    """Apply a JSON patch to a template; only name, public, hidden, tags while clusters use it."""
    if not patch:
        raise InvalidInput("the patch is empty: send a list of add, replace or remove operations")
    patch = [dict(p) for p in patch]
    _check_patch_paths(patch)
    with db.session() as session:
        ct = find_template(session, caller, ident)
        _check_owner(caller, ct)
        old = template_fields(ct)
        new_doc = apply_patch(dict(old), patch)
        try:
            spec = TemplateSpec.model_validate(new_doc)
        except ValidationError as exc:
            raise InvalidInput(describe_validation_errors(exc.errors())) from None
        new = spec.model_dump()
        if new["name"] is None:
            raise InvalidInput("'/name' cannot be removed: a cluster template needs a name")
        changed = {k for k in _STORED if new[k] != old[k]}
        if {"public", "hidden"} & changed:
            _check_publish(caller, True, False)
        if changed - IN_USE_MUTABLE and is_referenced(session, ct):
            raise InvalidInput(
                f"ClusterTemplate {ct.uuid} is referenced by one or multiple clusters. "
                f"While in use only {', '.join(sorted(IN_USE_MUTABLE))} may change."
            )
        for field in ("flavor_id", "master_flavor_id"):
            if field in changed:
                check_flavor(session, new[field], caller)
        if "name" in changed and _name_taken(session, ct.project_id, new["name"], exclude_id=ct.id):
            raise Conflict(f"A ClusterTemplate named {new['name']} already exists in this project.")
        for k in changed:
            setattr(ct, k, new[k])
        try:
            session.flush()
        except IntegrityError:
            raise Conflict(f"A ClusterTemplate named {new['name']} already exists in this project.") from None
        return ct


def delete_template(db: Database, caller: Caller, ident: str) -> None:
    """Delete a template no cluster uses."""
    with db.session() as session:
        ct = find_template(session, caller, ident)
        _check_owner(caller, ct)
        if is_referenced(session, ct):
            raise InvalidInput(f"ClusterTemplate {ct.uuid} is referenced by one or multiple clusters.")
        session.delete(ct)
        try:
            session.flush()
        except IntegrityError:  # a cluster was created from it meanwhile
            raise InvalidInput(f"ClusterTemplate {ct.uuid} is referenced by one or multiple clusters.") from None

