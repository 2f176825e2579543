"""Watching floe and its clusters: health rounds, the metrics collector, the monitoring stack
(Prometheus, Alertmanager) and who may scrape."""
