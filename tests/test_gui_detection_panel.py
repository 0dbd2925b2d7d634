"""The nodule detection lab dock through pytest-qt: open a CT with known nodules, run both models (small, randomly
initialised models registered through model cards in tmp_path: the flow is tested here, not the accuracy), the
table, row click -> crosshair, threshold -> table and overlays, insertion -> ground truth, PGD and perturbation."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("reviewer.detection.pipeline")

from reviewer.gui.detection_panel import GT_OVERLAY, overlay_name  # noqa: E402


def _card(out, name, task, cls, args, model, pre, intended):
    from safetensors.torch import save_file

    from reviewer.models.cards import ModelCard
    from reviewer.mri.checkpoints import sha256_file

    w = out / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(w))
    c = ModelCard(name=name, task=task, modality="CT", architecture={"class": cls, "args": args},
                  weights={"file": w.name, "sha256": sha256_file(w)}, preprocessing=pre, intended=intended)
    c.save(out / f"{name}.json")
    return c


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A tiny candidate generator and two tiny Beta-head FPR models (random weights), as model cards."""
    from reviewer.detection.cg import ResUNet3d
    from reviewer.detection.fpr import FprNet
    from reviewer.models.cards import read_card

    out = tmp_path_factory.mktemp("cards")
    torch.manual_seed(0)
    cg = ResUNet3d(channels=(4, 8))
    with torch.no_grad():
        cg.head.bias[0] = 0.0  # heat ~ 0.5: an untrained generator still proposes candidates
    cgc = _card(out, "tiny-cg", "nodule-candidate-generation", "detection.ResUNet3d", {"channels": [4, 8]}, cg,
                {"spacing_mm": 5.0, "hu_window": [-1000, 400], "window_inference": 64, "overlap": 0.25},
                {"modality": ["CT"], "slice_thickness_mm": [0.5, 3.0]})
    fprs = []
    for i, name in enumerate(("tiny-fpr-standard", "tiny-fpr-robust")):
        torch.manual_seed(10 + i)
        fprs.append(_card(out, name, "nodule-false-positive-reduction", "detection.FprNet",
                          {"head": "beta", "channels": [4, 8], "stem": 4}, FprNet(head="beta", channels=(4, 8), stem=4),
                          {"patch_size": 16, "spacing_mm": 2.5, "hu_window": [-1000, 400]}, {"modality": ["CT"]}))
    return read_card(cgc.path), [read_card(f.path) for f in fprs]


@pytest.fixture(scope="module")
def small_ct(tmp_path_factory):
    """A small chest phantom as .mhd with a nodules.json beside it (as the demo CT), flipped x and y."""
    from reviewer.demo import write_nodules
    from reviewer.demo.chest_ct import make_chest_ct
    from reviewer.io.writer import write_volume

    out = tmp_path_factory.mktemp("ct")
    vol, nodules = make_chest_ct(5, shape=(40, 80, 80), spacing=(4.2, 4.2, 6.0), nodules=3,
                                 direction=np.diag([-1.0, -1.0, 1.0]))
    uid = "1.2.826.0.1.3680043.8.498.777"
    write_volume(vol, out / f"{uid}.mhd")
    write_nodules(nodules, uid, out / "annotations.csv", out / "nodules.json")
    return out / f"{uid}.mhd", nodules, vol


