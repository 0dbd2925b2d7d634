"""The reader-study store: crash-safe reading sessions on SQLite (default) or PostgreSQL, one code path.

API (stable; the GUI reading mode and study builder use it)
----------------------------------------------------------
Opening::

    store = open_store(target, study=None)      # -> StudyStore
      # target: a study folder (its study.json + study.db), a study.json/.toml, a .db file, or an SQLAlchemy URL
      #         ("postgresql+psycopg://user@host/db", "sqlite:///path.db"); study: a study folder or definition
      #         to register (needed the first time on a URL; also sets the folder images are resolved against)
    store.definition -> StudyDefinition;  store.study_dir -> Path;  store.url -> str
    store.schema_version() -> int;  store.integrity_check() -> list[str]  (["ok"] when sound)
    store.readers() -> list[ReaderInfo];  store.add_reader(reader_id, name="", simulated=False, seed=None)
    store.progress() -> list[ReaderProgress];  store.results() -> list[CaseResult]  (submitted reads, unblinded)
    store.reading_order(reader_id) -> list[OrderSlot]   (unblinded: for analysis/tests, never for the reading UI)
    store.close()

Reading (everything the reading UI sees is blinded: an opaque token, the image path and the marks, never the
case id, the condition or the model)::

    s = store.start_session(reader_id, clock=time.monotonic)   # -> ReaderSession; starts or resumes
    s.current() -> CaseView | None            # None when every case is submitted (end screen: s.summary())
    s.load_image() -> Volume                  # current case's image, names and headers removed
    s.add_mark(world_lps=(x, y, z) | image_ijk=(i, j, k), rating=None) -> MarkView   (persisted at once)
    s.move_mark(mark_id, world_lps=... | image_ijk=...) -> MarkView;  s.rate_mark(mark_id, rating) -> MarkView
    s.delete_mark(mark_id);  s.set_case_rating(rating)
    s.submit_case(timed_out=False) -> CaseView | None   (atomic; no marks = "no lesion"; then the next case)
    s.go_back() -> CaseView;  s.go_forward() -> CaseView     (when navigation.allow_back; StudyError otherwise)
    s.pause();  s.resume();  s.paused;  s.heartbeat()  (persist the active time so far; call every few seconds)
    s.time_left() -> float | None;  s.summary() -> SessionSummary;  s.finished
    Every mutating call takes an optional ``token=``: when given it must be the current case's token
    (StaleCaseError otherwise), so a UI acting on a case it no longer shows fails loudly.

Guarantees: each mark operation and each submission is one transaction (SQLite: WAL, synchronous=FULL, foreign
keys on, BEGIN IMMEDIATE); a process killed at any moment resumes at the same case with every committed mark and
submission. Active reading time accumulates only while a case is current and the session is not paused; it is
persisted by every mutating call, ``heartbeat()``, ``pause()`` and submission (time since the last persist is lost
on a crash, never counted twice). The reading order is computed once per reader (reviewer.studies.randomise) and
stored, so a resume sees the same order. Several readers may read at once (one session per reader).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import and_, create_engine, event, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from reviewer.errors import InputError, ReviewerError
from reviewer.studies import schema as S
from reviewer.studies.definition import StudyDefinition, definition_path, load_study_definition, parse_definition
from reviewer.studies.randomise import OrderSlot, reading_order

DB_NAME = "study.db"
WRITE_OPTION = "reviewer_write"


@contextmanager
def write_transaction(engine: Engine):
    """One write transaction (SQLite: BEGIN IMMEDIATE), committed on success, rolled back on any exception."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            yield conn


class StudyError(ReviewerError):
    """A reading action that the study does not allow (going back when it is off, an unrated mark, ...)."""


class StaleCaseError(StudyError):
    """The UI acted on a case that is not the session's current case."""


# -- records handed out ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MarkView:
    mark_id: int
    world_lps: tuple[float, float, float]
    image_ijk: tuple[float, float, float] | None
    rating: float | None


@dataclass(frozen=True)
class CaseView:
    """What the reading UI may know about the current case (blinded: no case id, condition or model)."""

    token: str
    index: int  # 0-based position in the reader's order ("case index+1 of n_cases")
    n_cases: int
    block: int
    n_blocks: int
    image_path: Path
    spacing_mm: tuple[float, float] | None  # for 2D images
    window: tuple[float, float] | None  # (width, level) of the hanging protocol
    invert: bool
    marks: tuple[MarkView, ...]
    case_rating: float | None
    submitted: bool
    active_s: float
    time_left_s: float | None
    can_go_back: bool
    can_go_forward: bool
    condition_label: str | None = None  # only for an unblinded study (blinding.hide_condition = false)


