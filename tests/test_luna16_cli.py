"""``reviewer froc`` and ``reviewer demo --export-luna16`` end to end."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from reviewer import cli
from reviewer.luna16.io import Annotation, SubmissionRow, write_annotations, write_seriesuids, write_submission


@pytest.fixture()
def froc_inputs(tmp_path):
    rng = np.random.default_rng(0)
    uids = [f"1.2.840.{i}" for i in range(8)]
    ann = {u: [Annotation(*rng.uniform(-50, 50, 3), 8.0)] for u in uids[:6]}
    exc = {uids[0]: [Annotation(80, 80, 80, -1)]}
    rows = []
    for u, items in ann.items():
        for a in items:
            if rng.random() < 0.8:
                rows.append(SubmissionRow(u, a.x + 1, a.y, a.z, float(rng.uniform(0.4, 1))))
    for u in uids:
        for _ in range(12):
            rows.append(SubmissionRow(u, *rng.uniform(100, 200, 3), float(rng.uniform(0, 0.7))))
    rows.append(SubmissionRow(uids[0], 81, 80, 80, 0.99))  # on the excluded finding
    write_annotations(tmp_path / "annotations.csv", ann)
    write_annotations(tmp_path / "annotations_excluded.csv", exc)
    write_seriesuids(tmp_path / "seriesuids.csv", uids)
    write_submission(tmp_path / "sub.csv", rows)
    return tmp_path


def test_froc_command_writes_table_json_plot_and_curve(froc_inputs, capsys):
    d = froc_inputs
    out = d / "out"
    rc = cli.main(["froc", "--annotations", str(d / "annotations.csv"), "--excluded", str(d / "annotations_excluded.csv"),
                   "--seriesuids", str(d / "seriesuids.csv"), "--submission", str(d / "sub.csv"), "--out", str(out),
                   "--json", str(d / "r.json"), "--bootstrap", "200"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "CPM" in text and "0.125" in text and "8 scans" in text and "1 on irrelevant findings" in text
    res = json.loads((d / "r.json").read_text())
    assert {"cpm", "sensitivities", "cpm_ci"} <= set(res)
    assert list(res["sensitivities"]) == ["0.125", "0.25", "0.5", "1", "2", "4", "8"]
    assert res["cpm"] == pytest.approx(np.mean(list(res["sensitivities"].values())))
    assert res["cpm_ci"][0] <= res["cpm"] <= res["cpm_ci"][1]
    assert res["counts"]["n_scans"] == 8 and res["bootstrap"]["resamples"] == 200
    png = (out / "froc.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    with open(out / "froc_curve.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["fps_per_scan", "sensitivity", "bootstrap_mean", "ci_lower", "ci_upper"]
    assert len(rows) == 10_001 and float(rows[1][0]) == 0.125 and float(rows[-1][0]) == 8.0
    with open(out / "froc_marks.csv") as f:
        statuses = {r["status"] for r in csv.DictReader(f)}
    assert {"TP", "FP", "irrelevant"} <= statuses
    assert json.loads((out / "froc.json").read_text())["cpm"] == res["cpm"]


def test_froc_command_defaults_and_errors(froc_inputs, capsys):
    d = froc_inputs
    # seriesuids.csv beside the annotations is used by default; forgetting --excluded is pointed out
    rc = cli.main(["froc", "--annotations", str(d / "annotations.csv"), "--submission", str(d / "sub.csv"),
                   "--bootstrap", "0", "--json", str(d / "r.json")])
    assert rc == 0
    err = capsys.readouterr().err
    assert "annotations_excluded.csv exists but --excluded was not given" in err
    res = json.loads((d / "r.json").read_text())
    assert res["counts"]["n_scans"] == 8 and res["cpm_ci"] is None
    (d / "bad.csv").write_text("seriesuid,coordX,coordY,coordZ,probability\n1.2,0,0\n")
    rc = cli.main(["froc", "--annotations", str(d / "annotations.csv"), "--submission", str(d / "bad.csv")])
    assert rc == 2
    assert "bad.csv: line 2" in capsys.readouterr().err


def test_demo_export_luna16_and_default_demo(tmp_path, monkeypatch, capsys):
    from reviewer.demo import chest_ct

    monkeypatch.setattr(chest_ct, "DEFAULT_SHAPE", (40, 64, 64))  # same field of view, coarse voxels: fast
    monkeypatch.setattr(chest_ct, "DEFAULT_SPACING", (5.6, 5.6, 8.0))
    out = tmp_path / "luna"
    assert cli.main(["demo", "--export-luna16", str(out), "--split", "val", "--n", "1"]) == 0
    assert "1 scans in subset0" in capsys.readouterr().out
    assert len(list((out / "subset0").glob("*.mhd"))) == 1
    assert (out / "annotations.csv").is_file() and (out / "annotations_excluded.csv").is_file()
    # a submission of the true centres scores CPM 1 on the exported data
    from reviewer.luna16.io import read_annotations

    ann = read_annotations(out / "annotations.csv")
    write_submission(out / "perfect.csv", [(u, a.x, a.y, a.z, 0.9) for u, items in ann.items() for a in items])
    assert cli.main(["froc", "--annotations", str(out), "--submission", str(out / "perfect.csv"), "--bootstrap", "10",
                     "--json", str(tmp_path / "p.json")]) == 0
    assert json.loads((tmp_path / "p.json").read_text())["cpm"] == 1.0
    # without --export-luna16 the demo command keeps its default behaviour
    called = {}
    monkeypatch.setattr(cli, "_cmd_demo", lambda args: called.setdefault("args", args) and 0)
    assert cli.main(["demo", "--no-gui"]) == 0 and called["args"].no_gui