def test_detection_lab_flow(qtbot, tiny_models, small_ct):
    from reviewer.demo.chest_ct import lung_mask
    from reviewer.gui.main_window import MainWindow

    cg, fprs = tiny_models
    path, nodules, vol = small_ct
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    w.open_paths([path])
    qtbot.waitUntil(lambda: w.state.primary is not None, timeout=30000)
    w.act_detection_lab.trigger()
    panel = w.detection_dock
    assert panel is not None and panel.lab is not None
    assert len(panel.lab.ground_truth()) == len(nodules) == 3
    panel.set_cards([cg], fprs)
    panel.device = torch.device("cpu")
    panel.detector_kw = {"max_candidates": 12}
    assert panel.std_combo.currentText() == "tiny-fpr-standard"
    assert panel.rob_combo.currentText() == "tiny-fpr-robust"
    # the cards' domain check shows before anything runs: 6 mm slices are outside the generator's range
    assert panel.warning_label.isVisibleTo(panel) and "slice thickness 6.00 mm" in panel.warning_label.text()

    # run both: one job, the candidate generator once, a row per candidate with both probabilities
    job = panel.run("both")
    assert panel.progress.isVisible() and not panel.run_both_button.isEnabled()
    qtbot.waitUntil(lambda: panel.result is not None, timeout=120000)
    assert job.state == "done"
    res = panel.result
    assert set(res.runs) == {"tiny-fpr-standard", "tiny-fpr-robust"} and res.candidates_reused
    assert panel.lab._shared.runs == 1
    # 6 mm slices are outside the generator's card range: a visible warning
    assert panel.warning_label.isVisible() and "slice thickness 6.00 mm" in panel.warning_label.text()
    first_rows = [(r.center_lps, dict(r.probability)) for r in res.rows]
    # re-running one model on the same volume reuses the candidates and keeps the other model's column
    panel.run("robust")
    qtbot.waitUntil(lambda: panel.result is not res and panel.job is None, timeout=60000)
    res = panel.result
    assert panel.lab._shared.runs == 1 and set(res.runs) == {"tiny-fpr-standard", "tiny-fpr-robust"}
    assert [(r.center_lps, r.probability) for r in res.rows] == first_rows
    s = w.state
    assert s.layout == "compare" and list(s.pane_names) == ["tiny-fpr-standard", "tiny-fpr-robust"]
    qtbot.waitUntil(lambda: len(w.viewer.views) == 2)

    panel.set_threshold(0.0)
    n_all = len(res.rows)
    assert n_all > 0 and panel.table.rowCount() == n_all
    for r in range(n_all):
        assert panel.table.item(r, 1).text() != "" and panel.table.item(r, 7).text().count(",") == 2
    row = res.rows[0]
    assert row.probability["tiny-fpr-standard"] is not None and row.probability["tiny-fpr-robust"] is not None
    std_ov = s.overlay(overlay_name("tiny-fpr-standard"))
    assert len(std_ov.centers) == n_all and std_ov.panes == ("tiny-fpr-standard",)
    assert len(s.overlay(GT_OVERLAY).centers) == 3
    # each pane draws its own model's circles only; the ground truth on both
    s.set_crosshair(row.center_lps)
    std_pane, rob_pane = w.viewer.view("tiny-fpr-standard"), w.viewer.view("tiny-fpr-robust")

    def drawn(view, name):
        it = view.overlay_items(name)
        return it.path is not None and it.path.isVisible()

    assert drawn(std_pane, overlay_name("tiny-fpr-standard")) and not drawn(std_pane, overlay_name("tiny-fpr-robust"))
    assert drawn(rob_pane, overlay_name("tiny-fpr-robust")) and not drawn(rob_pane, overlay_name("tiny-fpr-standard"))

    # sorting by the robust probability, then clicking a row moves the linked crosshair to that candidate
    from PySide6.QtCore import Qt

    panel.table.sortItems(2, Qt.SortOrder.AscendingOrder)
    target_idx = panel.table.item(0, 0).data(Qt.ItemDataRole.UserRole)
    robust = [r.score("tiny-fpr-robust") for r in panel._rows]
    assert robust[target_idx] == min(robust)
    panel.zoom_check.setChecked(True)
    panel.table.selectRow(0)
    assert np.allclose(s.crosshair, panel._rows[target_idx].center_lps)
    assert s.view("axial").zoom == 4.0
    panel.zoom_check.setChecked(False)
    panel.table.sortItems(3, Qt.SortOrder.DescendingOrder)  # by the score difference
    top = panel.table.item(0, 0).data(Qt.ItemDataRole.UserRole)
    diffs = [r.difference("tiny-fpr-standard", "tiny-fpr-robust") for r in panel._rows]
    assert diffs[top] == max(diffs)
    assert panel.table.item(0, 3).text() == f"{max(diffs):+.3f}"

    # the threshold hides rows and circles (robust pane keeps only its own >= t)
    probs = sorted(r.max_score() for r in res.rows)
    t = (probs[len(probs) // 2] + probs[len(probs) // 2 - 1]) / 2 if len(probs) > 1 else probs[0]
    panel.threshold_slider.setValue(int(np.ceil(t * 100)))
    t = panel.threshold
    assert panel.table.rowCount() == sum(1 for r in res.rows if r.max_score() >= t) < n_all
    rob = s.overlay(overlay_name("tiny-fpr-robust"))
    assert len(rob.centers) == sum(1 for r in res.rows if r.score("tiny-fpr-robust") >= t)
    panel.threshold_slider.setValue(100)
    if max(probs) < 1.0:
        assert panel.table.rowCount() == 0 and len(s.overlay(overlay_name("tiny-fpr-standard")).centers) == 0
    assert panel.truth_table.rowCount() == 3 and panel.truth_table.item(0, 2).text() in ("HIT", "MISS")

    # insert a synthetic nodule at a lung point away from the nodules: a derived volume with ground truth
    lung = np.argwhere(lung_mask(vol))
    g = vol.geometry
    world = g.voxel_to_world(lung[:, ::-1].astype(float))
    far = np.min([np.linalg.norm(world - np.asarray(n.center), axis=1) for n in nodules], axis=0)
    point = world[np.argmax(far)]
    s.set_crosshair(point)
    panel.diameter_spin.setValue(12.0)
    panel.composition_combo.setCurrentText("part-solid")
    panel.insert_at_crosshair()
    qtbot.waitUntil(lambda: len(panel.lab.ground_truth()) == 4, timeout=60000)
    qtbot.waitUntil(lambda: panel.job is None, timeout=60000)
    gt = panel.lab.ground_truth()
    assert np.allclose(gt[-1].center_lps, point) and gt[-1].diameter_mm == pytest.approx(12.0)
    assert len(s.overlay(GT_OVERLAY).centers) == 4
    assert s.pane("tiny-fpr-standard").volume is panel.lab.volume is s.pane("tiny-fpr-robust").volume
    assert panel.derived_label.isVisible() and panel.revert_button.isEnabled()
    # both models ran again on the new volume (the option is on by default): the table has a hit/miss for it
    assert panel.result is not None and panel.result.volume is panel.lab.volume
    assert set(panel.result.runs) == {"tiny-fpr-standard", "tiny-fpr-robust"}
    assert panel.truth_table.rowCount() == 4
    assert panel.truth_table.item(3, 0).text().startswith("4. synthetic part-solid")
    assert panel.truth_table.item(3, 3).text() in ("HIT", "MISS")
    panel.rerun_check.setChecked(False)

    # "find a nodule it misses here": PGD reports the response before and after
    s.set_crosshair(point)
    panel.against_combo.setCurrentText("tiny-fpr-robust")
    panel.find_missed_here()
    qtbot.waitUntil(lambda: panel.hard is not None and panel.job is None, timeout=60000)
    assert panel.hard.model == "tiny-fpr-robust"
    assert panel.hard.after <= panel.hard.before + 1e-6
    assert "→" in panel.hard_label.text()

    # a perturbation of the current view (no re-run here: the flow, not the models, is under test)
    panel.apply_perturbation("poisson-5", rerun=False)
    qtbot.waitUntil(lambda: panel.lab.perturbation is not None and panel.job is None, timeout=60000)
    assert s.pane("tiny-fpr-standard").volume is panel.lab.perturbation.volume
    assert "PERTURBED: Poisson noise x5" in s.caption("tiny-fpr-standard")
    panel.revert()
    assert panel.lab.volume is panel.lab.original and len(panel.lab.ground_truth()) == 3

    # Cancel stops a run; the dock is usable again and nothing half-done is shown
    job = panel.run("both")
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: not job.active, timeout=60000)
    assert job.state == "cancelled" and panel.job is None and panel.result is None
    assert not panel.progress.isVisible() and panel.run_both_button.isEnabled()
    w.close()
