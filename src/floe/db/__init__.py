"""Database layer: SQLAlchemy 2 models, sessions, leases and Alembic migrations."""
