"""``reviewer export`` on an image with a findings file, option checks and format selection."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reviewer.cli import main
from reviewer.findings import Finding, findings_to_json
from reviewer.geometry import Volume
from reviewer.io.writer import write_volume


@pytest.fixture
def image(tmp_path):
    arr = np.full((4, 16, 16), -950, np.int16)
    arr[1:3, 5:10, 5:10] = 30
    vol = Volume.from_array(arr, spacing=(0.9, 0.9, 2.5), origin=(5.0, 6.0, 7.0), modality="CT", unit="HU")
    path = tmp_path / "ct.nii.gz"
    write_volume(vol, path)
    findings = [Finding(tuple(vol.geometry.voxel_to_world((7, 7, 1.5))), diameter_mm=5.0, score=0.7,
                        score_kind="probability", observer="demo-fpr")]
    fpath = tmp_path / "findings.json"
    fpath.write_text(json.dumps(findings_to_json(findings)))
    return path, fpath


def test_export_image_with_findings_file_nifti_only(image, tmp_path, capsys):
    path, fpath = image
    out = tmp_path / "out"
    assert main(["export", str(path), "--findings", str(fpath), "--out", str(out), "--format", "nifti"]) == 0
    assert "de-identified" in capsys.readouterr().out
    assert not (out / "dicom").exists() and not (out / "png").exists()
    side = json.loads((out / "nifti" / "image.json").read_text())
    assert len(side["Findings"]["items"]) == 1 and side["Findings"]["items"][0]["score"] == 0.7


def test_export_refuses_bad_options(image, tmp_path, capsys):
    path, fpath = image
    assert main(["export", str(path), "--out", str(tmp_path / "o"), "--format", "dicom,jpeg"]) == 2
    assert "jpeg" in capsys.readouterr().err
    assert main(["export", str(path), "--out", str(tmp_path / "o"), "--keep-phi", "--shift-dates", "5"]) == 2
    assert "--shift-dates" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"findings": []}')
    assert main(["export", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "source" in capsys.readouterr().err


def test_bundle_records_the_model_cards_used(image, tmp_path):
    from reviewer.models.cards import find_card

    path, fpath = image
    bundle = tmp_path / "case.json"
    bundle.write_text(json.dumps({"source": path.name, "findings": fpath.name, "models": ["demo-unet-robust"]}))
    out = tmp_path / "out"
    assert main(["export", str(bundle), "--out", str(out), "--format", "nifti"]) == 0
    cards = {c["name"]: c for c in json.loads((out / "nifti" / "image.json").read_text())["ModelCards"]}
    card = find_card("demo-unet-robust")
    assert cards["demo-unet-robust"]["weights"] == {k: v for k, v in card.weights.items() if k != "file"}
    assert cards["demo-unet-robust"]["weights"]["sha256"] == card.weights["sha256"]
    assert cards["demo-fpr"]["card"].startswith("not found")  # the findings' observer has no card here


def test_refused_export_leaves_nothing_behind_and_reexport_replaces(image, tmp_path, monkeypatch):
    from reviewer.export import exporter
    from reviewer.export.case import CaseExport
    from reviewer.io.loader import load_volume

    path, _ = image
    case = CaseExport(load_volume(path))
    out = tmp_path / "out"
    first = exporter.export_case(case, out, formats=["nifti", "png"])
    assert (out / "png").is_dir()
    again = exporter.export_case(case, out, formats=["nifti"])  # a re-export replaces the previous one
    assert not (out / "png").exists() and again.manifest.is_file() and first.manifest == again.manifest
    monkeypatch.setattr(exporter, "scan_for_values", lambda paths, values: [(list(paths)[0], "x")])
    with pytest.raises(exporter.PhiLeakError):
        exporter.export_case(case, out)
    assert sorted(p.name for p in out.iterdir()) == []
    (tmp_path / "busy" / "dicom").mkdir(parents=True)
    (tmp_path / "busy" / "dicom" / "mine.txt").write_text("not an export")
    from reviewer.errors import InputError

    with pytest.raises(InputError, match="empty output folder"):
        exporter.export_case(case, tmp_path / "busy")
    assert (tmp_path / "busy" / "dicom" / "mine.txt").is_file()


def test_cancelled_export_removes_what_it_wrote(image, tmp_path):
    from reviewer.export.case import CaseExport
    from reviewer.export.exporter import export_case
    from reviewer.io.loader import load_volume
    from reviewer.jobs import Cancelled, JobToken

    path, _ = image
    token = JobToken(min_interval_s=0.0)
    token._on_progress = lambda p: token.cancel() if "NIfTI" in p.message else None
    with pytest.raises(Cancelled):
        export_case(CaseExport(load_volume(path)), tmp_path / "out", token=token)
    assert list((tmp_path / "out").iterdir()) == []  # the DICOM files written before the cancel are gone
