"""The reader-study database schema (SQLAlchemy Core, SQLite and PostgreSQL) and its migrations.

``schema_version`` holds one row per applied version. Version 1 is frozen below as the DDL it was created with, so
the migration 1 -> 2 is exercised against a real version-1 database in the tests. Version 2 added
``readers.simulated`` (simulated readers kept apart from people in analyses) and ``case_reads.timed_out`` (a case
submitted by the time limit rather than by the reader).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (Boolean, Column, Float, ForeignKey, Integer, MetaData, String, Table, Text,
                        UniqueConstraint, text)

SCHEMA_VERSION = 2

metadata = MetaData()

schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", String(40), nullable=False),
)

studies = Table(
    "studies", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("definition_json", Text, nullable=False),
    Column("definition_sha256", String(64), nullable=False),
    Column("study_dir", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
)

readers = Table(
    "readers", metadata,
    Column("id", Integer, primary_key=True),
    Column("study_id", Integer, ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
    Column("reader_id", String(200), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    Column("seed", Integer, nullable=True),
    Column("reader_index", Integer, nullable=False),  # counterbalancing row of the Latin square
    Column("simulated", Boolean, nullable=False, default=False),  # v2
    Column("created_at", String(40), nullable=False),
    UniqueConstraint("study_id", "reader_id"),
    UniqueConstraint("study_id", "reader_index"),
)

items = Table(
    "items", metadata,
    Column("id", Integer, primary_key=True),
    Column("study_id", Integer, ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
    Column("case_id", String(200), nullable=False),
    Column("condition", String(200), nullable=False),
    Column("image_path", Text, nullable=False),
    UniqueConstraint("study_id", "case_id", "condition"),
)

sessions = Table(
    "sessions", metadata,
    Column("id", Integer, primary_key=True),
    Column("reader_pk", Integer, ForeignKey("readers.id", ondelete="CASCADE"), nullable=False, unique=True),
    Column("position", Integer, nullable=False),
    Column("n_items", Integer, nullable=False),
    Column("paused", Boolean, nullable=False, default=False),
    Column("started_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("finished_at", String(40), nullable=True),
)

order_slots = Table(
    "order_slots", metadata,
    Column("session_id", Integer, ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("item_id", Integer, ForeignKey("items.id"), nullable=False),
    Column("block", Integer, nullable=False),
    Column("token", String(64), nullable=False, unique=True),
    UniqueConstraint("session_id", "item_id"),
)

case_reads = Table(
    "case_reads", metadata,
    Column("id", Integer, primary_key=True),
    Column("session_id", Integer, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("item_id", Integer, ForeignKey("items.id"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("case_rating", Float, nullable=True),
    Column("active_s", Float, nullable=False, default=0.0),
    Column("opened_at", String(40), nullable=False),
    Column("submitted_at", String(40), nullable=True),
    Column("submit_count", Integer, nullable=False, default=0),
    Column("submitted_json", Text, nullable=True),  # marks + rating as submitted (what analyses read)
    Column("timed_out", Boolean, nullable=False, default=False),  # v2
    UniqueConstraint("session_id", "item_id"),
)

marks = Table(
    "marks", metadata,
    Column("id", Integer, primary_key=True),
    Column("case_read_id", Integer, ForeignKey("case_reads.id", ondelete="CASCADE"), nullable=False),
    Column("x", Float, nullable=False),
    Column("y", Float, nullable=False),
    Column("z", Float, nullable=False),
    Column("i", Float, nullable=True),
    Column("j", Float, nullable=True),
    Column("k", Float, nullable=True),
    Column("rating", Float, nullable=True),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
)

# Version 1 exactly as it was created (kept to test the migration path).
V1_DDL = [
    "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at VARCHAR(40) NOT NULL)",
    "CREATE TABLE studies (id INTEGER PRIMARY KEY, name VARCHAR(200) NOT NULL UNIQUE, definition_json TEXT NOT NULL,"
    " definition_sha256 VARCHAR(64) NOT NULL, study_dir TEXT NOT NULL, created_at VARCHAR(40) NOT NULL)",
    "CREATE TABLE readers (id INTEGER PRIMARY KEY, study_id INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,"
    " reader_id VARCHAR(200) NOT NULL, name VARCHAR(200) NOT NULL, seed INTEGER, reader_index INTEGER NOT NULL,"
    " created_at VARCHAR(40) NOT NULL, UNIQUE (study_id, reader_id), UNIQUE (study_id, reader_index))",
    "CREATE TABLE items (id INTEGER PRIMARY KEY, study_id INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,"
    " case_id VARCHAR(200) NOT NULL, condition VARCHAR(200) NOT NULL, image_path TEXT NOT NULL,"
    " UNIQUE (study_id, case_id, condition))",
    "CREATE TABLE sessions (id INTEGER PRIMARY KEY, reader_pk INTEGER NOT NULL UNIQUE REFERENCES readers(id)"
    " ON DELETE CASCADE, position INTEGER NOT NULL, n_items INTEGER NOT NULL, paused BOOLEAN NOT NULL,"
    " started_at VARCHAR(40) NOT NULL, updated_at VARCHAR(40) NOT NULL, finished_at VARCHAR(40))",
    "CREATE TABLE order_slots (session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
    " position INTEGER NOT NULL, item_id INTEGER NOT NULL REFERENCES items(id), block INTEGER NOT NULL,"
    " token VARCHAR(64) NOT NULL UNIQUE, PRIMARY KEY (session_id, position), UNIQUE (session_id, item_id))",
    "CREATE TABLE case_reads (id INTEGER PRIMARY KEY, session_id INTEGER NOT NULL REFERENCES sessions(id)"
    " ON DELETE CASCADE, item_id INTEGER NOT NULL REFERENCES items(id), position INTEGER NOT NULL,"
    " case_rating FLOAT, active_s FLOAT NOT NULL, opened_at VARCHAR(40) NOT NULL, submitted_at VARCHAR(40),"
    " submit_count INTEGER NOT NULL, submitted_json TEXT, UNIQUE (session_id, item_id))",
    "CREATE TABLE marks (id INTEGER PRIMARY KEY, case_read_id INTEGER NOT NULL REFERENCES case_reads(id)"
    " ON DELETE CASCADE, x FLOAT NOT NULL, y FLOAT NOT NULL, z FLOAT NOT NULL, i FLOAT, j FLOAT, k FLOAT,"
    " rating FLOAT, created_at VARCHAR(40) NOT NULL, updated_at VARCHAR(40) NOT NULL)",
]


def _v1_to_v2(conn) -> None:
    conn.execute(text("ALTER TABLE readers ADD COLUMN simulated BOOLEAN NOT NULL DEFAULT FALSE"))
    conn.execute(text("ALTER TABLE case_reads ADD COLUMN timed_out BOOLEAN NOT NULL DEFAULT FALSE"))


MIGRATIONS = {1: _v1_to_v2}  # from version -> step (run inside one transaction)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def current_version(conn) -> int | None:
    """The schema version of a database, None when it has no reviewer schema yet."""
    from sqlalchemy import inspect

    if not inspect(conn).has_table("schema_version"):
        return None
    v = conn.execute(text("SELECT MAX(version) FROM schema_version")).scalar()
    return None if v is None else int(v)


def ensure_schema(engine) -> int:
    """Create the schema on an empty database or migrate an older one; returns the version now in place."""
    from reviewer.studies.store import write_transaction

    with write_transaction(engine) as conn:
        v = current_version(conn)
        if v is None:
            metadata.create_all(conn)
            conn.execute(schema_version.insert().values(version=SCHEMA_VERSION, applied_at=now()))
            return SCHEMA_VERSION
        if v > SCHEMA_VERSION:
            raise RuntimeError(f"the study database has schema version {v}; this reviewer knows up to "
                               f"{SCHEMA_VERSION}: update reviewer")
        while v < SCHEMA_VERSION:
            MIGRATIONS[v](conn)
            v += 1
            conn.execute(schema_version.insert().values(version=v, applied_at=now()))
        return v