@dataclass(frozen=True)
class ReaderInfo:
    reader_id: str
    name: str
    reader_index: int
    seed: int | None
    simulated: bool


@dataclass(frozen=True)
class ReaderProgress:
    reader_id: str
    simulated: bool
    n_cases: int  # 0 when the reader has not started
    n_submitted: int
    position: int
    paused: bool
    finished: bool
    active_s: float


@dataclass(frozen=True)
class SessionSummary:
    reader_id: str
    n_cases: int
    n_submitted: int
    n_marks: int
    active_s: float
    finished: bool


@dataclass
class CaseResult:
    """One submitted read (unblinded): what analyses and exports use."""

    reader_id: str
    simulated: bool
    case_id: str
    condition: str
    image_path: str  # as in the definition (relative to the study folder)
    position: int
    case_rating: float | None
    marks: list[dict[str, Any]]  # {"mark_id", "world_lps": [x, y, z], "image_ijk": [i, j, k] | None, "rating"}
    active_s: float
    submitted_at: str
    submit_count: int
    timed_out: bool


@dataclass
class _Cached:
    token: str | None = None
    volume: Any = None


# -- opening ---------------------------------------------------------------------------------------------------------
def _is_url(target: str) -> bool:
    return "://" in target


def make_engine(url: str, durable: bool = True) -> Engine:
    """``durable=False`` (scratch stores, e.g. power replicates): SQLite skips fsync (still atomic per process)."""
    if url.startswith("sqlite"):
        eng = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(eng, "connect")
        def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised through every SQLite test
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (pysqlite's implicit one is deferred)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=OFF")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(eng, "begin")
        def _on_begin(conn):  # pragma: no cover
            # writers take the write lock up front (no deadlock-prone lock upgrade); readers stay concurrent
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "BEGIN")

        return eng
    return create_engine(url, pool_pre_ping=True)


def open_store(target: str | os.PathLike, study: str | os.PathLike | StudyDefinition | None = None,
               study_dir: str | os.PathLike | None = None, durable: bool = True) -> "StudyStore":
    """Open (creating and migrating when needed) the store of a study. See the module docstring.

    ``study``: a study folder or definition file, or a StudyDefinition (then ``study_dir`` says where its images
    are). When the database already holds the study (same name), its stored definition must match.
    """
    t = os.fspath(target)
    definition: StudyDefinition | None = None
    folder: Path | None = Path(study_dir) if study_dir else None
    if isinstance(study, StudyDefinition):
        definition = study
        if folder is None:
            raise ValueError("open_store(study=StudyDefinition) needs study_dir=")
    elif study is not None:
        dp = definition_path(study)
        definition = load_study_definition(dp)
        folder = folder or dp.parent
    if _is_url(t):
        url = t
    else:
        p = Path(t)
        if p.is_dir() or p.suffix.lower() in (".json", ".toml"):
            dp = definition_path(p)
            if definition is None:
                definition = load_study_definition(dp)
                folder = folder or dp.parent
            url = "sqlite:///" + str((dp.parent / DB_NAME).resolve())
        else:
            if not p.parent.exists():
                raise InputError(p, "the folder of this database does not exist")
            url = "sqlite:///" + str(p.resolve())
    engine = make_engine(url, durable=durable)
    try:
        S.ensure_schema(engine)
    except RuntimeError as exc:
        engine.dispose()
        raise InputError(t, str(exc)) from None
    try:
        return StudyStore(engine, url, definition, folder)
    except BaseException:
        engine.dispose()
        raise


def _sha(definition: StudyDefinition) -> str:
    return hashlib.sha256(json.dumps(definition.to_json(), sort_keys=True).encode()).hexdigest()


