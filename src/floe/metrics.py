"""floe's own instruments: the API's requests and the engine's work, counted in this process.

The names and labels are the contract with the alert rules and dashboards (docs/monitoring.md).
They live in `REGISTRY`, a registry of floe's own rather than prometheus_client's default one,
so nothing else in the process (a library, a second app in a test) adds to or collides with
them. What is computed from the database at scrape time (clusters, shares, quotas, queues) is
not here: floe.monitoring.metrics collects it when `/metrics` is asked for.

FLOE_METRICS=0 (read once, at import) turns every instrument here into a no-op; it exists to
measure what the instrumentation costs (bench/metrics.py), not to be turned off in production.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

# The `_created` series prometheus_client adds to every counter and histogram double what a
# scrape carries and nothing here reads them.
disable_created_metrics()

ENABLED = os.environ.get("FLOE_METRICS", "1").strip() != "0"
REGISTRY = CollectorRegistry(auto_describe=True)

# Methods a route can answer; anything else a client sends is counted as "other" (bounded labels).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

API_REQUESTS = Counter(
    "floe_api_requests", "API requests answered, by method, route template and status",
    ["method", "route", "status"], registry=REGISTRY,
)
API_DURATION = Histogram(
    "floe_api_request_duration_seconds", "Time to answer an API request, by method and route template",
    ["method", "route"], registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
OPERATIONS = Counter(
    "floe_operations", "Cluster operations that ended, by kind and outcome (complete or failed)",
    ["kind", "outcome"], registry=REGISTRY,
)
OPERATION_DURATION = Histogram(
    "floe_operation_duration_seconds", "Time from an operation's request to its end, by kind",
    ["kind"], registry=REGISTRY,
    buckets=(0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0),
)
STEP_DURATION = Histogram(
    "floe_step_duration_seconds", "Time a step of a cluster operation or of share work took, by kind and step",
    ["kind", "step"], registry=REGISTRY,
    buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0),
)
LEASE_TAKEOVERS = Counter(
    "floe_engine_lease_takeovers",
    "Leases this process took from a holder that died or stopped renewing, by lease kind",
    ["kind"], registry=REGISTRY,
)


def api_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered API request (`route` is the route template, or "other")."""
    if not ENABLED:
        return
    method = method if method in METHODS else "other"
    API_REQUESTS.labels(method, route, str(status)).inc()
    API_DURATION.labels(method, route).observe(seconds)


def operation_ended(kind: str, outcome: str, seconds: float | None) -> None:
    """Count an operation that ended (`outcome`: complete or failed); `seconds` since it was asked for."""
    if not ENABLED:
        return
    OPERATIONS.labels(kind, outcome).inc()
    if seconds is not None:
        OPERATION_DURATION.labels(kind).observe(max(seconds, 0.0))


def step_done(kind: str, step: str, seconds: float) -> None:
    """Record how long a step took (`kind`: the operation's kind, or "share")."""
    if ENABLED:
        STEP_DURATION.labels(kind, step).observe(seconds)


def lease_taken_over(kind: str) -> None:
    if ENABLED:
        LEASE_TAKEOVERS.labels(kind).inc()
