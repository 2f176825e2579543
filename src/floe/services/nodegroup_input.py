"""What a nodegroup request may hold: names, Swarm node labels and taints, bounds, the create
body (NodeGroupSpec) and the PATCH documents python-magnumclient sends (no HTTP, no database)."""

from __future__ import annotations

import ast
import json
import math
from typing import Any

from pydantic import Field, field_validator

from floe.errors import InvalidInput
from floe.services.clusters import MAX_NODES
from floe.services.templates import (
    MAX_DOCKER_VOLUME_GB,
    MAX_LABELS,
    MAX_LABELS_TEXT,
    LabelValue,
    MagnumSpec,
    ascii_int,
    check_labels,
    coerce_dict,
)

MASTER, WORKER = "master", "worker"
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# floe's own Swarm node labels (floe.nodegroup, floe.flavor, floe.taint.<key>): not the user's to set.
RESERVED_PREFIX = "floe."
MAX_NAME = 255
MAX_NODE_LABEL = 255  # characters of a node label's (or taint's) key, and of its value
# What a PATCH may change (Magnum: min/max_node_count; its newer clients also node_labels and
# node_taints; floe also node_count, which queues a resize).
PATCHABLE = ("node_count", "min_node_count", "max_node_count", "node_labels", "node_taints")
# Attributes that are the engine's or fixed at create: named in a patch they get Magnum's refusal.
READ_ONLY = frozenset({
    "id", "uuid", "name", "cluster_id", "project_id", "docker_volume_size", "labels", "flavor_id", "image_id",
    "node_addresses", "role", "is_default", "stack_id", "status", "status_reason", "version", "links",
    "created_at", "updated_at", "labels_overridden", "labels_added", "labels_skipped", "merge_labels",
})


# ---------------------------------------------------------------------------
# Validation of what a request may hold


def check_name(name: str) -> str:
    """A nodegroup name: 1-255 printable characters (any script) without '/', which no URL could carry."""
    if not 1 <= len(name) <= MAX_NAME:
        raise ValueError(f"a nodegroup name must be 1-{MAX_NAME} characters")
    if not name.isprintable() or "/" in name or name != name.strip():
        raise ValueError(
            f"nodegroup name {name[:64]!r} must be printable, without '/' or spaces at either end"
        )
    return name


def _check_key(key: Any, what: str) -> str:
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_NODE_LABEL:
        raise ValueError(f"{what} key {str(key)[:64]!r} must be 1-{MAX_NODE_LABEL} characters")
    if not key.isprintable() or any(c.isspace() or c in "=:" for c in key):
        raise ValueError(f"{what} key {key[:64]!r} must be printable, without spaces, '=' or ':'")
    if key.startswith(RESERVED_PREFIX):
        raise ValueError(f"{what} key {key[:64]!r} is reserved: floe sets the node labels under '{RESERVED_PREFIX}'")
    return key


def _check_value(value: Any, key: str, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float) or (
        isinstance(value, float) and not math.isfinite(value)
    ):
        raise ValueError(f"the value of {what} {key[:64]!r} must be text, not {type(value).__name__}")
    text = str(value)
    if len(text) > MAX_NODE_LABEL or not text.isprintable():
        raise ValueError(f"the value of {what} {key[:64]!r} must be at most {MAX_NODE_LABEL} printable characters")
    return text


def check_node_labels(labels: dict[str, Any] | None) -> dict[str, str]:
    """Swarm node labels for every node of a group: printable keys and values of at most 255."""
    if not labels:
        return {}
    if len(labels) > MAX_LABELS:
        raise ValueError(f"{len(labels)} node labels given: at most {MAX_LABELS} are allowed")
    return {_check_key(k, "node label"): _check_value(v, k, "node label") for k, v in labels.items()}


def _parse_taint(item: Any) -> tuple[str, str, str]:
    """(key, value, effect) of "key=value:Effect", "key:Effect" or {"key", "value", "effect"}."""
    if isinstance(item, dict):
        unknown = set(item) - {"key", "value", "effect"}
        if unknown:
            raise ValueError(f"a taint has key, value and effect, not {sorted(unknown)}")
        key, value, effect = item.get("key"), item.get("value") or "", item.get("effect")
    elif isinstance(item, str):
        head, sep, effect = item.rpartition(":")
        if not sep:
            raise ValueError(f"taint {item[:64]!r} must be KEY[=VALUE]:EFFECT")
        key, _, value = head.partition("=")
    else:
        raise ValueError(f"a taint is KEY[=VALUE]:EFFECT or an object, not {type(item).__name__}")
    if effect not in TAINT_EFFECTS:
        raise ValueError(f"taint effect {str(effect)[:32]!r} must be one of {', '.join(TAINT_EFFECTS)}")
    key = _check_key(key, "taint")
    return key, _check_value(value, key, "taint"), str(effect)