class StudyStore:
    def __init__(self, engine: Engine, url: str, definition: StudyDefinition | None, study_dir: Path | None):
        self.engine = engine
        self.url = url
        with write_transaction(engine) as conn:
            rows = conn.execute(select(S.studies)).mappings().all()
            if definition is None:
                if len(rows) != 1:
                    raise InputError(url, "this database holds no study yet: give the study folder or definition"
                                     if not rows else f"this database holds {len(rows)} studies: give the study "
                                                      "folder or definition to choose one")
                row = rows[0]
                definition = parse_definition(json.loads(row["definition_json"]), url)
            else:
                row = next((r for r in rows if r["name"] == definition.name), None)
                sha = _sha(definition)
                if row is None:
                    sid = conn.execute(insert(S.studies).values(
                        name=definition.name, definition_json=json.dumps(definition.to_json()), definition_sha256=sha,
                        study_dir=str(Path(study_dir).resolve()), created_at=S.now())).inserted_primary_key[0]
                    row = conn.execute(select(S.studies).where(S.studies.c.id == sid)).mappings().one()
                elif row["definition_sha256"] != sha:
                    started = conn.execute(select(func.count()).select_from(S.sessions).join(
                        S.readers, S.readers.c.id == S.sessions.c.reader_pk).where(
                        S.readers.c.study_id == row["id"])).scalar()
                    if started:
                        raise InputError(url, f"the definition of study {definition.name!r} changed after reading "
                                              "began; create a new study (another name) instead")
                    conn.execute(update(S.studies).where(S.studies.c.id == row["id"]).values(
                        definition_json=json.dumps(definition.to_json()), definition_sha256=sha))
                    conn.execute(S.items.delete().where(S.items.c.study_id == row["id"]))
            self.study_pk: int = row["id"]
            self.definition: StudyDefinition = definition
            self.study_dir: Path = Path(study_dir) if study_dir else Path(row["study_dir"])
            have = {(r.case_id, r.condition) for r in conn.execute(
                select(S.items.c.case_id, S.items.c.condition).where(S.items.c.study_id == self.study_pk))}
            for case in definition.cases:
                for cond, ref in case.images.items():
                    if (case.id, cond) not in have:
                        conn.execute(insert(S.items).values(study_id=self.study_pk, case_id=case.id, condition=cond,
                                                            image_path=ref.path))
            known = {r.reader_id for r in conn.execute(
                select(S.readers.c.reader_id).where(S.readers.c.study_id == self.study_pk))}
            for r in definition.readers:
                if r.id not in known:
                    self._insert_reader(conn, r.id, r.name, r.seed, False)

    # -- admin ---------------------------------------------------------------------------------------------------
    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "StudyStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return S.current_version(conn) or 0

    def integrity_check(self) -> list[str]:
        """SQLite: ``PRAGMA integrity_check`` + ``foreign_key_check``; both backends: the store's own invariants.

        Returns ``["ok"]`` when everything holds, else one line per problem.
        """
        problems: list[str] = []
        with self.engine.connect() as conn:
            if self.is_sqlite:
                res = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check").fetchall()]
                if res != ["ok"]:
                    problems += [f"integrity_check: {r}" for r in res]
                for r in conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall():
                    problems.append(f"foreign_key_check: {tuple(r)}")
            # invariants: a session's order covers n_items positions; submitted reads carry their snapshot;
            # the position never passes the first unsubmitted case
            for sess in conn.execute(select(S.sessions)).mappings():
                n = conn.execute(select(func.count()).select_from(S.order_slots).where(
                    S.order_slots.c.session_id == sess["id"])).scalar()
                if n != sess["n_items"]:
                    problems.append(f"session {sess['id']}: {n} order slots for {sess['n_items']} items")
                if not 0 <= sess["position"] <= sess["n_items"]:
                    problems.append(f"session {sess['id']}: position {sess['position']} out of range")
            bad = conn.execute(select(func.count()).select_from(S.case_reads).where(and_(
                S.case_reads.c.submitted_at.is_not(None), S.case_reads.c.submitted_json.is_(None)))).scalar()
            if bad:
                problems.append(f"{bad} submitted case reads without their submitted marks")
        return problems or ["ok"]

    def _insert_reader(self, conn, reader_id: str, name: str, seed: int | None, simulated: bool) -> None:
        idx = conn.execute(select(func.coalesce(func.max(S.readers.c.reader_index), -1)).where(
            S.readers.c.study_id == self.study_pk)).scalar() + 1
        conn.execute(insert(S.readers).values(study_id=self.study_pk, reader_id=reader_id, name=name, seed=seed,
                                              reader_index=idx, simulated=simulated, created_at=S.now()))

    def add_reader(self, reader_id: str, name: str = "", simulated: bool = False, seed: int | None = None) -> ReaderInfo:
        """Register a reader (idempotent for an existing id). Readers of the definition are registered on open."""
        rid = reader_id.strip()
        if not rid:
            raise StudyError("a reader id must not be empty")
        with write_transaction(self.engine) as conn:
            exists = conn.execute(select(S.readers.c.id).where(and_(
                S.readers.c.study_id == self.study_pk, S.readers.c.reader_id == rid))).first()
            if not exists:
                self._insert_reader(conn, rid, name, seed, simulated)
        return next(r for r in self.readers() if r.reader_id == rid)

    def readers(self) -> list[ReaderInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(S.readers).where(S.readers.c.study_id == self.study_pk).order_by(
                S.readers.c.reader_index)).mappings().all()
        return [ReaderInfo(r["reader_id"], r["name"], r["reader_index"], r["seed"], bool(r["simulated"])) for r in rows]

    def _reader_row(self, conn, reader_id: str):
        row = conn.execute(select(S.readers).where(and_(S.readers.c.study_id == self.study_pk,
                                                        S.readers.c.reader_id == reader_id))).mappings().first()
        if row is None:
            known = ", ".join(r for (r,) in conn.execute(select(S.readers.c.reader_id).where(
                S.readers.c.study_id == self.study_pk))) or "none"
            raise StudyError(f"unknown reader {reader_id!r} in study {self.definition.name!r} (readers: {known}); "
                             "add it first")
        return row

    def image_path(self, case_id: str, condition: str) -> Path:
        from reviewer.studies.definition import resolve_image

        return resolve_image(self.study_dir, self.definition.case(case_id).images[condition].path)

    def reading_order(self, reader_id: str) -> list[OrderSlot]:
        """The stored order of a started reader (unblinded; for analysis and tests)."""
        with self.engine.connect() as conn:
            r = self._reader_row(conn, reader_id)
            rows = conn.execute(select(S.order_slots.c.block, S.items.c.case_id, S.items.c.condition).select_from(
                S.order_slots.join(S.sessions, S.sessions.c.id == S.order_slots.c.session_id).join(
                    S.items, S.items.c.id == S.order_slots.c.item_id)).where(
                S.sessions.c.reader_pk == r["id"]).order_by(S.order_slots.c.position)).all()
        return [OrderSlot(c, cond, b) for b, c, cond in rows]

    def progress(self) -> list[ReaderProgress]:
        out = []
        with self.engine.connect() as conn:
            for r in conn.execute(select(S.readers).where(S.readers.c.study_id == self.study_pk).order_by(
                    S.readers.c.reader_index)).mappings().all():
                sess = conn.execute(select(S.sessions).where(S.sessions.c.reader_pk == r["id"])).mappings().first()
                if sess is None:
                    out.append(ReaderProgress(r["reader_id"], bool(r["simulated"]), 0, 0, 0, False, False, 0.0))
                    continue
                n_sub, act = conn.execute(select(
                    func.count(S.case_reads.c.submitted_at), func.coalesce(func.sum(S.case_reads.c.active_s), 0.0)
                ).where(S.case_reads.c.session_id == sess["id"])).one()
                out.append(ReaderProgress(r["reader_id"], bool(r["simulated"]), sess["n_items"], int(n_sub),
                                          sess["position"], bool(sess["paused"]), sess["finished_at"] is not None,
                                          float(act)))
        return out

    def results(self, include_simulated: bool = True) -> list[CaseResult]:
        """Every submitted read with its case id, condition and marks as submitted (unblinded)."""
        q = (select(S.readers.c.reader_id, S.readers.c.simulated, S.items.c.case_id, S.items.c.condition,
                    S.items.c.image_path, S.case_reads.c.position, S.case_reads.c.submitted_json,
                    S.case_reads.c.submitted_at, S.case_reads.c.submit_count, S.case_reads.c.timed_out,
                    S.case_reads.c.active_s)
             .select_from(S.case_reads.join(S.sessions, S.sessions.c.id == S.case_reads.c.session_id)
                          .join(S.readers, S.readers.c.id == S.sessions.c.reader_pk)
                          .join(S.items, S.items.c.id == S.case_reads.c.item_id))
             .where(and_(S.readers.c.study_id == self.study_pk, S.case_reads.c.submitted_at.is_not(None)))
             .order_by(S.readers.c.reader_index, S.case_reads.c.position))
        out = []
        with self.engine.connect() as conn:
            for r in conn.execute(q).mappings():
                if r["simulated"] and not include_simulated:
                    continue
                snap = json.loads(r["submitted_json"])
                out.append(CaseResult(r["reader_id"], bool(r["simulated"]), r["case_id"], r["condition"],
                                      r["image_path"], r["position"], snap["case_rating"], snap["marks"],
                                      float(r["active_s"]), r["submitted_at"], r["submit_count"], bool(r["timed_out"])))
        return out

    # -- reading -------------------------------------------------------------------------------------------------
    def start_session(self, reader_id: str, clock: Callable[[], float] = time.monotonic) -> "ReaderSession":
        """Start the reader's session (computing and storing their order) or resume it where it stopped."""
        with write_transaction(self.engine) as conn:
            r = self._reader_row(conn, reader_id)
            sess = conn.execute(select(S.sessions).where(S.sessions.c.reader_pk == r["id"])).mappings().first()
            if sess is None:
                order = reading_order(self.definition, reader_id, r["reader_index"], seed=r["seed"])
                item_ids = {(row.case_id, row.condition): row.id for row in conn.execute(
                    select(S.items.c.id, S.items.c.case_id, S.items.c.condition).where(
                        S.items.c.study_id == self.study_pk))}
                t = S.now()
                try:
                    sid = conn.execute(insert(S.sessions).values(
                        reader_pk=r["id"], position=0, n_items=len(order), paused=False, started_at=t,
                        updated_at=t)).inserted_primary_key[0]
                except IntegrityError:  # pragma: no cover - another workstation started this reader just now
                    raise StudyError(f"reader {reader_id!r} was started elsewhere at the same moment; retry")
                conn.execute(insert(S.order_slots), [
                    {"session_id": sid, "position": i, "item_id": item_ids[(s.case_id, s.condition)],
                     "block": s.block, "token": secrets.token_hex(12)} for i, s in enumerate(order)])
            else:
                sid = sess["id"]
        return ReaderSession(self, reader_id, sid, clock)


