"""Fixtures shared with the engine tests (the simulated provider, SQLite and PostgreSQL)."""

from tests.engine.conftest import database_url, sim  # noqa: F401 - fixtures
