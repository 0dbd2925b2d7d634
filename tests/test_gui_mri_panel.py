"""pytest-qt: the MRI reconstruction & FNAF panel through real widgets and clicks (offscreen)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QPointF, Qt  # noqa: E402

from reviewer.models.cards import read_card  # noqa: E402
from tests.test_gui_viewer import _click  # noqa: E402
from tests.test_mri_recon_cli import _write_card  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.fixture
def lab_window(qtbot, tmp_path):
    import torch

    from reviewer.demo.mri import make_fastmri_file
    from reviewer.gui.main_window import MainWindow
    from reviewer.mri.unet import Unet

    path = make_fastmri_file(tmp_path / "file_gui.h5", seed=1, n_slices=2)
    cards = []
    for i, name in enumerate(("tiny-standard", "tiny-robust")):
        torch.manual_seed(i)
        cards.append(read_card(_write_card(tmp_path, Unet(1, 1, chans=4, num_pool_layers=2), name=name)))
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1500, 950)
    w.show()
    qtbot.waitExposed(w)
    w.open_paths([path])
    qtbot.waitUntil(lambda: w.mri_dock is not None and w.mri_dock.lab is not None, timeout=30000)
    panel = w.mri_dock
    panel.set_cards(cards)
    yield w, panel
    w.close()


def _screen_point(view, state, world) -> QPointF:
    fr = state.frame(view.orientation, view.pane_name)
    x, y, _ = fr.world_to_display(world)
    sx, sy = fr.pixel_size
    scene = view.vb.mapViewToScene(QPointF(x * sx, y * sy))
    return view.mapFromScene(scene).toPointF()


def test_reconstruct_place_and_search(lab_window, qtbot):
    w, panel = lab_window
    state = w.state
    assert panel.isVisible() and panel.windowTitle().replace("&&", "&") == "MRI reconstruction & FNAF"
    assert "acquired k-space" in panel.source_label.text() and not panel.simulated_label.isVisible()
    assert panel.checked_models() == ["tiny-standard", "tiny-robust"]
    panel.acc_combo.setCurrentText("8")
    assert panel.cf_spin.value() == pytest.approx(0.04)
    panel.acc_combo.setCurrentText("4")
    assert panel.cf_spin.value() == pytest.approx(0.08)

    qtbot.mouseClick(panel.recon_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.result is not None, timeout=60000)
    assert state.layout == "compare"
    assert state.pane_names == ("ground truth", "zero-filled", "tiny-standard", "tiny-robust")
    qtbot.waitUntil(lambda: len(w.viewer.views) == 4)
    for v in w.viewer.views:
        if v.pane_name != "ground truth":
            assert "SSIM" in v.caption.text() and "PSNR" in v.caption.text()
    assert panel.metrics_table.rowCount() == 3

    # difference maps: model panes show |output - ground truth| x gain
    gt = panel.result.ground_truth
    panel.diff_check.setChecked(True)
    arr = state.pane("tiny-robust").volume.array
    np.testing.assert_allclose(arr, np.abs(panel.result.outputs["tiny-robust"] - gt) * panel._gain, rtol=1e-5)
    assert "DIFFERENCE" in state.caption("tiny-robust")
    panel.diff_check.setChecked(False)
    np.testing.assert_allclose(state.pane("tiny-robust").volume.array, panel.result.outputs["tiny-robust"])

    # place a feature by a real click on the ground-truth pane
    panel.shape_combo.setCurrentIndex(1)  # disk
    panel.size_spin.setValue(2.0)
    panel.place_button.setChecked(True)
    k = panel._current_slice()  # array slice of the lab's grid (the display may count the other way)
    geom = panel.result.geometry
    world = geom.voxel_to_world((150, 160, k))
    qtbot.waitUntil(lambda: len(w.viewer.views) == 4)
    gt_view = w.viewer.view("ground truth")
    _click(gt_view, _screen_point(gt_view, state, world))
    qtbot.waitUntil(lambda: panel.feature is not None, timeout=30000)
    fr = panel.feature
    assert fr.slice_index == k and abs(fr.center[0] - 160) <= 1 and abs(fr.center[1] - 150) <= 1
    assert state.pane("ground truth").volume.array[k, fr.center[0], fr.center[1]] > gt[k, fr.center[0], fr.center[1]]
    qtbot.waitUntil(lambda: len(w.viewer.views) == 4)
    for v in w.viewer.views:
        text = v.caption.text()
        assert "IP" in text, (v.pane_name, text)
        if v.pane_name.startswith("tiny"):
            assert "attack loss" in text and ("HIT" in text or "MISS" in text)
        assert v.overlay_items("FNAF loss region")._items()  # the loss-region box is drawn in every pane
    assert panel.fnaf_table.rowCount() == 2

    # search in this slice, step through the results
    panel.tries_spin.setValue(6)
    qtbot.mouseClick(panel.search_slice_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(panel.search_results) > 0, timeout=60000)
    losses = [r.loss for r in panel.search_results]
    assert losses == sorted(losses, reverse=True)
    assert panel.feature is panel.search_results[0]
    if len(panel.search_results) > 1:
        qtbot.mouseClick(panel.next_button, Qt.MouseButton.LeftButton)
        assert panel.feature is panel.search_results[1]
        assert panel.results_list.currentRow() == 1
        qtbot.mouseClick(panel.prev_button, Qt.MouseButton.LeftButton)
        assert panel.feature is panel.search_results[0]
    assert "attack loss" in state.caption("tiny-robust")