class ReaderSession:
    """One reader's reading session. Blinded: see the module docstring for the API."""

    def __init__(self, store: StudyStore, reader_id: str, session_id: int, clock: Callable[[], float]):
        self.store = store
        self.reader_id = reader_id
        self.session_id = session_id
        self._clock = clock
        self._cache = _Cached()
        d = store.definition
        self.paradigm = d.paradigm
        self.rating_range = d.rating_range
        self.rating_scale = d.rating_scale
        self.allow_back = d.navigation.allow_back
        self.time_limit_s = d.time_limit_s
        self.instructions = d.instructions
        self.n_blocks = len(d.conditions) if d.randomisation.separate_conditions else 1
        with store.engine.connect() as conn:
            sess = self._sess(conn)
            self.n_cases = sess["n_items"]
        # the clock runs for the current case unless the session was left paused
        self._since: float | None = None if sess["paused"] else self._clock()
        self._restart_at: float | None = None

    # -- state ---------------------------------------------------------------------------------------------------
    @contextmanager
    def _tx(self):
        """A write transaction; time flushed inside it leaves the in-memory clock only once it is committed."""
        self._restart_at = None
        with write_transaction(self.store.engine) as conn:
            yield conn
        if self._restart_at is not None and self._since is not None:
            self._since = self._restart_at
        self._restart_at = None

    def _sess(self, conn):
        return conn.execute(select(S.sessions).where(S.sessions.c.id == self.session_id)).mappings().one()

    @property
    def position(self) -> int:
        with self.store.engine.connect() as conn:
            return self._sess(conn)["position"]

    @property
    def paused(self) -> bool:
        with self.store.engine.connect() as conn:
            return bool(self._sess(conn)["paused"])

    @property
    def finished(self) -> bool:
        with self.store.engine.connect() as conn:
            return self._sess(conn)["finished_at"] is not None

    def _slot(self, conn, position: int):
        return conn.execute(select(S.order_slots, S.items.c.case_id, S.items.c.condition).select_from(
            S.order_slots.join(S.items, S.items.c.id == S.order_slots.c.item_id)).where(and_(
                S.order_slots.c.session_id == self.session_id, S.order_slots.c.position == position))).mappings().one()

    def _read(self, conn, slot, create: bool):
        row = conn.execute(select(S.case_reads).where(and_(S.case_reads.c.session_id == self.session_id,
                                                           S.case_reads.c.item_id == slot["item_id"]))).mappings().first()
        if row is None and create:
            rid = conn.execute(insert(S.case_reads).values(
                session_id=self.session_id, item_id=slot["item_id"], position=slot["position"], case_rating=None,
                active_s=0.0, opened_at=S.now(), submit_count=0, timed_out=False)).inserted_primary_key[0]
            row = conn.execute(select(S.case_reads).where(S.case_reads.c.id == rid)).mappings().one()
        return row

    def _frontier(self, conn) -> int:
        """The first position not yet submitted (n_cases when all are)."""
        subs = {p for (p,) in conn.execute(select(S.case_reads.c.position).where(and_(
            S.case_reads.c.session_id == self.session_id, S.case_reads.c.submitted_at.is_not(None))))}
        for p in range(self.n_cases):
            if p not in subs:
                return p
        return self.n_cases

    def _elapsed(self) -> float:
        if self._since is None:
            return 0.0
        return max(0.0, self._clock() - self._since)

    def _flush_time(self, conn, read_id: int | None) -> None:
        """Add the time since the clock (re)started to the current case's read, inside the caller's transaction."""
        if self._since is None:
            return
        now = self._clock()
        dt = max(0.0, now - self._since)
        self._restart_at = now
        if read_id is not None and dt > 0:
            conn.execute(update(S.case_reads).where(S.case_reads.c.id == read_id).values(
                active_s=S.case_reads.c.active_s + dt))

    def _begin_current(self, conn, token: str | None):
        """Lock in the current case for a mutation: check the token, create its read row, flush the clock."""
        sess = self._sess(conn)
        if sess["position"] >= self.n_cases:
            raise StudyError("the reading session is finished")
        slot = self._slot(conn, sess["position"])
        if token is not None and token != slot["token"]:
            raise StaleCaseError("that case is no longer the current case")
        read = self._read(conn, slot, create=True)
        self._flush_time(conn, read["id"])
        conn.execute(update(S.sessions).where(S.sessions.c.id == self.session_id).values(updated_at=S.now()))
        read = conn.execute(select(S.case_reads).where(S.case_reads.c.id == read["id"])).mappings().one()
        return sess, slot, read

    def _view(self, conn) -> CaseView | None:
        sess = self._sess(conn)
        pos = sess["position"]
        if pos >= self.n_cases:
            return None
        slot = self._slot(conn, pos)
        read = self._read(conn, slot, create=False)
        d = self.store.definition
        ref = d.case(slot["case_id"]).images[slot["condition"]]
        marks = tuple(self._marks(conn, read["id"])) if read is not None else ()
        active = (float(read["active_s"]) if read is not None else 0.0) + self._elapsed()
        frontier = self._frontier(conn)
        return CaseView(
            token=slot["token"], index=pos, n_cases=self.n_cases, block=slot["block"], n_blocks=self.n_blocks,
            image_path=self.store.image_path(slot["case_id"], slot["condition"]).resolve(),
            spacing_mm=ref.spacing_mm, window=ref.window or d.display.window, invert=d.display.invert,
            marks=marks, case_rating=None if read is None else read["case_rating"],
            submitted=read is not None and read["submitted_at"] is not None, active_s=active,
            time_left_s=None if self.time_limit_s is None else max(0.0, self.time_limit_s - active),
            can_go_back=self.allow_back and pos > 0, can_go_forward=self.allow_back and pos < frontier,
            condition_label=None if d.blinding.hide_condition else slot["condition"])

    def _marks(self, conn, read_id: int) -> list[MarkView]:
        rows = conn.execute(select(S.marks).where(S.marks.c.case_read_id == read_id).order_by(S.marks.c.id)).mappings()
        return [MarkView(m["id"], (m["x"], m["y"], m["z"]),
                         None if m["i"] is None else (m["i"], m["j"], m["k"]), m["rating"]) for m in rows]

    def current(self) -> CaseView | None:
        with self.store.engine.connect() as conn:
            return self._view(conn)

    def load_image(self, token: str | None = None):
        """The current case's image as a blinded Volume (cached for the current case)."""
        from reviewer.studies.images import blinded, load_study_image

        view = self.current()
        if view is None:
            raise StudyError("the reading session is finished")
        if token is not None and token != view.token:
            raise StaleCaseError("that case is no longer the current case")
        if self._cache.token != view.token:
            vol = load_study_image(view.image_path, view.spacing_mm)
            self._cache = _Cached(view.token, blinded(vol, f"Case {view.index + 1} of {view.n_cases}"))
        return self._cache.volume

    # -- marks and ratings -------------------------------------------------------------------------------------------
    def _check_rating(self, rating: float | None, what: str) -> float | None:
        if rating is None:
            return None
        lo, hi = self.rating_range
        if isinstance(rating, bool) or not isinstance(rating, (int, float)) or not math.isfinite(rating):
            raise StudyError(f"{what} must be a number from {lo} to {hi}, got {rating!r}")
        if not lo <= rating <= hi or (self.rating_scale == "1-5" and rating != int(rating)):
            raise StudyError(f"{what} must be {'an integer ' if self.rating_scale == '1-5' else ''}"
                             f"from {lo} to {hi}, got {rating!r}")
        return float(rating)

    def _coords(self, world_lps, image_ijk) -> tuple[tuple[float, float, float], tuple[float, float, float] | None]:
        if (world_lps is None) == (image_ijk is None):
            raise StudyError("give a mark's position either in world (LPS mm) or in image (i, j, k) coordinates")
        geom = self.load_image().geometry
        if image_ijk is not None:
            ijk = tuple(float(v) for v in image_ijk)
            world = tuple(float(v) for v in geom.voxel_to_world(ijk))
        else:
            world = tuple(float(v) for v in world_lps)
            ijk = tuple(float(v) for v in geom.world_to_voxel(world))
        if len(world) != 3 or not all(math.isfinite(v) for v in world):
            raise StudyError(f"a mark needs 3 finite coordinates, got {world_lps or image_ijk!r}")
        return world, ijk

    def _check_open(self, conn, read) -> None:
        """Raise when reading is not allowed now (the transaction rolls back; the clock keeps the time)."""
        problem = self._problem(conn, read)
        if problem:
            raise StudyError(problem)

    def _problem(self, conn, read) -> str | None:
        if self.paused_in(conn):
            return "the session is paused: resume before reading"
        if self.time_limit_s is not None and read["active_s"] >= self.time_limit_s:
            return "the time for this case is up: submit it"
        return None

    def paused_in(self, conn) -> bool:
        return bool(self._sess(conn)["paused"])

    def add_mark(self, world_lps=None, image_ijk=None, rating: float | None = None,
                 token: str | None = None) -> MarkView:
        if not self.store.definition.uses_marks:
            raise StudyError("this study collects one rating per case (ROC), not marks")
        rating = self._check_rating(rating, "a mark's rating")
        world, ijk = self._coords(world_lps, image_ijk)
        with self._tx() as conn:
            _, _, read = self._begin_current(conn, token)
            self._check_open(conn, read)
            t = S.now()
            mid = conn.execute(insert(S.marks).values(case_read_id=read["id"], x=world[0], y=world[1], z=world[2],
                                                      i=ijk[0], j=ijk[1], k=ijk[2], rating=rating, created_at=t,
                                                      updated_at=t)).inserted_primary_key[0]
        return MarkView(mid, world, ijk, rating)

    def _own_mark(self, conn, read, mark_id: int):
        m = conn.execute(select(S.marks).where(and_(S.marks.c.id == mark_id,
                                                    S.marks.c.case_read_id == read["id"]))).mappings().first()
        if m is None:
            raise StudyError(f"mark {mark_id} is not on the current case")
        return m

    def move_mark(self, mark_id: int, world_lps=None, image_ijk=None, token: str | None = None) -> MarkView:
        world, ijk = self._coords(world_lps, image_ijk)
        with self._tx() as conn:
            _, _, read = self._begin_current(conn, token)
            self._check_open(conn, read)
            m = self._own_mark(conn, read, mark_id)
            conn.execute(update(S.marks).where(S.marks.c.id == mark_id).values(
                x=world[0], y=world[1], z=world[2], i=ijk[0], j=ijk[1], k=ijk[2], updated_at=S.now()))
        return MarkView(mark_id, world, ijk, m["rating"])

    def rate_mark(self, mark_id: int, rating: float, token: str | None = None) -> MarkView:
        rating = self._check_rating(rating, "a mark's rating")
        with self._tx() as conn:
            _, _, read = self._begin_current(conn, token)
            self._check_open(conn, read)
            m = self._own_mark(conn, read, mark_id)
            conn.execute(update(S.marks).where(S.marks.c.id == mark_id).values(rating=rating, updated_at=S.now()))
        return MarkView(mark_id, (m["x"], m["y"], m["z"]), None if m["i"] is None else (m["i"], m["j"], m["k"]),
                        rating)

    def delete_mark(self, mark_id: int, token: str | None = None) -> None:
        with self._tx() as conn:
            _, _, read = self._begin_current(conn, token)
            self._check_open(conn, read)
            self._own_mark(conn, read, mark_id)
            conn.execute(S.marks.delete().where(S.marks.c.id == mark_id))

    def set_case_rating(self, rating: float | None, token: str | None = None) -> None:
        if not self.store.definition.uses_case_rating:
            raise StudyError("this study collects marks (FROC) without a case rating")
        rating = self._check_rating(rating, "the case rating")
        with self._tx() as conn:
            _, _, read = self._begin_current(conn, token)
            self._check_open(conn, read)
            conn.execute(update(S.case_reads).where(S.case_reads.c.id == read["id"]).values(case_rating=rating))

    # -- submission and navigation ---------------------------------------------------------------------------------
    def submit_case(self, timed_out: bool = False, token: str | None = None) -> CaseView | None:
        """Submit the current case atomically (its marks and rating as they are now) and move to the next one.

        FROC: every mark needs a rating; no marks means "no lesion". ROC/both: the case rating is required
        (unless ``timed_out``: the time limit submits what there is).
        """
        with self._tx() as conn:
            if self.paused_in(conn):
                raise StudyError("the session is paused: resume before submitting")
            sess, slot, read = self._begin_current(conn, token)
            marks = self._marks(conn, read["id"])
            if not timed_out:
                unrated = [m.mark_id for m in marks if m.rating is None]
                if unrated:
                    raise StudyError(f"{len(unrated)} mark(s) have no rating yet: rate or delete them")
                if self.store.definition.uses_case_rating and read["case_rating"] is None:
                    raise StudyError("rate the case before submitting it")
            snapshot = {"case_rating": read["case_rating"],
                        "marks": [{"mark_id": m.mark_id, "world_lps": list(m.world_lps),
                                   "image_ijk": None if m.image_ijk is None else list(m.image_ijk),
                                   "rating": m.rating} for m in marks if m.rating is not None]}
            t = S.now()
            conn.execute(update(S.case_reads).where(S.case_reads.c.id == read["id"]).values(
                submitted_at=t, submitted_json=json.dumps(snapshot), submit_count=read["submit_count"] + 1,
                timed_out=bool(timed_out)))
            nxt = self._frontier(conn)
            conn.execute(update(S.sessions).where(S.sessions.c.id == self.session_id).values(
                position=nxt, updated_at=t, finished_at=t if nxt >= self.n_cases else None))
            view = self._view(conn)
        return self.current() if view is not None else None

    def _move(self, delta: int) -> CaseView:
        if not self.allow_back:
            raise StudyError("this study does not allow going back to earlier cases")
        with self._tx() as conn:
            sess = self._sess(conn)
            pos = sess["position"]
            new = pos + delta
            if new < 0 or new > self._frontier(conn) or new >= self.n_cases:
                raise StudyError("no case to go to in that direction")
            if pos < self.n_cases:  # the time spent on the case being left counts for it
                read = self._read(conn, self._slot(conn, pos), create=True)
                self._flush_time(conn, read["id"])
            conn.execute(update(S.sessions).where(S.sessions.c.id == self.session_id).values(
                position=new, updated_at=S.now(), finished_at=None))
        return self.current()

    def go_back(self) -> CaseView:
        return self._move(-1)

    def go_forward(self) -> CaseView:
        return self._move(+1)

    # -- time --------------------------------------------------------------------------------------------------------
    def heartbeat(self) -> None:
        """Persist the active time of the current case so far (the GUI calls this every few seconds)."""
        with self._tx() as conn:
            sess = self._sess(conn)
            if sess["position"] >= self.n_cases or sess["paused"]:
                return
            read = self._read(conn, self._slot(conn, sess["position"]), create=True)
            self._flush_time(conn, read["id"])

    def pause(self) -> None:
        with self._tx() as conn:
            sess = self._sess(conn)
            if sess["paused"]:
                return
            if sess["position"] < self.n_cases:
                read = self._read(conn, self._slot(conn, sess["position"]), create=True)
                self._flush_time(conn, read["id"])
            conn.execute(update(S.sessions).where(S.sessions.c.id == self.session_id).values(
                paused=True, updated_at=S.now()))
        self._since = None

    def resume(self) -> None:
        with self._tx() as conn:
            conn.execute(update(S.sessions).where(S.sessions.c.id == self.session_id).values(
                paused=False, updated_at=S.now()))
        self._since = self._clock()

    def time_left(self) -> float | None:
        v = self.current()
        return None if v is None else v.time_left_s

    def summary(self) -> SessionSummary:
        with self.store.engine.connect() as conn:
            sess = self._sess(conn)
            n_sub, act = conn.execute(select(
                func.count(S.case_reads.c.submitted_at), func.coalesce(func.sum(S.case_reads.c.active_s), 0.0)
            ).where(S.case_reads.c.session_id == self.session_id)).one()
            n_marks = conn.execute(select(func.count()).select_from(S.marks.join(
                S.case_reads, S.case_reads.c.id == S.marks.c.case_read_id)).where(
                S.case_reads.c.session_id == self.session_id)).scalar()
        return SessionSummary(self.reader_id, self.n_cases, int(n_sub), int(n_marks), float(act) + self._elapsed(),
                              sess["finished_at"] is not None)
