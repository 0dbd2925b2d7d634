"""pytest-qt tests of the reading mode (offscreen): the flow, blinding, time accounting and resume via the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QEvent, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QAbstractButton, QApplication, QGraphicsSimpleTextItem, QGraphicsView  # noqa: E402
from PySide6.QtWidgets import QLabel, QListWidget, QTextBrowser, QWidget  # noqa: E402

from reviewer.geometry import Volume  # noqa: E402
from reviewer.gui.reading.window import ReadingWindow  # noqa: E402
from reviewer.io.writer import write_volume  # noqa: E402
from reviewer.studies.definition import (  # noqa: E402
    Blinding,
    CaseDef,
    ImageRef,
    Lesion,
    Navigation,
    ReaderDef,
    StudyDefinition,
    Truth,
)
from reviewer.studies.reading import ActiveClock, ReadingSession  # noqa: E402
from reviewer.studies.store import open_store  # noqa: E402

pytestmark = pytest.mark.gui

CONDITIONS = ["standard U-Net 4x", "robust U-Net 4x"]


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make_study(folder: Path, n_cases: int = 2, paradigm: str = "froc", allow_back: bool = False,
               scale: str = "1-5", time_limit: float | None = None, blinded: bool = True) -> Path:
    """A small two-condition study of CT-like volumes with opaque file names."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "images").mkdir(exist_ok=True)
    cases = []
    rng = np.random.default_rng(0)
    for c in range(n_cases):
        images = {}
        for j, cond in enumerate(CONDITIONS):
            arr = (rng.normal(0, 30, (12, 48, 48)) - 700).astype(np.int16)
            arr[5:8, 20:26, 20:26] = 40 + 10 * j
            vol = Volume.from_array(arr, spacing=(0.8, 0.8, 2.0), origin=(-20.0, -20.0, 0.0), modality="CT",
                                    unit="HU", name=f"case{c}-{cond}")
            name = f"images/img{c}{j}a7.nii.gz"
            write_volume(vol, folder / name)
            images[cond] = ImageRef(name)
        truth = Truth([Lesion(1, (0.0, 0.0, 12.0), 5.0)]) if c % 2 == 0 else Truth()
        cases.append(CaseDef(f"case-{c:02d}", truth, images))
    d = StudyDefinition(name="reading test", conditions=list(CONDITIONS), cases=cases,
                        readers=[ReaderDef("R1"), ReaderDef("R2")], paradigm=paradigm, rating_scale=scale,
                        navigation=Navigation(allow_back=allow_back), blinding=Blinding(hide_condition=blinded),
                        time_limit_s=time_limit, instructions="Mark every nodule you see.")
    d.write(folder / "study.json")
    return folder


def open_window(qtbot, folder: Path, reader: str = "R1", clock=None) -> ReadingWindow:
    store = open_store(folder)
    session = ReadingSession.open(store, reader, base_clock=clock or FakeClock())
    w = ReadingWindow(session, own_store=True)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    return w


def wait_reading(qtbot, w: ReadingWindow) -> None:
    qtbot.waitUntil(lambda: w.session.screen == "reading", timeout=10000)
    QApplication.processEvents()


