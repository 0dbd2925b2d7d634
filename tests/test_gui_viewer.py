"""pytest-qt tests of the viewer widgets (offscreen)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent, QWheelEvent  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from reviewer.geometry import Volume  # noqa: E402
from reviewer.gui.viewer import ViewerWidget  # noqa: E402
from reviewer.view.overlays import LabelMapOverlay, PointsOverlay, SpheresOverlay  # noqa: E402
from reviewer.view.state import ViewerState  # noqa: E402

pytestmark = pytest.mark.gui

SPHERE_IJK = (40, 20, 25)


def _volume() -> Volume:
    k, j, i = np.mgrid[0:40, 0:64, 0:64]
    r2 = (i - SPHERE_IJK[0]) ** 2 + (j - SPHERE_IJK[1]) ** 2 + ((k - SPHERE_IJK[2]) * 2.5) ** 2
    arr = np.where(r2 < 64, 100, -800).astype(np.int16)
    arr[:, 52:, :] = 300
    return Volume.from_array(arr, spacing=(0.8, 0.8, 2.0), origin=(5.0, -3.0, 40.0),
                             direction=np.diag([-1.0, 1.0, -1.0]), modality="CT", unit="HU", name="ct")


@pytest.fixture
def viewer(qtbot):
    vol = _volume()
    state = ViewerState(vol, "ct")
    w = ViewerWidget(state)
    qtbot.addWidget(w)
    w.resize(900, 400)
    w.show()
    qtbot.waitExposed(w)
    yield state, w
    w.close()


def _wheel(view, delta: int) -> None:
    vp = view.viewport()
    pos = QPointF(vp.width() / 2, vp.height() / 2)
    ev = QWheelEvent(pos, vp.mapToGlobal(pos), QPoint(0, 0), QPoint(0, delta), Qt.MouseButton.NoButton,
                     Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp, ev)


def _mouse(view, etype, pos: QPointF, button, buttons) -> None:
    vp = view.viewport()
    ev = QMouseEvent(etype, pos, vp.mapToGlobal(pos), button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(vp, ev)


def _drag(view, button, p0: QPointF, p1: QPointF, steps: int = 5) -> None:
    _mouse(view, QEvent.Type.MouseButtonPress, p0, button, button)
    for s in range(1, steps + 1):
        p = p0 + (p1 - p0) * (s / steps)
        QTest.qWait(12)  # pyqtgraph's scene drops move events closer than 10 ms (mouseRateLimit)
        _mouse(view, QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, button)
    _mouse(view, QEvent.Type.MouseButtonRelease, p1, button, Qt.MouseButton.NoButton)


def _click(view, pos: QPointF) -> None:
    b = Qt.MouseButton.LeftButton
    _mouse(view, QEvent.Type.MouseButtonPress, pos, b, b)
    _mouse(view, QEvent.Type.MouseButtonRelease, pos, b, Qt.MouseButton.NoButton)


def test_single_pane_slices_keys_window(viewer, qtbot):
    state, w = viewer
    v = w.view()
    assert v.orientation == "axial"
    n0 = state.slice_index("axial")
    _wheel(v, 120)
    assert state.slice_index("axial") == n0 + 1
    _wheel(v, -120)
    assert state.slice_index("axial") == n0
    qtbot.keyClick(v, Qt.Key.Key_Up)
    assert state.slice_index("axial") == n0 + 1
    qtbot.keyClick(v, Qt.Key.Key_Down)
    qtbot.keyClick(v, Qt.Key.Key_PageDown)
    assert state.slice_index("axial") == n0 - 1
    qtbot.keyClick(v, Qt.Key.Key_Home)
    assert state.slice_index("axial") == 0
    qtbot.keyClick(v, Qt.Key.Key_End)
    assert state.slice_index("axial") == state.n_slices("axial") - 1
    # the image item shows exactly the expected slice, windowed
    state.set_slice("axial", 14)
    raw = state.frame("axial").slice_image(state.pane().volume.array, 14)
    assert np.array_equal(v.image.raw, raw)
    assert v.image.image.dtype == np.uint8 and v.image.image.flags.c_contiguous
    # presets by key
    for key, wl in [(Qt.Key.Key_1, (1500, -600)), (Qt.Key.Key_2, (350, 50)), (Qt.Key.Key_3, (400, 40)),
                    (Qt.Key.Key_4, (2500, 480)), (Qt.Key.Key_5, (80, 40))]:
        qtbot.keyClick(v, key)
        assert state.window == wl
    qtbot.keyClick(v, Qt.Key.Key_I)
    assert state.inverted
    # left-drag: right = wider, down = higher level
    w0, l0 = state.window
    c = QPointF(v.viewport().width() / 2, v.viewport().height() / 2)
    _drag(v, Qt.MouseButton.LeftButton, c, c + QPointF(60, 40))
    w1, l1 = state.window
    assert w1 > w0 and l1 > l0
    # right-drag up zooms in; middle-drag pans
    _drag(v, Qt.MouseButton.RightButton, c, c + QPointF(0, -60))
    assert state.view("axial").zoom > 1.0
    _drag(v, Qt.MouseButton.MiddleButton, c, c + QPointF(30, 0))
    assert state.view("axial").pan[0] < 0
    qtbot.keyClick(v, Qt.Key.Key_R)
    assert state.view("axial").zoom == 1.0 and state.view("axial").pan == (0.0, 0.0) and not state.inverted
    # read-out on mouse move
    QTest.qWait(12)
    with qtbot.waitSignal(w.readout, timeout=2000) as blocker:
        _mouse(v, QEvent.Type.MouseMove, c + QPointF(3, 3), Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)
    assert "HU" in blocker.args[0] and "mm (LPS)" in blocker.args[0]


def test_mpr_click_crosshair_follows_sphere(viewer, qtbot):
    state, w = viewer
    state.set_layout("mpr")
    assert [v.orientation for v in w.views] == ["axial", "coronal", "sagittal"]
    for v in w.views:
        assert all(t.text() for t in v.edge.values())
    assert w.view(orientation="axial").edge["left"].text() == "R"
    assert w.view(orientation="coronal").edge["top"].text() == "S"
    assert w.view(orientation="sagittal").edge["left"].text() == "A"
    vol = state.pane().volume
    sphere = vol.voxel_to_world(SPHERE_IJK)
    # put the axial slice through the sphere, then click its centre on the axial pane
    state.set_slice("axial", state.frame("axial").slice_index_of_world(sphere))
    ax = w.view(orientation="axial")
    qtbot.wait(10)
    x, y, _ = state.frame("axial").world_to_display(sphere)
    sx, sy = state.frame("axial").pixel_size
    scene = ax.vb.mapViewToScene(QPointF(x * sx, y * sy))
    _click(ax, ax.mapFromScene(scene).toPointF())
    assert np.allclose(state.crosshair, sphere, atol=0.8)
    for o in ("coronal", "sagittal"):
        assert state.slice_index(o) == state.frame(o).slice_index_of_world(sphere)
        v = w.view(orientation=o)
        xs, ys, _ = np.rint(state.frame(o).world_to_display(sphere)).astype(int)
        assert v.image.raw[ys, xs] == 100  # the sphere's centre is on the followed slice


def test_compare_three_panes_linked_and_overlays(viewer, qtbot, tmp_path):
    state, w = viewer
    vol = state.pane().volume
    state.add_pane("model B", Volume(vol.array[:, ::-1].copy(), vol.geometry, modality="CT", unit="HU"))
    state.add_pane("model C", vol)
    state.set_layout("compare")
    assert [v.pane_name for v in w.views] == ["ct", "model B", "model C"]
    before = [v.slice_index() for v in w.views]
    _wheel(w.views[1], 120)
    after = [v.slice_index() for v in w.views]
    assert after == [b + 1 for b in before]
    qtbot.keyClick(w.views[2], Qt.Key.Key_1)
    assert state.window == (1500, -600)
    sphere = vol.voxel_to_world(SPHERE_IJK)
    state.set_crosshair(sphere)
    state.add_overlay(SpheresOverlay([sphere], [6.4], labels=["nodule"], name="truth"))
    state.add_overlay(PointsOverlay([sphere], labels=["cad"], name="cad"))
    state.add_overlay(LabelMapOverlay(Volume((vol.array == 100).astype(np.uint8), vol.geometry), name="seg"))
    for v in w.views:
        items = v.overlay_items("truth")
        assert items.path is not None and items.path.isVisible() and not items.path.path().isEmpty()
        assert v.overlay_items("cad").scatter.isVisible()
        assert v.overlay_items("seg").image.isVisible()
    state.set_overlay_visible("truth", False)
    assert not any(v.overlay_items("truth").path.isVisible() for v in w.views)
    state.set_overlay_visible("truth", True)
    out = Path("/tmp/viewer_png")
    out.mkdir(parents=True, exist_ok=True)
    qtbot.wait(30)
    assert w.grab().save(str(out / "compare.png"))
    state.set_layout("mpr")
    qtbot.wait(30)
    assert w.grab().save(str(out / "mpr.png"))
    state.remove_pane("model C")
    state.set_layout("compare")
    assert len(w.views) == 2
