"""Reader studies end to end: create (manifest, insertions), read through the store, simulate, analyze, export
and read the exports back with openpyxl / csv / json."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from openpyxl import load_workbook

from reviewer import cli
from reviewer.errors import InputError
from reviewer.findings import Finding
from reviewer.geometry import Volume
from reviewer.io.writer import write_volume
from reviewer.studies.analysis import analyze_study
from reviewer.studies.definition import load_study_definition
from reviewer.studies.exports import export_study_file
from reviewer.studies.store import open_store
from tests.studies_helpers import tiny_study

NEG = float("-inf")


def _read_known(store, reader="R1"):
    """Condition A: lesion on case00 rated 4, case02's lesion missed, an NL rated 2 on normal case01 and a far
    NL rated 3 on case00 (counts as NL, not for wAFROC). Condition B: every lesion found with rating 5."""
    a, b = store.definition.conditions
    s = store.start_session(reader)
    order = store.reading_order(reader)
    while (v := s.current()) is not None:
        slot = order[v.index]
        if slot.condition == a:
            if slot.case_id == "case00":
                s.add_mark(world_lps=(11.0, 12.5, 0.0), rating=4)
                s.add_mark(world_lps=(25.0, 25.0, 0.0), rating=3)
            elif slot.case_id == "case01":
                s.add_mark(world_lps=(3.0, 3.0, 0.0), rating=2)
        elif slot.case_id in ("case00", "case02"):
            s.add_mark(image_ijk=(10, 12, 0), rating=5)
        s.submit_case()


def test_hand_worked_study_analysis_and_exports(tmp_path):
    d = tiny_study(tmp_path / "s", n_cases=4, readers=("R1",))
    store = open_store(tmp_path / "s")
    _read_known(store)
    a = analyze_study(store.definition, store.results(), n_bootstrap=200, seed=1)
    ca, cb = d.conditions
    r = a["per_reader"][ca]["R1"]
    # normals: case01 highest NL 2, case03 none; lesions: case00 4, case02 unmarked
    # wAFROC = [psi(2,4) + psi(2,-inf) + psi(-inf,4) + psi(-inf,-inf)] / 4 = (1 + 0 + 1 + .5) / 4
    assert r["wafroc"] == pytest.approx(0.625) and r["afroc"] == pytest.approx(0.625)
    # ROC, highest rating per case: normals (2, -inf), abnormals (4, -inf) -> same numbers
    assert r["roc_auc"] == pytest.approx(0.625)
    assert r["llf"] == pytest.approx(0.5) and r["nl_per_case"] == pytest.approx(2 / 4)
    assert a["per_reader"][cb]["R1"]["wafroc"] == pytest.approx(1.0)
    comp = a["comparison"]
    assert comp["wafroc"]["difference"] == pytest.approx(0.375)
    lo, hi = comp["wafroc"]["ci95"]
    assert lo <= 0.375 <= hi

    # JAFROC workbook, read back with openpyxl
    files = export_study_file(store, "jafroc", tmp_path / "j.xlsx")
    wb = load_workbook(files[0])
    assert wb.sheetnames == ["Truth", "FP", "TP"]
    rows = lambda ws: [tuple(c.value for c in row) for row in ws.iter_rows()]  # noqa: E731
    assert rows(wb["Truth"]) == [("CaseID", "LesionID", "Weight"), (1, 1, 1), (2, 0, 0), (3, 1, 1), (4, 0, 0)]
    assert sorted(rows(wb["FP"])[1:]) == [("R1", 1, 1, 3), ("R1", 1, 2, 2)]
    assert rows(wb["FP"])[0] == ("ReaderID", "ModalityID", "CaseID", "FP_Rating")
    assert rows(wb["TP"])[0] == ("ReaderID", "ModalityID", "CaseID", "LesionID", "TP_Rating")
    assert sorted(rows(wb["TP"])[1:]) == [("R1", 1, 1, 1, 4), ("R1", 2, 1, 1, 5), ("R1", 2, 3, 1, 5)]
    ids = list(csv.DictReader((tmp_path / "j_ids.csv").open()))
    assert {(x["kind"], x["id"], x["label"]) for x in ids} >= {("case", "1", "case00"), ("modality", "2", cb)}

    # iMRMC: header counts, BEGIN DATA:, truth rows, one score row per read
    files = export_study_file(store, "imrmc", tmp_path / "m.imrmc")
    lines = files[0].read_text().splitlines()
    assert {"NR: 1", "N0: 2", "N1: 2", "NM: 2"} <= set(lines)
    data = lines[lines.index("BEGIN DATA:") + 1:]
    assert data[:4] == ["-1,1,0,1", "-1,2,0,0", "-1,3,0,1", "-1,4,0,0"]
    scores = {tuple(x.split(",")[:3]): x.split(",")[3] for x in data[4:]}
    assert len(scores) == 8
    assert scores[("1", "1", "1")] == "4" and scores[("1", "3", "1")] == "0" and scores[("1", "2", "1")] == "2"

    # long CSV
    export_study_file(store, "csv", tmp_path / "long.csv")
    recs = list(csv.DictReader((tmp_path / "long.csv").open()))
    assert sum(x["record"] == "case" for x in recs) == 8 and sum(x["record"] == "mark" for x in recs) == 5
    ll = [x for x in recs if x["scored_as"] == "LL"]
    assert len(ll) == 3 and all(x["lesion_id"] == "1" for x in ll)

    # the whole study as JSON (what DICOM SR export reads)
    export_study_file(store, "json", tmp_path / "study_export.json")
    j = json.loads((tmp_path / "study_export.json").read_text())
    assert j["format"] == "reviewer-study-export" and j["coordinates"] == "world LPS mm"
    assert load_study_definition(tmp_path / "s").to_json() == j["definition"]
    marks = [m for rd in j["reads"] for m in rd["marks"]]
    assert len(marks) == 5
    read = next(rd for rd in j["reads"] if rd["marks"])
    f = Finding.from_json(read["marks"][0]["finding"])
    assert f.observer == "R1" and f.score_kind == "rating" and f.center_lps == tuple(read["marks"][0]["world_lps"])
    assert read["image_path_abs"].endswith(read["image_path"]) and f.source == read["image_path_abs"]
    assert {t["case_id"]: t["normal"] for t in j["truth"]} == {"case00": False, "case01": True, "case02": False,
                                                             "case03": True}
    store.close()


def test_cli_create_simulate_analyze_export(tmp_path, capsys):
    # explicit inputs: a CSV manifest of 2D images (PNG) and volumes, lesions in LPS mm
    from PIL import Image

    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    rows = ["case_id,condition,image,x,y,z,diameter_mm"]
    for c in range(6):
        for cond, tag in (("standard U-Net 4x", "s"), ("robust U-Net 4x", "r")):
            Image.fromarray((rng.random((24, 24)) * 255).astype(np.uint8)).save(src / f"c{c}{tag}.png")
            lesion = "10,8,0,3" if c % 2 == 0 else ",,,"
            rows.append(f"k{c},{cond},c{c}{tag}.png,{lesion}")
    (src / "cases.csv").write_text("\n".join(rows) + "\n")
    study = tmp_path / "study"
    assert cli.main(["study", "create", "--cases", str(src / "cases.csv"), "--out", str(study), "--reader", "R1",
                     "--radius", "4"]) == 0
    d = load_study_definition(study)
    assert len(d.cases) == 6 and d.conditions == ["standard U-Net 4x", "robust U-Net 4x"]
    assert d.cases[0].truth.lesions[0].center_lps == (10.0, 8.0, 0.0) and d.cases[1].truth.normal
    assert all(len(ref.path) == len("images/") + 12 + 4 for c in d.cases for ref in c.images.values())
    assert cli.main(["study", "create", "--cases", str(src / "cases.csv"), "--out", str(study)]) == 2  # no overwrite
    assert cli.main(["study", "simulate", str(study), "--readers", "3", "--seed", "2",
                     "--sensitivity", "standard U-Net 4x=0.3", "--sensitivity", "robust U-Net 4x=0.95",
                     "--false-marks-per-case", "0.2"]) == 0
    capsys.readouterr()
    out = tmp_path / "analysis"
    assert cli.main(["study", "analyze", str(study), "--out", str(out), "--bootstrap", "300"]) == 0
    text = capsys.readouterr().out
    assert "Paired comparison" in text and "Kendall's W" in text
    a = json.loads((out / "analysis.json").read_text())
    comp = a["comparison"]["wafroc"]
    assert comp["b"] > comp["a"] and comp["ci95"][0] <= comp["difference"] <= comp["ci95"][1]
    assert a["per_condition"]["robust U-Net 4x"]["llf"] > a["per_condition"]["standard U-Net 4x"]["llf"]
    for png in ("froc.png", "wafroc.png", "roc.png", "fom.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli.main(["study", "export", str(study), "--format", "jafroc", "--out", str(tmp_path / "x.xls")]) == 2
    assert cli.main(["study", "export", str(study), "--format", "csv", "--out", str(tmp_path / "all.csv")]) == 0
    n_case_rows = sum(r["record"] == "case" for r in csv.DictReader((tmp_path / "all.csv").open()))
    assert n_case_rows == 3 * 12  # R1 has not read yet
    assert cli.main(["study", "status", str(study)]) == 0
    status = capsys.readouterr().out
    assert "integrity: ok" in status and "sim-03" in status and "not started" in status


def test_create_from_insertions(tmp_path):
    vol = Volume.from_array(np.zeros((8, 16, 16), np.int16), spacing=(2.0, 2.0, 3.0), origin=(-10, -10, 0),
                            modality="CT", name="patient 123 with nodule")
    write_volume(vol, tmp_path / "with.mhd")
    write_volume(vol, tmp_path / "without.nii.gz")
    nodule = Finding((4.0, 2.0, 9.0), kind="synthetic-nodule", diameter_mm=6.0, observer="insert_nodule")
    items = [{"volume": "with.mhd", "findings": [nodule.to_json()]}, {"volume": "without.nii.gz", "findings": []}]
    (tmp_path / "ins.json").write_text(json.dumps(items))
    from reviewer.studies.create import StudySettings, create_from_insertions

    d = create_from_insertions(tmp_path / "ins.json", tmp_path / "study", StudySettings(name="ins", readers=["R1"]))
    assert d.conditions == ["CT"] and [c.truth.normal for c in d.cases] == [False, True]
    les = d.cases[0].truth.lesions[0]
    assert les.center_lps == (4.0, 2.0, 9.0) and les.diameter_mm == 6.0 and les.kind == "synthetic-nodule"
    # images are re-written as NIfTI with opaque names, geometry kept, names dropped
    from reviewer.io.loader import load_volume

    img = load_volume(tmp_path / "study" / d.cases[0].images["CT"].path)
    assert img.spacing == pytest.approx((2.0, 2.0, 3.0)) and img.origin == pytest.approx((-10, -10, 0))
    assert not list((tmp_path / "study" / "images").glob("*.json"))
    # the writer for insert_nodule-style outputs: one case under two conditions, and a normal case
    from reviewer.studies.create import write_insertions

    j = write_insertions([(vol, nodule, "p1", "raw"), (vol, [nodule], "p1", "denoised"), (vol, [], "p2", "raw")],
                         tmp_path / "written")
    d2 = create_from_insertions(j, tmp_path / "study2", StudySettings(name="two"))
    assert d2.conditions == ["raw", "denoised"] and [c.id for c in d2.cases] == ["p1", "p2"]
    assert set(d2.cases[0].images) == {"raw", "denoised"} and d2.cases[1].truth.normal
    assert d2.compared_conditions() == ("raw", "denoised")
    bad = [{"volume": "with.mhd", "findings": [{"center_lps": [1, 2, 3]}]}]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(InputError, match=r"bad.json: \[0\].findings\[0\].diameter_mm"):
        create_from_insertions(tmp_path / "bad.json", tmp_path / "s2", StudySettings())


def test_power_by_simulated_replicates(tmp_path):
    from reviewer.studies.simulate import SimSettings, estimate_power

    d = tiny_study(tmp_path, n_cases=6)
    cond_a, cond_b = d.conditions
    strong = SimSettings(sensitivity={cond_a: 0.05, cond_b: 1.0}, false_marks_per_case=0.1)
    r = estimate_power(d, tmp_path, n_readers=2, n_trials=2, seed=0, settings=strong, n_bootstrap=200)
    assert r["power"] == 1.0 and len(r["p_values"]) == 2 and r["mean_difference"] > 0.3
    null = SimSettings(sensitivity=0.6, false_marks_per_case=0.3)
    r0 = estimate_power(d, tmp_path, n_readers=2, n_trials=1, seed=0, settings=null, n_bootstrap=200)
    assert abs(r0["mean_difference"]) < r["mean_difference"]
    assert not (tmp_path / "study.db").exists()  # replicates never touch the study's own store


def test_roc_study_analysis_and_jafroc_by_hand(tmp_path):
    d = tiny_study(tmp_path, n_cases=4, readers=("R1",), paradigm="roc", scale="0-100")
    ratings = {"case00": 80, "case01": 30, "case02": 30, "case03": 10}  # case00/02 abnormal, case01/03 normal
    with open_store(tmp_path) as store:
        s = store.start_session("R1")
        order = store.reading_order("R1")
        while (v := s.current()) is not None:
            slot = order[v.index]
            s.set_case_rating(ratings[slot.case_id] if slot.condition == d.conditions[0] else 50)
            s.submit_case()
        a = analyze_study(store.definition, store.results(), n_bootstrap=100)
        # normals (30, 10) vs abnormals (80, 30): 1 + .5 + 1 + 1 = 3.5 / 4; all-50 condition: ties -> 0.5
        assert a["per_reader"][d.conditions[0]]["R1"]["roc_auc"] == pytest.approx(0.875)
        assert a["per_reader"][d.conditions[1]]["R1"]["roc_auc"] == pytest.approx(0.5)
        assert a["per_reader"][d.conditions[0]]["R1"]["wafroc"] is None and "wafroc" not in a["comparison"]
        files = export_study_file(store, "jafroc", tmp_path / "roc.xlsx")
    wb = load_workbook(files[0])
    fp = sorted(tuple(c.value for c in r) for r in list(wb["FP"].iter_rows())[1:])
    tp = sorted(tuple(c.value for c in r) for r in list(wb["TP"].iter_rows())[1:])
    assert fp == [("R1", 1, 2, 30), ("R1", 1, 4, 10), ("R1", 2, 2, 50), ("R1", 2, 4, 50)]
    assert tp == [("R1", 1, 1, 1, 80), ("R1", 1, 3, 1, 30), ("R1", 2, 1, 1, 50), ("R1", 2, 3, 1, 50)]
