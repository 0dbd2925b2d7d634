"""The radiologist's first minutes with the demo, through real Qt events: open, scroll, window/level, presets,
click a nodule, add a linked comparison pane."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QPointF, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

from reviewer.geometry import Volume  # noqa: E402
from reviewer.gui.app import create_main_window  # noqa: E402

from tests.test_gui_viewer import _click, _drag, _wheel  # noqa: E402


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from reviewer.demo import generate_demo

    return generate_demo(tmp_path_factory.mktemp("demo"))


def _screen_point(state, view, world):
    frame = state.frame(view.orientation)
    x, y, _ = frame.world_to_display(world)
    sx, sy = frame.pixel_size
    return view.mapFromScene(view.vb.mapViewToScene(QPointF(x * sx, y * sy))).toPointF()


@pytest.mark.slow
def test_demo_reading_flow(qtbot, demo):
    w = create_main_window()
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    with qtbot.waitSignal(w.demoOpened, timeout=60_000) as opened:
        w.open_demo(demo)
    assert opened.args == [True]
    qtbot.waitUntil(lambda: not w.runner.active_jobs(), timeout=30_000)
    state, viewer = w.state, w.viewer
    vol = state.pane().volume
    assert state.layout == "mpr" and vol.modality == "CT" and vol.unit == "HU"
    assert state.window == (1500.0, -600.0)  # lung window on open
    assert "ground truth nodules" in [o.name for o in state.overlays]

    axial = viewer.view(orientation="axial")
    # scroll: the wheel moves one slice per notch, both ways
    k0 = state.slice_index("axial")
    _wheel(axial, 120)
    _wheel(axial, 120)
    assert state.slice_index("axial") == k0 + 2
    _wheel(axial, -120)
    assert state.slice_index("axial") == k0 + 1

    # presets on keys 1-5, window/level by left-drag
    axial.setFocus()
    QTest.keyClick(axial, Qt.Key.Key_2)
    assert state.window == (350.0, 50.0)
    QTest.keyClick(axial, Qt.Key.Key_4)
    assert state.window == (2500.0, 480.0)
    before = state.window
    c = QPointF(axial.viewport().width() / 2, axial.viewport().height() / 2)
    _drag(axial, Qt.MouseButton.LeftButton, c, c + QPointF(60, 0))
    assert state.window[0] > before[0] and state.window[1] == pytest.approx(before[1], abs=1e-6)
    QTest.keyClick(axial, Qt.Key.Key_1)
    assert state.window == (1500.0, -600.0)

    # click on a ground-truth nodule in the axial pane: the crosshair lands on it, every pane follows
    nodules = json.loads(demo.ct_nodules_json.read_text())["nodules"]
    target = min(nodules, key=lambda n: n["diameter_mm"] if n["diameter_mm"] >= 8 else 99)
    centre = np.asarray(target["center_lps_mm"], dtype=float)
    state.set_slice("axial", state.frame("axial").slice_index_of_world(centre))
    qtbot.wait(20)
    _click(axial, _screen_point(state, axial, centre))
    assert np.linalg.norm(np.asarray(state.crosshair)[:2] - centre[:2]) < 2 * max(vol.spacing)
    for o in ("coronal", "sagittal"):
        assert state.slice_index(o) == state.frame(o).slice_index_of_world(state.crosshair)
    hu = vol.value_at_world(centre)
    assert hu > -700, f"nodule centre should be denser than lung, got {hu}"

    # a second, linked pane: slice and window follow the first
    noisy = Volume(np.clip(vol.array + 50, -1024, 3071).astype(np.int16), vol.geometry, modality="CT", unit="HU",
                   name="difference")
    state.add_pane("shifted", noisy)
    state.set_layout("compare")
    qtbot.wait(20)
    panes = [v for v in viewer.views]
    assert len(panes) == 2
    _wheel(panes[0], 120)
    assert state.slice_index(state.orientation, "shifted") == state.slice_index(state.orientation)
    np.testing.assert_array_equal(panes[1].image.raw.astype(int) - panes[0].image.raw.astype(int),
                                  np.clip(panes[0].image.raw.astype(int) + 50, -1024, 3071) - panes[0].image.raw)
    w.close()
