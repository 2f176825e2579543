"""The configuration of floe's Prometheus and Alertmanager, generated from floe's settings.

Prometheus scrapes floe's own `/metrics` (job `floe`) and every node target floe lists at its
HTTP service-discovery endpoint `/monitoring/sd` (job `floe-nodes`; each target carries project,
cluster, nodegroup, role, node and source labels), both with the scrape token as a bearer
credential read from its file (never copied into the configuration). Alert rules name the
conditions an operator acts on; their `for:` waits are a few scrape intervals, so a test that
scrapes every second sees them fire in seconds and a production Prometheus (15 s) in minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

# How many scrape intervals each alert's condition must hold before it fires.
NODE_DOWN_SCRAPES = 4
CLUSTER_UNHEALTHY_SCRAPES = 8
OPERATION_STUCK_SCRAPES = 4
SHARE_FULL_SCRAPES = 20
FLOE_DOWN_SCRAPES = 4
SHARE_FULL_RATIO = 0.9


@dataclass(frozen=True)
class Endpoints:
    """Where each part listens, and where Prometheus finds its files."""

    floe: str  # host:port of floe's API, as Prometheus reaches it
    prometheus: str  # host:port
    alertmanager: str  # host:port
    credentials_file: Path  # the scrape token
    rules_file: Path
    scrape_interval: int  # seconds


def scrape_host(host: str) -> str:
    """The address a local Prometheus reaches a server listening on `host` at (wildcards → loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _seconds(n: int) -> str:
    return f"{n}s"


def prometheus_config(ep: Endpoints) -> dict:
    def auth() -> dict:  # a fresh dict per use: no YAML anchors in the file an operator reads
        return {"type": "Bearer", "credentials_file": str(ep.credentials_file)}

    interval = ep.scrape_interval
    return {
        "global": {
            "scrape_interval": _seconds(interval),
            # Prometheus refuses a timeout longer than the interval (its default is 10 s).
            "scrape_timeout": _seconds(min(10, interval)),
            "evaluation_interval": _seconds(interval),
            "external_labels": {"floe": ep.floe},
        },
        "rule_files": [str(ep.rules_file)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [ep.alertmanager]}]}]},
        "scrape_configs": [
            {
                "job_name": "floe",
                "metrics_path": "/metrics",
                "authorization": auth(),
                "static_configs": [{"targets": [ep.floe]}],
            },
            {
                "job_name": "floe-nodes",
                "authorization": auth(),
                "http_sd_configs": [{
                    "url": f"http://{ep.floe}/monitoring/sd",
                    "refresh_interval": _seconds(interval),
                    "authorization": auth(),
                }],
            },
            {
                # Prometheus and Alertmanager themselves: a silent monitoring stack is seen.
                "job_name": "monitoring",
                "static_configs": [{"targets": [ep.prometheus, ep.alertmanager]}],
            },
        ],
    }


def _rule(name: str, expr: str, scrapes: int, interval: int, severity: str, summary: str, description: str) -> dict:
    return {
        "alert": name,
        "expr": expr,
        "for": _seconds(scrapes * interval),
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "description": description},
    }


def alert_rules(interval: int) -> dict:
    """The alert rules file: node down, cluster unhealthy, operation stuck, share nearly full, floe down."""
    rules = [
        _rule(
            "FloeNodeDown", 'up{job="floe-nodes", source="node"} == 0', NODE_DOWN_SCRAPES, interval, "critical",
            "Node {{ $labels.node }} of cluster {{ $labels.project }}/{{ $labels.cluster }} is down",
            "floe cannot read node {{ $labels.node }} ({{ $labels.role }}, nodegroup {{ $labels.nodegroup }}) "
            "of cluster {{ $labels.cluster }} in project {{ $labels.project }}.",
        ),
        _rule(
            "FloeClusterUnhealthy", 'floe_cluster_info{health="UNHEALTHY"} == 1', CLUSTER_UNHEALTHY_SCRAPES,
            interval, "warning",
            "Cluster {{ $labels.project }}/{{ $labels.cluster }} is UNHEALTHY",
            "floe's health round finds cluster {{ $labels.cluster }} ({{ $labels.coe }}, status "
            "{{ $labels.status }}) of project {{ $labels.project }} unhealthy: see its health_status_reason.",
        ),
        _rule(
            "FloeOperationStuck", "floe_operations_overdue > 0", OPERATION_STUCK_SCRAPES, interval, "warning",
            "{{ $value }} {{ $labels.kind }} operation(s) past their timeout",
            "Operations of kind {{ $labels.kind }} are still active past their deadline; the watchdog should "
            "fail them: look at the server's log.",
        ),
        _rule(
            "FloeShareNearlyFull",
            f"floe_share_used_bytes / floe_share_size_bytes > {SHARE_FULL_RATIO}",
            SHARE_FULL_SCRAPES, interval, "warning",
            "Share {{ $labels.project }}/{{ $labels.share }} is {{ $value | humanizePercentage }} full",
            "Share {{ $labels.share }} of project {{ $labels.project }} has used more than "
            f"{SHARE_FULL_RATIO:.0%} of its size: extend it or free space.",
        ),
        _rule(
            "FloeDown", 'up{job="floe"} == 0', FLOE_DOWN_SCRAPES, interval, "critical",
            "floe's API at {{ $labels.instance }} does not answer",
            "Prometheus cannot scrape floe's /metrics; node targets, scraped through floe, are down too.",
        ),
    ]
    return {"groups": [{"name": "floe", "rules": rules}]}


def alertmanager_config(interval: int) -> dict:
    """One route to one receiver: alerts are kept and shown (its API and UI); add receivers to be told."""
    return {
        "route": {
            "receiver": "floe-operators",
            "group_by": ["alertname", "project", "cluster"],
            "group_wait": _seconds(min(30, interval)),
            "group_interval": _seconds(max(5 * 60, interval)),
            "repeat_interval": "4h",
        },
        # A node down because floe itself is down is one alert, not one per node.
        "inhibit_rules": [{
            "source_matchers": ['alertname="FloeDown"'],
            "target_matchers": ['alertname="FloeNodeDown"'],
        }],
        "receivers": [{"name": "floe-operators"}],
    }


# The first line of every file floe generates: how `floe cleanup --all --host-wide` knows floe's daemons.
HEADER = "# Generated by floe (floe monitoring up) from its settings: edits are overwritten.\n"


def dump(document: dict) -> str:
    return HEADER + yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=120)