def check_node_taints(taints: list[Any] | None) -> list[str]:
    """Taints as floe stores them, "key=value:Effect"; one per key, as each becomes the Swarm node
    label `floe.taint.<key>` (Swarm has no taints of its own)."""
    if not taints:
        return []
    if len(taints) > MAX_LABELS:
        raise ValueError(f"{len(taints)} node taints given: at most {MAX_LABELS} are allowed")
    out: list[str] = []
    seen: set[str] = set()
    for item in taints:
        key, value, effect = _parse_taint(item)
        if key in seen:
            raise ValueError(f"taint key {key[:64]!r} is given twice: floe keeps one taint per key "
                             f"(the node label floe.taint.{key[:64]})")
        seen.add(key)
        out.append(f"{key}={value}:{effect}")
    return out


def taint_parts(taint: str) -> dict[str, str]:
    """A stored taint as Magnum's clients write it: {"key", "value", "effect"}."""
    head, _, effect = taint.rpartition(":")
    key, _, value = head.partition("=")
    return {"key": key, "value": value, "effect": effect}


def check_bounds(name: str, node_count: int, min_count: int, max_count: int | None) -> None:
    """InvalidInput unless min_node_count <= node_count <= max_node_count (max None: no bound)."""
    if max_count is not None and min_count > max_count:
        raise InvalidInput(
            f"max_node_count for nodegroup {name} is invalid: min_node_count ({min_count}) must be at most "
            f"max_node_count ({max_count})"
        )
    if node_count < min_count:
        raise InvalidInput(
            f"node_count for nodegroup {name} is invalid: {node_count} is below its min_node_count "
            f"({min_count}); lower min_node_count first"
        )
    if max_count is not None and node_count > max_count:
        raise InvalidInput(
            f"node_count for nodegroup {name} is invalid: {node_count} is above its max_node_count "
            f"({max_count}); raise max_node_count first"
        )


class NodeGroupSpec(MagnumSpec):
    """A nodegroup-create request with Magnum's field names; unknown fields are refused."""

    name: str = Field(min_length=1, max_length=MAX_NAME)  # type: ignore[assignment]
    role: str = Field(default=WORKER, min_length=1, max_length=255)
    flavor_id: str | None = Field(default=None, min_length=1, max_length=255)
    image_id: str | None = Field(default=None, min_length=1, max_length=255)
    docker_volume_size: int | None = Field(default=None, ge=1, le=MAX_DOCKER_VOLUME_GB, strict=True)
    labels: dict[str, LabelValue] | None = None
    merge_labels: bool = False
    node_labels: dict[str, Any] | None = None
    node_taints: list[Any] | None = None
    node_count: int = Field(default=1, ge=0, le=MAX_NODES, strict=True)
    min_node_count: int = Field(default=0, ge=0, le=MAX_NODES, strict=True)
    max_node_count: int | None = Field(default=None, ge=0, le=MAX_NODES, strict=True)
    # python-magnumclient may send it (read-only in Magnum): only the caller's own project is accepted.
    project_id: str | None = Field(default=None, max_length=64)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:  # replaces MagnumSpec's DNS-label rule: Magnum's names are free text
        return check_name(v)

    @field_validator("role")
    @classmethod
    def _role(cls, v: str) -> str:
        if not v.isprintable():
            raise ValueError("role must be printable")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, LabelValue] | None) -> dict[str, LabelValue] | None:
        return check_labels(v)

    @field_validator("node_labels")
    @classmethod
    def _node_labels(cls, v: dict[str, Any] | None) -> dict[str, str] | None:
        return None if v is None else check_node_labels(v)

    @field_validator("node_taints")
    @classmethod
    def _node_taints(cls, v: list[Any] | None) -> list[str] | None:
        return None if v is None else check_node_taints(v)


