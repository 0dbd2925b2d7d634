"""The reading store: blinded reading API, navigation and timing rules, migrations, and crash-resume (SIGKILL)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from reviewer.errors import InputError
from reviewer.studies import schema as S
from reviewer.studies.store import StaleCaseError, StudyError, open_store
from tests.studies_helpers import tiny_study

REPO = Path(__file__).resolve().parent.parent


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_reading_flow_is_blinded_and_persists_marks(tmp_path):
    d = tiny_study(tmp_path)
    store = open_store(tmp_path)
    assert store.schema_version() == S.SCHEMA_VERSION
    s = store.start_session("R1")
    v = s.current()
    fields = {f.name for f in dataclasses.fields(v)}
    assert not fields & {"case_id", "condition", "model", "case"}
    assert v.index == 0 and v.n_cases == 12 and v.n_blocks == 2 and not v.can_go_back
    text = json.dumps(dataclasses.asdict(v), default=str)
    for cond in d.conditions:
        assert cond not in text
    assert "case0" not in text and v.condition_label is None
    vol = s.load_image()
    assert vol.name == "Case 1 of 12" and vol.source == "" and vol.metadata == {}
    # image coordinates go through the image geometry (1 mm, origin 0)
    m = s.add_mark(image_ijk=(10, 12, 0))
    assert m.world_lps == pytest.approx((10, 12, 0)) and m.rating is None
    m = s.move_mark(m.mark_id, world_lps=(11.0, 12.0, 0.0))
    assert m.image_ijk == pytest.approx((11, 12, 0))
    with pytest.raises(StudyError, match="no rating"):
        s.submit_case()
    with pytest.raises(StudyError, match="integer from 1 to 5"):
        s.rate_mark(m.mark_id, 6)
    with pytest.raises(StudyError, match="integer from 1 to 5"):
        s.rate_mark(m.mark_id, 2.5)
    s.rate_mark(m.mark_id, 4)
    m2 = s.add_mark(world_lps=(20, 20, 0), rating=2)
    s.delete_mark(m2.mark_id)
    with pytest.raises(StudyError, match="not on the current case"):
        s.delete_mark(m2.mark_id)
    assert [x.mark_id for x in s.current().marks] == [m.mark_id]
    token0 = v.token
    v1 = s.submit_case()
    assert v1.index == 1 and v1.token != token0
    with pytest.raises(StaleCaseError):
        s.add_mark(world_lps=(1, 1, 0), rating=1, token=token0)
    with pytest.raises(StudyError, match="does not allow going back"):
        s.go_back()
    s.submit_case()  # empty = "no lesion"
    res = store.results()
    order = store.reading_order("R1")
    assert [(r.case_id, r.condition) for r in res] == [(o.case_id, o.condition) for o in order[:2]]
    assert res[0].marks == [{"mark_id": m.mark_id, "world_lps": [11.0, 12.0, 0.0], "image_ijk": [11.0, 12.0, 0.0],
                             "rating": 4.0}]
    assert res[1].marks == []
    store.close()
    # a fresh store (another process, later) resumes at the same case with the same order
    store2 = open_store(tmp_path)
    s2 = store2.start_session("R1")
    assert s2.current().index == 2 and store2.reading_order("R1") == order
    assert store2.integrity_check() == ["ok"]
    with pytest.raises(StudyError, match="unknown reader"):
        store2.start_session("nobody")
    store2.close()


def test_unblinded_study_shows_the_condition(tmp_path):
    d = tiny_study(tmp_path)
    d.blinding.hide_condition = False
    d.write(tmp_path / "study.json")
    with open_store(tmp_path) as store:
        v = store.start_session("R1").current()
        assert v.condition_label == store.reading_order("R1")[0].condition


def test_go_back_edit_and_resubmit(tmp_path):
    tiny_study(tmp_path, allow_back=True)
    clock = Clock()
    with open_store(tmp_path) as store:
        s = store.start_session("R2", clock=clock)
        s.add_mark(world_lps=(1, 1, 0), rating=1)
        s.submit_case()
        s.submit_case()
        clock.t += 7  # looking at case 3 without touching it, then going back: the 7 s count for case 3
        v = s.go_back()
        assert s.go_forward().active_s == pytest.approx(7)
        v = s.go_back()
        assert v.index == 1 and v.submitted and v.can_go_forward
        v = s.go_back()
        assert v.index == 0 and len(v.marks) == 1 and not v.can_go_back
        s.add_mark(world_lps=(2, 2, 0), rating=5)
        v = s.submit_case()
        assert v.index == 2  # back to the first unread case
        r0 = [r for r in store.results() if r.position == 0][0]
        assert r0.submit_count == 2 and len(r0.marks) == 2
        with pytest.raises(StudyError, match="no case"):
            s.go_forward()


def test_active_time_pause_and_time_limit(tmp_path):
    tiny_study(tmp_path, time_limit_s=20.0)
    clock = Clock()
    with open_store(tmp_path) as store:
        s = store.start_session("R1", clock=clock)
        clock.t += 10
        s.pause()
        assert s.paused
        clock.t += 100  # paused: not counted
        with pytest.raises(StudyError, match="paused"):
            s.add_mark(world_lps=(1, 1, 0), rating=3)
        s.resume()
        clock.t += 5
        assert s.current().active_s == pytest.approx(15)
        assert s.time_left() == pytest.approx(5)
        s.heartbeat()
        clock.t += 6
        with pytest.raises(StudyError, match="time for this case is up"):
            s.add_mark(world_lps=(1, 1, 0), rating=3)
        s.submit_case(timed_out=True)
        r = store.results()[0]
        assert r.active_s == pytest.approx(21) and r.timed_out
        clock.t += 3
        s.submit_case()
        assert store.results()[1].active_s == pytest.approx(3)
        # a new session object (after a crash) never counts the gap while nobody read
        s_again = store.start_session("R1", clock=clock)
        clock.t += 1000
        s.heartbeat()  # the old object's clock flushes only its own time
        assert s_again.summary().n_submitted == 2


def test_roc_paradigm_needs_a_case_rating(tmp_path):
    tiny_study(tmp_path, paradigm="roc", scale="0-100")
    with open_store(tmp_path) as store:
        s = store.start_session("R1")
        with pytest.raises(StudyError, match="ROC"):
            s.add_mark(world_lps=(1, 1, 0), rating=3)
        with pytest.raises(StudyError, match="rate the case"):
            s.submit_case()
        with pytest.raises(StudyError, match="from 0 to 100"):
            s.set_case_rating(101)
        s.set_case_rating(72.5)
        s.submit_case()
        assert store.results()[0].case_rating == 72.5


def test_changed_definition_after_reading_began_is_refused(tmp_path):
    d = tiny_study(tmp_path)
    with open_store(tmp_path) as store:
        store.start_session("R1")
    d.acceptance_radius_mm = 9.0
    d.write(tmp_path / "study.json")
    with pytest.raises(InputError, match="changed after reading began"):
        open_store(tmp_path)


def test_migration_from_schema_version_1(tmp_path):
    d = tiny_study(tmp_path)
    db = tmp_path / "study.db"
    con = sqlite3.connect(db)
    for ddl in S.V1_DDL:
        con.execute(ddl)
    con.execute("INSERT INTO schema_version VALUES (1, '2026-01-01')")
    con.execute("INSERT INTO studies VALUES (1, ?, ?, ?, ?, '2026-01-01')",
                (d.name, json.dumps(d.to_json()), "old-sha", str(tmp_path)))
    con.execute("INSERT INTO readers VALUES (1, 1, 'R1', '', NULL, 0, '2026-01-01')")
    con.commit()
    con.close()
    with open_store(tmp_path) as store:
        assert store.schema_version() == 2
        assert [(r.reader_id, r.simulated) for r in store.readers()] == [("R1", False), ("R2", False)]
        store.add_reader("sim-x", simulated=True)
        s = store.start_session("R1")
        s.add_mark(world_lps=(1, 1, 0), rating=2)
        s.submit_case(timed_out=True)
        assert store.results()[0].timed_out
        assert store.integrity_check() == ["ok"]
    con = sqlite3.connect(db)
    assert [r[0] for r in con.execute("SELECT version FROM schema_version ORDER BY version")] == [1, 2]
    cols = {r[1] for r in con.execute("PRAGMA table_info(case_reads)")}
    assert "timed_out" in cols
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_newer_schema_is_refused(tmp_path):
    tiny_study(tmp_path)
    with open_store(tmp_path):
        pass
    con = sqlite3.connect(tmp_path / "study.db")
    con.execute("INSERT INTO schema_version VALUES (99, 'future')")
    con.commit()
    con.close()
    with pytest.raises(InputError, match="schema version 99"):
        open_store(tmp_path)


READER = r"""
import sys
from reviewer.studies.store import open_store
store = open_store(sys.argv[1])
s = store.start_session("R1")
n = 0
while (v := s.current()) is not None:
    for i in range(len(v.marks), 3):  # resumed mid-case: the marks from before the crash are kept
        m = s.add_mark(world_lps=(1.0 + i, 2.0 + v.index, 0.0), rating=1 + (i + v.index) % 5)
        print("MARK", v.index, m.mark_id, flush=True)
    s.submit_case()
    print("SUBMIT", v.index, flush=True)
