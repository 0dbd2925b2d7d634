"""File > Export case…: the dialog's choices and the export job on what the viewer shows."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QDialog  # noqa: E402

from reviewer.export.from_view import case_from_state  # noqa: E402
from reviewer.geometry import Volume  # noqa: E402
from reviewer.gui.app import create_main_window  # noqa: E402
from reviewer.gui.export_dialog import ExportDialog, ExportOptions, export_current_case  # noqa: E402
from reviewer.view.overlays import HeatMapOverlay, LabelMapOverlay, PointsOverlay, SpheresOverlay  # noqa: E402


def _state_volume() -> Volume:
    arr = np.full((6, 24, 20), -900, dtype=np.int16)
    arr[2:4, 8:14, 6:12] = 50
    return Volume.from_array(arr, spacing=(0.8, 0.8, 2.0), origin=(-8.0, -10.0, 5.0), modality="CT", unit="HU",
                             name="chest")


@pytest.fixture
def window(qtbot):
    w = create_main_window()
    qtbot.addWidget(w)
    yield w
    w.close()
    assert w.runner.wait(30_000)


def _populate(state, vol):
    state.set_primary(vol, "chest")
    c = vol.geometry.voxel_to_world((9.0, 11.0, 2.0))
    state.add_overlay(SpheresOverlay([c], [3.0], labels=["GT 6 mm"], name="ground truth nodules"))
    state.add_overlay(PointsOverlay([c + 1.0], labels=["r1"], name="reader marks"))
    labels = np.zeros(vol.shape, np.uint8)
    labels[2:4, 8:14, 6:12] = 1
    state.add_overlay(LabelMapOverlay(Volume(labels, vol.geometry), name="nodule mask"))
    heat = np.zeros(vol.shape, np.float32)
    heat[1:5, 4:20, 2:18] = 0.7
    state.add_overlay(HeatMapOverlay(Volume(heat, vol.geometry), name="probability", range=(0.0, 1.0)))
    edited = vol.array.copy()
    edited[4, 2:5, 2:5] = 80
    state.add_pane("FNAF inserted", Volume(edited, vol.geometry, modality="CT", unit="HU"))
    return c


def test_case_from_state_reads_findings_masks_and_derived_panes(window):
    vol = _state_volume()
    c = _populate(window.state, vol)
    case = case_from_state(window.state)
    kinds = {(f.kind, f.observer_type) for f in case.findings}
    assert kinds == {("nodule", "device"), ("finding", "person")}
    sphere = next(f for f in case.findings if f.diameter_mm)
    np.testing.assert_allclose(sphere.center_lps, c)
    assert sphere.diameter_mm == 6.0
    assert [m.kind for m in case.masks] == ["labels", "heatmap"]
    assert [d.kind for d in case.derived] == ["fnaf"]


def test_export_dialog_options(qtbot):
    dlg = ExportDialog(out_dir="")
    qtbot.addWidget(dlg)
    assert dlg.options() is None and "folder" in dlg.problem.text()
    dlg.out_edit.setText("/tmp/x")
    dlg.format_boxes["png"].setChecked(False)
    dlg.shift.setChecked(True)
    dlg.shift_days.setValue(-30)
    assert dlg.options() == ExportOptions("/tmp/x", ("dicom", "nifti"), False, -30)
    dlg.keep_phi.setChecked(True)  # keeping identity turns the date shift off
    assert not dlg.shift.isEnabled() and dlg.options().shift_days is None and dlg.options().keep_phi


def test_export_action_runs_a_job_and_writes_the_case(window, qtbot, tmp_path, monkeypatch):
    vol = _state_volume()
    _populate(window.state, vol)
    assert window.act_export_case.text().startswith("&Export case")
    options = ExportOptions(str(tmp_path / "out"), ("dicom", "nifti", "png"), False, None)
    monkeypatch.setattr(ExportDialog, "exec", lambda self: QDialog.DialogCode.Accepted)
    monkeypatch.setattr(ExportDialog, "options", lambda self: options)
    window.act_export_case.trigger()  # the menu action: dialog (accepted) then a job
    job = window.runner.job("export") if hasattr(window.runner, "job") else None
    qtbot.waitUntil(lambda: (tmp_path / "out" / "manifest.json").is_file(), timeout=60_000)
    qtbot.waitUntil(lambda: not window.runner.active_jobs(), timeout=10_000)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    kinds = {f["kind"] for f in manifest["files"]}
    assert {"dicom-sr", "dicom-seg", "dicom-derived-image", "nifti", "png"} <= kinds
    assert manifest["identity"]["kept"] is False
    assert job is None or job.state == "done"
    assert any("Exported" in n.message for n in window.notifier.notices)


def test_export_with_kept_identity_is_recorded(window, qtbot, tmp_path):
    window.state.set_primary(_state_volume(), "chest")
    job = export_current_case(window, ExportOptions(str(tmp_path / "kept"), ("nifti",), True, None))
    qtbot.waitUntil(lambda: job.state != "running", timeout=30_000)
    assert job.state == "done"
    manifest = json.loads((tmp_path / "kept" / "manifest.json").read_text())
    assert manifest["identity"]["kept"] is True


def test_detection_lab_overlays_become_model_findings():
    from reviewer.view.state import ViewerState

    vol = _state_volume()
    state = ViewerState(vol)
    c = vol.geometry.voxel_to_world((9.0, 11.0, 2.0))
    state.add_overlay(SpheresOverlay([c], [3.0], labels=["0.83"], name="detections: demo-fpr-robust"))
    state.add_overlay(PointsOverlay([c], labels=[""], name="selected candidate"))  # navigation, not a finding
    (f,) = case_from_state(state).findings
    assert (f.observer, f.observer_type, f.kind, f.score, f.score_kind) == \
        ("demo-fpr-robust", "device", "nodule", 0.83, "probability")