# ---------------------------------------------------------------------------
# Queries


def _count(value: Any, attr: str, *, nullable: bool = False) -> int | None:
    """A node count from a patch: a whole number 0..MAX_NODES (ASCII digits as text too), or None
    where `nullable` (max_node_count: no bound)."""
    if value is None and nullable:
        return None
    if isinstance(value, str) and ascii_int(value) is not None:
        value = ascii_int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "…"
        raise InvalidInput(f"{attr} must be a whole number >= 0, not {shown}")
    if value > MAX_NODES:
        raise InvalidInput(f"{attr} {value} is too large: a nodegroup has at most {MAX_NODES} nodes")
    return value


def _literal_list(text: str) -> list | None:
    """A list of dicts of plain constants written as a Python literal (python-magnumclient sends
    `str(list)` for node_taints), or None; nothing is evaluated."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if not isinstance(tree.body, ast.List):
        return None
    out: list = []
    for node in tree.body.elts:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append(node.value)
        elif isinstance(node, ast.Dict) and all(
            isinstance(k, ast.Constant) and isinstance(k.value, str) and isinstance(v, ast.Constant)
            and isinstance(v.value, str) for k, v in zip(node.keys, node.values, strict=True)
        ):
            out.append({k.value: v.value for k, v in zip(node.keys, node.values, strict=True)})  # type: ignore[union-attr]
        else:
            return None
    return out


def _taints_value(value: Any) -> list[str]:
    if isinstance(value, str):
        if len(value) > MAX_LABELS_TEXT:
            raise InvalidInput(f"node_taints given as text must be at most {MAX_LABELS_TEXT} characters")
        try:
            parsed: Any = json.loads(value)
        except (ValueError, RecursionError):
            parsed = _literal_list(value)
        if not isinstance(parsed, list):
            # "k=v:NoSchedule,k2:NoExecute", as the CLI options are written
            parsed = [t.strip() for t in value.replace(";", ",").split(",") if t.strip()]
        value = parsed
    if not isinstance(value, list):
        raise InvalidInput("node_taints must be a list of KEY[=VALUE]:EFFECT")
    try:
        return check_node_taints(value)
    except ValueError as exc:
        raise InvalidInput(f"node_taints is invalid: {exc}") from None


def _labels_value(value: Any) -> dict[str, str]:
    value = coerce_dict(value, "node_labels")
    if not isinstance(value, dict):
        raise InvalidInput("node_labels must be a dictionary of KEY: VALUE")
    try:
        return check_node_labels(value)
    except ValueError as exc:
        raise InvalidInput(f"node_labels is invalid: {exc}") from None


def parse_patch(patch: list[dict[str, Any]], allowed: tuple[str, ...] = PATCHABLE) -> dict[str, Any]:
    """The changes a JSON patch of a nodegroup asks for, by attribute; InvalidInput for anything else.

    `replace`/`add` set an attribute; `remove` resets max_node_count (no bound), min_node_count
    (0), node_labels and node_taints (none).
    """
    if not patch:
        raise InvalidInput(
            "the patch is empty: send [{\"op\": \"replace\", \"path\": \"/max_node_count\", \"value\": N}]"
        )
    changes: dict[str, Any] = {}
    for p in patch:
        path = str(p.get("path", ""))
        attr = path.lstrip("/")
        op = p.get("op")
        if attr in READ_ONLY:
            raise InvalidInput(f"'{path}' is an internal attribute and can not be updated")
        if attr not in allowed:
            raise InvalidInput(f"cannot change nodegroup property {attr}: only {', '.join(allowed)} can be changed")
        if op == "remove":
            if attr == "node_count":
                raise InvalidInput(f"'{path}' is a mandatory attribute and can not be removed")
            changes[attr] = {"max_node_count": None, "min_node_count": 0, "node_labels": {}, "node_taints": []}[attr]
            continue
        if op not in ("add", "replace"):
            raise InvalidInput(f"patch operation {op!r} is not supported; use replace")
        if "value" not in p:
            raise InvalidInput("'add' and 'replace' operations need a value")
        value = p["value"]
        if attr == "node_labels":
            changes[attr] = _labels_value(value)
        elif attr == "node_taints":
            changes[attr] = _taints_value(value)
        else:
            changes[attr] = _count(value, attr, nullable=attr == "max_node_count")
    return changes