"""


def _run_until_killed(study: Path, min_lines: int) -> list[list[str]]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", READER, str(study)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    lines = []
    while len(lines) < min_lines:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.split())
    proc.send_signal(signal.SIGKILL)  # at an arbitrary point: mid-transaction, between marks, mid-submit
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    return lines


@pytest.mark.slow
def test_sigkill_mid_reading_loses_nothing(tmp_path):
    tiny_study(tmp_path, n_cases=12)
    printed_marks: dict[int, set[int]] = {}
    submitted: set[int] = set()
    for kill_after in (4, 11, 19):
        lines = _run_until_killed(tmp_path, kill_after)
        for ln in lines:
            if ln[0] == "MARK":
                printed_marks.setdefault(int(ln[1]), set()).add(int(ln[2]))
            elif ln[0] == "SUBMIT":
                submitted.add(int(ln[1]))
        with open_store(tmp_path) as store:
            assert store.integrity_check() == ["ok"]
            s = store.start_session("R1")
            v = s.current()
            res = {r.position: r for r in store.results()}
            # every submission the killed process reported is there, and nothing beyond the frontier
            assert submitted <= set(res)
            assert set(res) == set(range(v.index))
            # every reported mark is persisted: in its submitted snapshot, or on the current (resumed) case
            for pos, ids in printed_marks.items():
                if pos in res:
                    assert ids <= {m["mark_id"] for m in res[pos].marks}
                else:
                    assert pos == v.index and ids <= {m.mark_id for m in v.marks}
            # submitted snapshots are whole: three rated marks each (a case is never half-submitted)
            assert all(len(r.marks) == 3 for r in res.values())
            assert v.index < v.n_cases
    con = sqlite3.connect(tmp_path / "study.db")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
