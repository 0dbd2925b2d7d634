"""The same store API on a real PostgreSQL server started for the test (skipped without server binaries)."""

from __future__ import annotations

import pytest

from reviewer.studies.analysis import analyze_study
from reviewer.studies.simulate import SimSettings, simulate_readers
from reviewer.studies.store import StudyError, open_store
from tests.studies_helpers import postgres_server, tiny_study


@pytest.fixture(scope="module")
def pg_url():
    with postgres_server() as url:
        if url.startswith("skip:"):
            pytest.skip(url[5:].strip())
        yield url


@pytest.mark.slow
def test_store_api_on_postgresql(pg_url, tmp_path):
    d = tiny_study(tmp_path, allow_back=True)
    store = open_store(pg_url, study=tmp_path)
    assert store.schema_version() == 2 and not store.is_sqlite
    s1 = store.start_session("R1")
    s2 = store.start_session("R2")  # two workstations reading at once
    m = s1.add_mark(image_ijk=(10, 12, 0), rating=3)
    s2.add_mark(world_lps=(5, 5, 0), rating=2)
    s1.move_mark(m.mark_id, world_lps=(11, 12, 0))
    s1.submit_case()
    s2.submit_case()
    s1.go_back()
    s1.rate_mark(m.mark_id, 5)
    s1.submit_case()
    with pytest.raises(StudyError, match="no rating"):
        s1.add_mark(world_lps=(3, 3, 0))
        s1.submit_case()
    store.close()
    # resume from another "workstation": the database alone holds the study
    other = open_store(pg_url)
    assert other.definition.to_json() == d.to_json()
    r1 = [r for r in other.results() if r.reader_id == "R1"]
    assert len(r1) == 1 and r1[0].submit_count == 2 and r1[0].marks[0]["rating"] == 5.0
    assert r1[0].marks[0]["world_lps"] == [11.0, 12.0, 0.0]
    s1b = other.start_session("R1")
    v = s1b.current()
    assert v.index == 1 and len(v.marks) == 1 and v.marks[0].rating is None  # the unrated mark persisted
    simulate_readers(other, 2, seed=3, settings=SimSettings(sensitivity=0.8, false_marks_per_case=0.2))
    other_results = other.results()
    a = analyze_study(other.definition, other_results, n_bootstrap=50)
    assert set(a["per_reader"][d.conditions[0]]) >= {"sim-01", "sim-02"}
    assert other.integrity_check() == ["ok"]
    other.close()
    from reviewer import cli

    assert cli.main(["study", "status", str(tmp_path), "--db", pg_url]) == 0
    assert cli.main(["study", "export", str(tmp_path), "--db", pg_url, "--format", "csv",
                     "--out", str(tmp_path / "pg.csv")]) == 0
    assert (tmp_path / "pg.csv").read_text().count("\ncase,") == len(other_results)
