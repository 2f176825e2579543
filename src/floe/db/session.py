"""Engine and session factory; SQLite by default (WAL, busy timeout), PostgreSQL by URL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_MODE = 0o600


def private_sqlite_file(url: str) -> None:
    """Create an SQLite database file 0600 before SQLite does, and tighten an existing one.

    SQLite creates a database 0644 less the umask and gives its -wal, -shm and -journal
    files the database's own mode: a database made 0600 first keeps all four private
    whatever the umask. The file holds every cluster CA's private key.
    """
    if not url.startswith("sqlite"):
        return
    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, SQLITE_MODE)
    try:
        os.fchmod(fd, SQLITE_MODE)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        try:
            fd = os.open(path + suffix, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fchmod(fd, SQLITE_MODE)
        finally:
            os.close(fd)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=20)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)


class Database:
    """Owns the SQLAlchemy engine and hands out short-lived sessions."""

    def __init__(self, url: str):
        self.url = url
        private_sqlite_file(url)
        self.engine = make_engine(url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self.sessionmaker() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        from floe.db.migrate import upgrade

        upgrade(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
