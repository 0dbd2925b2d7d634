"""The GUI study builder writes a valid definition through the studies create functions; bad forms are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from reviewer.geometry import Volume  # noqa: E402
from reviewer.gui.reading.builder import StudyBuilderDialog  # noqa: E402
from reviewer.io.writer import write_volume  # noqa: E402
from reviewer.studies.builder import BuilderSpec, FileRow, build_study  # noqa: E402
from reviewer.studies.definition import load_study_definition  # noqa: E402

pytestmark = pytest.mark.gui


def _images(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for n, name in enumerate(("pat1_standard.nii.gz", "pat1_robust.nii.gz", "pat2_standard.nii.gz",
                              "pat2_robust.nii.gz")):
        arr = np.full((6, 24, 24), n * 10, np.int16)
        p = folder / name
        write_volume(Volume.from_array(arr, spacing=(1.0, 1.0, 2.0), modality="CT", unit="HU"), p)
        out.append(p)
    return out


def test_builder_dialog_writes_a_valid_blinded_definition(qtbot, tmp_path):
    imgs = _images(tmp_path / "src")
    dlg = StudyBuilderDialog()
    qtbot.addWidget(dlg)
    # an empty form lists what is missing and builds nothing
    dlg.create()
    text = dlg.problems_label.text()
    assert "folder" in text and "name" in text and "image files" in text
    out = tmp_path / "study"
    dlg.out_edit.setText(str(out))
    dlg.name_edit.setText("builder test")
    dlg.add_files([str(imgs[0]), str(imgs[2])], condition="standard U-Net 4x")
    dlg.add_files([str(imgs[1]), str(imgs[3])], condition="robust U-Net 4x")
    for row, case in enumerate(("p1", "p2", "p1", "p2")):
        dlg.files_table.item(row, 0).setText(case)
    dlg.set_lesion(0, 3.0, 4.0, 5.0, 6.0)
    dlg.readers_edit.setText("R1, R2")
    dlg.paradigm_combo.setCurrentIndex(dlg.paradigm_combo.findData("both"))
    dlg.scale_combo.setCurrentIndex(dlg.scale_combo.findData("0-100"))
    dlg.back_check.setChecked(True)
    dlg.counterbalance_check.setChecked(False)
    dlg.time_spin.setValue(90)
    dlg.seed_spin.setValue(7)
    dlg.instructions_edit.setPlainText("Look for small bright features.")
    with qtbot.waitSignal(dlg.built, timeout=30000):
        dlg.create()
    d = load_study_definition(out / "study.json")
    assert d.name == "builder test" and d.conditions == ["standard U-Net 4x", "robust U-Net 4x"]
    assert [r.id for r in d.readers] == ["R1", "R2"]
    assert d.paradigm == "both" and d.rating_scale == "0-100" and d.navigation.allow_back
    assert d.time_limit_s == 90 and d.randomisation.seed == 7 and not d.randomisation.counterbalance
    assert d.instructions == "Look for small bright features."
    cases = {c.id: c for c in d.cases}
    assert cases["p1"].truth.lesions[0].center_lps == (3.0, 4.0, 5.0)
    assert cases["p1"].truth.lesions[0].diameter_mm == 6.0 and cases["p2"].truth.normal
    # blinded: the written image names reveal neither the condition nor the source file
    for c in d.cases:
        for ref in c.images.values():
            assert "standard" not in ref.path and "robust" not in ref.path and "pat" not in ref.path
            assert (out / ref.path).is_file()
    raw = json.loads((out / "study.json").read_text())
    assert raw["format"] == "reviewer-study"


def test_builder_spec_problems_and_refusal(tmp_path):
    spec = BuilderSpec(out_dir=str(tmp_path / "s"), name="x", source="files",
                       files=[FileRow("c1", "A", str(tmp_path / "missing.nii.gz"))])
    assert any("not found" in p for p in spec.problems())
    spec = BuilderSpec(out_dir=str(tmp_path / "s"), name="x", source="fnaf_eval", source_path=str(tmp_path))
    assert any("fnaf_report.json" in p for p in spec.problems())
    spec = BuilderSpec(out_dir=str(tmp_path / "s"), name="x", source="insertions", source_path="",
                       readers=["R1", "R1"])
    probs = spec.problems()
    assert any("insertions JSON" in p for p in probs) and any("unique" in p for p in probs)
    from reviewer.errors import InputError

    with pytest.raises(InputError):
        build_study(spec)


def test_builder_from_insertions_writes_truth(qtbot, tmp_path):
    from reviewer.findings import Finding

    imgs = _images(tmp_path / "src")
    ins = [{"volume": str(imgs[0]), "case_id": "n1",
            "findings": [Finding(center_lps=(1.0, 2.0, 3.0), kind="synthetic-nodule", diameter_mm=8.0).to_json()]},
           {"volume": str(imgs[2]), "case_id": "n2", "findings": []}]
    jp = tmp_path / "insertions.json"
    jp.write_text(json.dumps(ins))
    dlg = StudyBuilderDialog()
    qtbot.addWidget(dlg)
    dlg.out_edit.setText(str(tmp_path / "ins"))
    dlg.name_edit.setText("insertions")
    dlg.source_combo.setCurrentIndex(dlg.source_combo.findData("insertions"))
    dlg.insertions_edit.setText(str(jp))
    with qtbot.waitSignal(dlg.built, timeout=30000):
        dlg.create()
    d = dlg.definition
    les = {c.id: c.truth.lesions for c in d.cases}
    assert les["n1"][0].center_lps == (1.0, 2.0, 3.0) and les["n1"][0].diameter_mm == 8.0 and les["n2"] == []
    # a failing build (the folder now holds a study) is shown in the dialog, naming the problem
    dlg.create()
    assert "already holds a study" in dlg.problems_label.text()
