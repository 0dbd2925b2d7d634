"""Main window and run_app: open, load, notices, menus, status bar, demo screenshot."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from reviewer.geometry import Volume  # noqa: E402
from reviewer.gui.app import create_main_window, get_app, run_app  # noqa: E402
from reviewer.gui.main_window import MOUSE_AND_KEYS, load_nodules  # noqa: E402

from tests.test_gui_browser import write_study  # noqa: E402


@pytest.fixture
def window(qtbot):
    w = create_main_window()
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()
    assert not w.runner.active_jobs()
    assert w.runner.wait(5000)  # no worker thread left running


@pytest.fixture(autouse=True)
def _no_leaked_windows(qapp):
    before = {id(t) for t in qapp.topLevelWidgets() if t.isVisible()}
    yield
    leaked = [t for t in qapp.topLevelWidgets() if t.isVisible() and id(t) not in before
              and t.objectName() == "reviewerMainWindow"]
    assert not leaked, f"windows left open: {leaked}"


def _open_study(qtbot, window, folder):
    with qtbot.waitSignal(window.browser.scanFinished, timeout=60_000):
        window.open_paths([folder], open_first=False)


def _ct_volume(name="ct") -> Volume:
    arr = np.full((10, 20, 30), -1000, dtype=np.int16)
    arr[3:7, 5:15, 10:20] = 40
    return Volume.from_array(arr, spacing=(1.0, 1.0, 2.0), modality="CT", unit="HU", name=name)


def test_app_identity():
    app = get_app()
    assert app.applicationName() == "Reviewer" and app.organizationName()
    assert not app.windowIcon().isNull()


def test_open_folder_double_click_loads_series(qtbot, window, tmp_path):
    folder = write_study(tmp_path / "study")
    _open_study(qtbot, window, folder)
    lung = next(i for i in window.browser.series.values() if i.series_description == "Lung 1mm")
    with qtbot.waitSignal(window.seriesLoaded, timeout=60_000):
        window.browser.tree.doubleClicked.emit(window.browser.index_of(lung.uid))
    pane = window.state.primary
    assert pane is not None and pane.name == "Lung 1mm"
    assert pane.volume.shape == (4, 24, 32)
    assert "Lung 1mm" in window.windowTitle()
    assert window.current_series is lung


def test_corrupt_file_gives_notice_and_app_keeps_running(qtbot, window, tmp_path):
    folder = write_study(tmp_path / "study")
    good = sorted(folder.glob("s01_*.dcm"))[0].read_bytes()
    (folder / "broken.dcm").write_bytes(good[:1000])
    with qtbot.waitSignal(window.seriesLoaded, timeout=60_000):
        window.open_paths([folder])  # opens the first image series once scanned
    assert any("broken.dcm" in m for m in window.notifier.messages())
    assert window.state.primary is not None
    assert window.toasts.toasts()  # non-modal, visible notices
    assert window.log_dock.list.count() >= 1


def test_unreadable_series_gives_error_notice(qtbot, window, tmp_path):
    folder = write_study(tmp_path / "study")
    _open_study(qtbot, window, folder)
    soft = next(i for i in window.browser.series.values() if i.series_description == "Soft tissue")
    Path(soft.files[1]).write_bytes(b"\0" * 10)  # the file changed on disk after the scan
    with qtbot.waitSignal(window.runner.jobFinished, timeout=60_000,
                          check_params_cb=lambda job: job.key == "load"):
        window.open_series(soft)
    errors = window.notifier.messages("error")
    assert errors and "Soft tissue" in errors[-1]
    assert window.state.primary is None  # nothing half-loaded; the window goes on


def test_empty_folder_gives_notice(qtbot, window, tmp_path):
    empty = tmp_path / "nothing_here"
    empty.mkdir()
    _open_study(qtbot, window, empty)
    assert any("nothing_here" in m for m in window.notifier.messages())
    assert window.state.primary is None


def test_drop_opens_files(qtbot, window, tmp_path):
    folder = write_study(tmp_path / "dropped")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    event = QDropEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.seriesLoaded, timeout=60_000):
        window.dropEvent(event)
    assert window.state.primary is not None


def test_view_menu_actions_change_state(qtbot, window):
    state = window.state
    state.set_primary(_ct_volume(), "ct")
    window.layout_actions["mpr"].trigger()
    assert state.layout == "mpr"
    state.set_layout("single")
    assert window.layout_actions["single"].isChecked() and not window.layout_actions["mpr"].isChecked()
    texts = [a.text() for a in window.preset_actions]
    assert texts[0].startswith("Lung") and window.preset_actions[0].shortcut().toString() == "1"
    window.preset_actions[0].trigger()
    assert state.window == (1500.0, -600.0)
    window.preset_actions[1].trigger()
    assert state.window == (350.0, 50.0)
    window.act_invert.trigger()
    assert state.inverted is True
    state.set_inverted(False)
    assert not window.act_invert.isChecked()
    window.act_invert.trigger()
    window.act_reset.trigger()
    assert state.inverted is False and not window.act_invert.isChecked()
    from reviewer.view.overlays import PointsOverlay

    state.add_overlay(PointsOverlay(points=[[0.0, 0.0, 0.0]], name="detections"))
    act = window.overlay_actions["detections"]
    assert act.isChecked()
    act.trigger()
    assert state.overlay("detections").visible is False
    state.set_overlay_visible("detections", True)
    assert act.isChecked()


def test_keys_reach_the_viewer(qtbot, window):
    window.state.set_primary(_ct_volume(), "ct")
    window.activateWindow()
    window.browser.tree.setFocus()  # even with the browser focused, 1-5 / I / R act on the viewer
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None, timeout=2000)
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_1)
    assert window.state.window == (1500.0, -600.0)
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_I)
    assert window.state.inverted
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_R)
    assert not window.state.inverted
    window.browser.filter_edit.setFocus()  # ...but typing in the filter stays in the filter
    qtbot.keyClicks(window.browser.filter_edit, "1")
    assert window.browser.filter_edit.text() == "1"


def test_status_bar_device_and_help(qtbot, window):
    qtbot.waitUntil(lambda: "detecting" not in window.device_label.text(), timeout=30_000)
    assert any(k in window.device_label.text() for k in ("CPU", "CUDA", "MPS"))
    guide = window.show_guide()
    text = guide.findChildren(type(window.readout_label))[0].text()
    for key in ("Page Up", "Home", "Left drag", "Right drag", "Middle drag", "1 - 5", "Space"):
        assert key in text
    assert len(MOUSE_AND_KEYS) >= 10
    about = window.about_text()
    assert "0.1" in about and window.device_label.text().removeprefix("Device: ") in about
    guide.close()


def test_load_nodules_formats(tmp_path):
    p = tmp_path / "n.json"
    p.write_text(json.dumps([{"center_lps_mm": [1, 2, 3], "diameter_mm": 8.5, "kind": "solid"}]))
    assert load_nodules(p) == [{"center": [1.0, 2.0, 3.0], "diameter_mm": 8.5, "kind": "solid"}]


@pytest.mark.slow
def test_run_app_demo_screenshot(qtbot, tmp_path):
    from reviewer.demo import generate_demo

    demo = generate_demo(out_dir=tmp_path / "demo")
    png = tmp_path / "shot.png"
    assert run_app(demo=demo, screenshot=png) == 0
    from PySide6.QtGui import QImage

    img = QImage(str(png))
    assert img.width() >= 1200 and img.height() >= 800
    assert os.path.getsize(png) > 50_000


def test_recent_paths_file_is_robust(tmp_path):
    from reviewer.recent import RecentPaths

    r = RecentPaths(tmp_path / "recent.json", limit=3)
    assert r.items() == []
    dirs = [tmp_path / f"d{i}" for i in range(4)]
    for d in dirs:
        d.mkdir()
        r.add(d)
    r.add(dirs[1])  # re-opening moves it to the top, without a duplicate
    assert r.items() == [str(dirs[1]), str(dirs[3]), str(dirs[2])]
    dirs[3].rmdir()  # gone from disk: not offered
    assert r.items() == [str(dirs[1]), str(dirs[2])]
    (tmp_path / "recent.json").write_text("{not json")
    assert r.items() == []  # a corrupt file never stops the app


def test_open_recent_menu_reopens_a_folder(qtbot, window, tmp_path):
    folder = write_study(tmp_path / "study")
    _open_study(qtbot, window, folder)
    window._rebuild_recent_menu()
    acts = [a for a in window.recent_menu.actions() if a.toolTip() == str(folder.resolve())
            or a.toolTip() == os.path.abspath(folder)]
    assert acts, [a.text() for a in window.recent_menu.actions()]
    with qtbot.waitSignal(window.browser.scanFinished, timeout=60_000):
        acts[0].trigger()
    assert any(i.series_description == "Lung 1mm" for i in window.browser.series.values())
