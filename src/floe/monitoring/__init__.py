"""Health of running clusters (metrics and events come later)."""