def _mouse(view: QGraphicsView, etype, pos: QPointF, button, buttons) -> None:
    vp = view.viewport()
    ev = QMouseEvent(etype, pos, vp.mapToGlobal(pos), button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(vp, ev)


def click(view, pos: QPointF) -> None:
    b = Qt.MouseButton.LeftButton
    _mouse(view, QEvent.Type.MouseButtonPress, pos, b, b)
    _mouse(view, QEvent.Type.MouseButtonRelease, pos, b, Qt.MouseButton.NoButton)


def drag(view, p0: QPointF, p1: QPointF, steps: int = 5) -> None:
    b = Qt.MouseButton.LeftButton
    _mouse(view, QEvent.Type.MouseButtonPress, p0, b, b)
    for s in range(1, steps + 1):
        QTest.qWait(12)  # pyqtgraph drops moves closer than 10 ms
        _mouse(view, QEvent.Type.MouseMove, p0 + (p1 - p0) * (s / steps), Qt.MouseButton.NoButton, b)
    _mouse(view, QEvent.Type.MouseButtonRelease, p1, b, Qt.MouseButton.NoButton)


def viewport_pos_of_world(view, world) -> QPointF:
    x, y, _ = view.frame.world_to_display(np.asarray(world, float))
    sx, sy = view.frame.pixel_size
    scene = view.vb.mapViewToScene(QPointF(x * sx, y * sy))
    return QPointF(view.mapFromScene(scene))


def key(w: ReadingWindow, k, mod=Qt.KeyboardModifier.NoModifier) -> None:
    target = w.canvas if (w.canvas is not None and w.session.screen == "reading") else w
    QTest.keyClick(target, k, mod)


def visible_texts(root: QWidget) -> list[str]:
    """Every text a reader can see or hover: titles, labels, buttons, lists, tooltips, texts drawn in scenes."""
    out = [root.windowTitle()]
    for wdg in [root] + root.findChildren(QWidget):
        out += [wdg.windowTitle(), wdg.toolTip(), wdg.statusTip(), wdg.whatsThis(), wdg.accessibleName()]
        if isinstance(wdg, (QLabel, QAbstractButton)):
            out.append(wdg.text())
        if isinstance(wdg, QTextBrowser):
            out.append(wdg.toPlainText())
        if isinstance(wdg, QListWidget):
            out += [wdg.item(i).text() for i in range(wdg.count())]
        if isinstance(wdg, QGraphicsView) and wdg.scene() is not None:
            for item in wdg.scene().items():
                if isinstance(item, QGraphicsSimpleTextItem):
                    out.append(item.text())
                elif hasattr(item, "textItem"):
                    out.append(item.textItem.toPlainText())
    return [t for t in out if t]


@pytest.fixture
def study(tmp_path):
    return make_study(tmp_path / "study")


def test_reading_flow_marks_rate_move_delete_submit(qtbot, study):
    w = open_window(qtbot, study)
    s = w.session
    assert s.screen == "instructions"
    assert "Mark every nodule" in w.instructions_text.toPlainText()
    QTest.keyClick(w, Qt.Key.Key_Return)
    wait_reading(qtbot, w)
    assert w.counter.text() == "Case 1 of 4"
    view = w.canvas
    assert view.state.pane().name == "image"
    # a click on the image places a mark, persisted at once
    world = view.state.crosshair
    p = viewport_pos_of_world(view, world)
    click(view, p)
    assert len(s.marks) == 1 and s.selected == s.marks[0].mark_id
    store_marks = s.store_session.current().marks
    assert len(store_marks) == 1 and np.allclose(store_marks[0].world_lps, s.marks[0].world_lps, atol=1.0)
    assert w.submit_button.isEnabled() and not w.no_lesion_button.isEnabled()
    # rate it with key 3
    key(w, Qt.Key.Key_3)
    assert s.marks[0].rating == 3.0
    assert s.store_session.current().marks[0].rating == 3.0
    assert "3" in w.selected_label.text() and "possible" in w.selected_label.text()
    # move it by dragging
    p2 = QPointF(p.x() + 60, p.y() + 30)
    drag(view, p, p2)
    moved = s.store_session.current().marks[0]
    assert len(s.store_session.current().marks) == 1
    q = viewport_pos_of_world(view, moved.world_lps)
    assert abs(q.x() - p2.x()) < 2 and abs(q.y() - p2.y()) < 2  # the mark is where the drag ended
    assert moved.rating == 3.0
    # a second mark, then delete it with the Delete key
    click(view, QPointF(p.x() - 80, p.y() - 60))
    assert len(s.marks) == 2 and s.selected == s.marks[1].mark_id
    key(w, Qt.Key.Key_Tab)  # Tab cycles the selection through the marks
    assert s.selected == s.marks[0].mark_id
    key(w, Qt.Key.Key_Tab)
    assert s.selected == s.marks[1].mark_id
    assert w.mark_list.count() == 2 and "not rated yet" in w.mark_list.item(1).text()
    key(w, Qt.Key.Key_Delete)
    assert len(s.marks) == 1 and len(s.store_session.current().marks) == 1
    # "no lesion" is refused while a mark exists; Enter submits the rated mark
    key(w, Qt.Key.Key_N)
    assert "delete them" in w.message.text()
    key(w, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: s.screen == "reading" and s.case.index == 1, timeout=10000)
    assert w.counter.text() == "Case 2 of 4" and s.marks == ()
    # no lesion submits an empty case
    key(w, Qt.Key.Key_N)
    qtbot.waitUntil(lambda: s.screen == "reading" and s.case.index == 2, timeout=10000)
    # going back is refused in this study
    key(w, Qt.Key.Key_Left, Qt.KeyboardModifier.AltModifier)
    assert s.case.index == 2 and "does not allow going back" in w.message.text()
    assert not w.nav_box.isVisible()
    key(w, Qt.Key.Key_N)
    qtbot.waitUntil(lambda: s.screen == "reading" and s.case.index == 3, timeout=10000)
    key(w, Qt.Key.Key_N)
    qtbot.waitUntil(lambda: s.screen == "end", timeout=10000)
    assert "All cases are read" in w.end_label.text()
    assert "4 of 4 cases submitted" in w.end_detail.text() and "1 mark," in w.end_detail.text()
    assert w.counter.text() == "Finished" and w.pages["end"].isVisible()
    results = s.store_session.store.results()
    assert len(results) == 4
    first = next(r for r in results if r.position == 0)
    assert len(first.marks) == 1 and first.marks[0]["rating"] == 3.0
    w.close()


def test_back_allowed_and_roc_rating(qtbot, tmp_path):
    folder = make_study(tmp_path / "s", n_cases=1, paradigm="both", allow_back=True)
    w = open_window(qtbot, folder)
    s = w.session
    w.start()
    wait_reading(qtbot, w)
    assert w.nav_box.isVisible() and not w.back_button.isEnabled()
    # both paradigms: the case rating is required; key 4 with no mark selected rates the case
    key(w, Qt.Key.Key_N)
    assert "rate the case" in w.message.text()
    key(w, Qt.Key.Key_4)
    assert s.case_rating == 4.0 and s.store_session.current().case_rating == 4.0
    assert w.case_rating_label.text() == "4 — probably abnormal"
    key(w, Qt.Key.Key_N)
    qtbot.waitUntil(lambda: s.screen == "reading" and s.case.index == 1, timeout=10000)
    assert w.back_button.isEnabled()
    key(w, Qt.Key.Key_Left, Qt.KeyboardModifier.AltModifier)
    qtbot.waitUntil(lambda: s.screen == "reading" and s.case.index == 0, timeout=10000)
    assert s.case_rating == 4.0  # the earlier answer is shown again
    assert "earlier case" in w.message.text()
    assert w.forward_button.isEnabled()
    w.close()


def test_pause_resume_and_focus_time_accounting(qtbot, study):
    clock = FakeClock()
    w = open_window(qtbot, study, clock=clock)
    s = w.session
    clock.t += 50  # reading the instructions does not count
    w.start()
    wait_reading(qtbot, w)
    clock.t += 10
    key(w, Qt.Key.Key_P)
    assert s.screen == "paused"
    assert not w.pages["reading"].isVisible() and w.pages["paused"].isVisible()  # the image is hidden
    clock.t += 100  # paused: not counted
    key(w, Qt.Key.Key_P)
    assert s.screen == "reading"
    clock.t += 5
    w.set_window_active(False)  # another application in front: not counted
    clock.t += 30
    w.set_window_active(True)
    clock.t += 2
    assert s.active_seconds() == pytest.approx(17.0)
    key(w, Qt.Key.Key_N)
    qtbot.waitUntil(lambda: s.screen == "reading" and s.case.index == 1, timeout=10000)
    res = s.store_session.store.results()
    assert len(res) == 1 and res[0].active_s == pytest.approx(17.0)
    w.close()


def test_blinding_no_condition_or_file_name_visible(qtbot, study):
    w = open_window(qtbot, study)
    s = w.session
    forbidden = list(CONDITIONS) + [c.id for c in s.definition.cases]
    for c in s.definition.cases:
        for ref in c.images.values():
            forbidden += [Path(ref.path).name, Path(ref.path).name.split(".")[0]]
    forbidden.append(s.definition.name)

    def check() -> list[str]:
        texts = visible_texts(w)
        leaks = [(f, t) for t in texts for f in forbidden if f.lower() in t.lower()]
        assert not leaks, leaks
        return texts

    check()
    w.start()
    wait_reading(qtbot, w)
    view = w.canvas
    click(view, viewport_pos_of_world(view, view.state.crosshair))
    key(w, Qt.Key.Key_2)
    texts = check()
    assert any("Case 1 of 4" in t for t in texts)
    key(w, Qt.Key.Key_P)
    check()
    assert not w.condition_label.isVisible()
    w.close()


def test_unblinded_study_shows_the_condition(qtbot, tmp_path):
    folder = make_study(tmp_path / "open", n_cases=1, blinded=False)
    w = open_window(qtbot, folder)
    w.start()
    wait_reading(qtbot, w)
    order = w.session.store_session.store.reading_order("R1")
    assert w.condition_label.isVisible() and w.condition_label.text() == order[0].condition
    w.close()


def test_resume_after_close_mid_case_keeps_marks(qtbot, study):
    w = open_window(qtbot, study)
    s = w.session
    w.start()
    wait_reading(qtbot, w)
    key(w, Qt.Key.Key_N)
    qtbot.waitUntil(lambda: s.screen == "reading" and s.case.index == 1, timeout=10000)
    view = w.canvas
    p = viewport_pos_of_world(view, view.state.crosshair)
    click(view, p)
    key(w, Qt.Key.Key_5)
    click(view, QPointF(p.x() + 70, p.y()))  # a second, unrated mark
    placed = [(m.world_lps, m.rating) for m in s.marks]
    w.close()  # mid-case: nothing submitted for case 2
    assert open_store(study).progress()[0].n_submitted == 1

    w2 = open_window(qtbot, study)
    s2 = w2.session
    assert "Welcome back" in w2.instructions_text.toPlainText() and "case 2 of 4" in w2.instructions_text.toPlainText()
    w2.start()
    wait_reading(qtbot, w2)
    assert s2.case.index == 1
    assert [(m.world_lps, m.rating) for m in s2.marks] == placed
    assert len(w2.canvas._mark_items) == 2 and w2.mark_list.count() == 2
    w2.close()


def test_closed_while_paused_reopens_paused(qtbot, study):
    w = open_window(qtbot, study)
    w.start()
    wait_reading(qtbot, w)
    w.toggle_pause()
    w.close()
    w2 = open_window(qtbot, study)
    w2.start()
    assert w2.session.screen == "paused"
    w2.toggle_pause()
    wait_reading(qtbot, w2)
    w2.close()


def test_active_clock_holds():
    t = [0.0]
    c = ActiveClock(lambda: t[0], held=("instructions",))
    t[0] = 10
    assert c() == 0.0
    c.release("instructions")
    t[0] = 13
    c.hold("a")
    c.hold("b")
    t[0] = 20
    c.release("a")
    assert c() == 3.0
    c.release("b")
    t[0] = 21
    assert c() == 4.0


def test_time_limit_and_slider_scale(qtbot, tmp_path):
    folder = make_study(tmp_path / "s", n_cases=1, scale="0-100", time_limit=30.0)
    clock = FakeClock()
    w = open_window(qtbot, folder, clock=clock)
    s = w.session
    w.start()
    wait_reading(qtbot, w)
    view = w.canvas
    click(view, viewport_pos_of_world(view, view.state.crosshair))
    slider = w.mark_rating.slider
    assert slider is not None and w.mark_rating.isEnabled()
    slider.setValue(73)
    slider.sliderReleased.emit()
    assert s.marks[0].rating == 73.0 and s.store_session.current().marks[0].rating == 73.0
    key(w, Qt.Key.Key_3)  # digit keys do not rate on a 0-100 scale
    assert s.marks[0].rating == 73.0
    clock.t += 12
    w._tick()
    assert w.timer_label.text() == "Time left 0:18"
    clock.t += 20
    w._tick()  # time is up: the case is submitted as it is
    qtbot.waitUntil(lambda: s.screen == "reading" and s.case.index == 1, timeout=10000)
    res = s.store_session.store.results()
    assert len(res) == 1 and res[0].timed_out and res[0].marks[0]["rating"] == 73.0
    assert "time for the previous case ran out" in w.message.text()
    w.close()


def test_main_window_read_action_opens_reading(qtbot, study, monkeypatch):
    from reviewer.gui import main_window
    from reviewer.gui.main_window import MainWindow

    monkeypatch.setattr(main_window, "describe_device_job", lambda token=None: "cpu")  # no torch import here
    mw = MainWindow()
    qtbot.addWidget(mw)
    assert mw.act_read_study.text().startswith("&Read a study") and mw.act_new_study.isEnabled()
    rw = mw.read_study(str(study), "R2", full_screen=False)
    qtbot.addWidget(rw)
    assert isinstance(rw, ReadingWindow) and rw.session.screen == "instructions"
    assert rw.windowTitle() == "Reader study"
    rw.close()
    mw.close()


def test_cli_study_read_screenshot_and_unknown_reader(qtbot, study, tmp_path, capsys):
    from PIL import Image

    from reviewer.cli import main

    png = tmp_path / "read.png"
    db = tmp_path / "elsewhere.db"
    assert main(["study", "read", str(study), "--reader", "R1", "--db", f"sqlite:///{db}",
                 "--screenshot", str(png)]) == 0
    with Image.open(png) as im:
        assert im.size[0] >= 800 and im.size[1] >= 600
        # mostly dark (black background, dark panels), the image in the middle
        grey = np.asarray(im.convert("L"), float)
        assert grey.mean() < 110
    st = open_store(f"sqlite:///{db}")
    assert {p.reader_id: p.n_cases for p in st.progress()}["R1"] == 4  # the session lives in the --db store
    st.close()
    assert main(["study", "read", str(study), "--reader", "nobody", "--screenshot", str(png)]) == 2
    assert "unknown reader 'nobody'" in capsys.readouterr().err


def test_case_images_load_off_the_ui_thread(qtbot, study):
    import threading

    w = open_window(qtbot, study)
    s = w.session
    threads = []
    real = s.store_session.load_image

    def spy(token=None):
        threads.append(threading.current_thread())
        return real(token=token)

    s.store_session.load_image = spy
    w.start()
    assert s.screen == "loading" and w.loading_label.text() == "Loading case 1 of 4…"
    wait_reading(qtbot, w)
    key(w, Qt.Key.Key_N)
    assert s.screen == "loading"  # the next image is read in the background; the window shows the loading page
    wait_reading(qtbot, w)
    assert threads and all(t is not threading.main_thread() for t in threads)
    w.close()


CHILD = r"""
import os, sys, time
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from reviewer.gui.app import get_app
from reviewer.gui.reading.window import open_reading_window
app = get_app()
w = open_reading_window(sys.argv[1], "R1", full_screen=False)
w.start()
t0 = time.time()
while w.session.screen != "reading" and time.time() - t0 < 60:
    app.processEvents()
    time.sleep(0.01)
s = w.session
c = w.state.crosshair
s.no_lesion()
while w.session.screen != "reading" and time.time() - t0 < 60:
    app.processEvents()
    time.sleep(0.01)
s.add_mark(c)
s.rate(4)
s.add_mark((c[0] + 5.0, c[1], c[2]))
print("READY", flush=True)
time.sleep(120)
"""


@pytest.mark.slow
def test_killed_reading_process_loses_no_mark(qtbot, study):
    import os
    import signal
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(repo))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(study)], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout.readline().strip() == "READY"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    store = open_store(study)
    assert store.integrity_check() == ["ok"]
    store.close()
    w = open_window(qtbot, study)
    s = w.session
    w.start()
    wait_reading(qtbot, w)
    assert s.case.index == 1  # resumed at the case being read when the process died
    assert [m.rating for m in s.marks] == [4.0, None] and len(w.canvas._mark_items) == 2
    w.close()


def test_roc_study_rates_cases_without_marks(qtbot, tmp_path):
    folder = make_study(tmp_path / "roc", n_cases=1, paradigm="roc")
    w = open_window(qtbot, folder)
    s = w.session
    w.start()
    wait_reading(qtbot, w)
    assert not w.marks_box.isVisible() and not w.no_lesion_button.isVisible() and w.case_box.isVisible()
    view = w.canvas
    click(view, viewport_pos_of_world(view, view.state.crosshair))
    assert s.marks == () and "one rating per case" in w.message.text()
    key(w, Qt.Key.Key_Return)
    assert s.case.index == 0 and "rate the case" in w.message.text()
    key(w, Qt.Key.Key_2)
    assert w.case_rating_input.buttons[1].isChecked()
    key(w, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: s.screen == "reading" and s.case.index == 1, timeout=10000)
    res = s.store_session.store.results()
    assert len(res) == 1 and res[0].case_rating == 2.0 and res[0].marks == []
    w.close()
