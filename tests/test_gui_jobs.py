"""JobRunner (the one Qt adapter for jobs), notices, the error boundary and the binding helper."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QThread  # noqa: E402
from PySide6.QtWidgets import QApplication, QCheckBox, QWidget  # noqa: E402

from reviewer.errors import InputError  # noqa: E402
from reviewer.gui.binding import bind, bindings_of  # noqa: E402
from reviewer.gui.jobs_qt import JobProgressWidget, JobRunner  # noqa: E402
from reviewer.gui.notifications import LogDock, Notifier, ToastArea, error_boundary, guarded  # noqa: E402
from reviewer.view.events import EventGroup  # noqa: E402


@pytest.fixture
def runner(qtbot):
    r = JobRunner()
    yield r
    assert r.shutdown(5000), "a job thread was left running"


def looping_job(n, delay=0.01, token=None):
    threads = []
    for i in range(n):
        threads.append(threading.get_ident())
        time.sleep(delay)
        token.progress(i + 1, n, f"step {i + 1}")
    return {"n": n, "gui_thread": threading.main_thread().ident in threads}


def test_progress_and_result_arrive_on_gui_thread(qtbot, runner):
    seen_threads, progress = [], []
    runner.jobProgress.connect(lambda job, p: (progress.append(p.done), seen_threads.append(QThread.currentThread())))
    results = []
    with qtbot.waitSignal(runner.jobFinished, timeout=5000):
        job = runner.submit(looping_job, 20, 0.01, label="loop", on_result=results.append)
    assert results == [{"n": 20, "gui_thread": False}]
    assert job.state == "done"
    assert progress and progress[-1] == 20  # the final step is never rate-limited away
    gui = QApplication.instance().thread()
    assert seen_threads and all(t == gui for t in seen_threads)


def test_gui_thread_not_blocked_while_job_sleeps(qtbot, runner):
    ticks = []
    runner.submit(looping_job, 30, 0.01)
    t0 = time.monotonic()
    while runner.active_jobs():
        qtbot.wait(5)
        ticks.append(time.monotonic())
        assert time.monotonic() - t0 < 5
    assert len(ticks) >= 10  # the event loop kept turning while the job ran


def test_cancel_gives_cancelled_not_error(qtbot, runner):
    def forever(token=None):
        while True:
            time.sleep(0.005)
            token.check()

    errors, cancelled = [], []
    runner.jobError.connect(lambda j, e: errors.append(e))
    job = runner.submit(forever, on_cancelled=lambda: cancelled.append(True))
    qtbot.wait(50)
    with qtbot.waitSignal(runner.jobCancelled, timeout=5000):
        job.cancel()
    assert cancelled == [True] and not errors and job.state == "cancelled"


def test_exception_arrives_as_error_with_message(qtbot, runner):
    def bad(token=None):
        raise InputError("/data/x.dcm", "truncated pixel data")

    got = []
    with qtbot.waitSignal(runner.jobFinished, timeout=5000):
        job = runner.submit(bad, on_error=got.append)
    assert len(got) == 1 and isinstance(got[0], InputError)
    assert str(got[0]) == "/data/x.dcm: truncated pixel data"
    assert job.state == "error" and "InputError" in job.traceback


def test_error_without_handler_goes_to_error_handler(qtbot, runner):
    seen = []
    runner.error_handler = lambda job, exc: seen.append(str(exc))
    with qtbot.waitSignal(runner.jobFinished, timeout=5000):
        runner.submit(lambda token=None: 1 / 0)
    assert seen == ["division by zero"]


def test_superseded_job_result_is_dropped(qtbot, runner):
    release = threading.Event()

    def slow(value, token=None):
        release.wait(5)  # ignores cancellation on purpose: a stale result still comes back and must be dropped
        return value

    results, dropped = [], []
    runner.jobDropped.connect(dropped.append)
    old = runner.submit(slow, "old", key="load", on_result=results.append)
    new = runner.submit(lambda token=None: "new", key="load", on_result=results.append)
    qtbot.waitUntil(lambda: results == ["new"], timeout=5000)
    release.set()
    qtbot.waitUntil(lambda: dropped == [old], timeout=5000)
    assert results == ["new"] and old.state == "superseded" and new.state == "done"


def test_progress_widget_shows_and_cancels(qtbot, runner):
    w = JobProgressWidget(runner)
    qtbot.addWidget(w)
    w.show()

    def forever(token=None):
        i = 0
        while True:
            i += 1
            token.progress(i % 100, 100, "working")
            time.sleep(0.005)

    runner.submit(forever, label="Scanning")
    qtbot.waitUntil(lambda: "working" in w.label.text(), timeout=5000)
    assert w.isVisible() and w.label.text().startswith("Scanning")
    with qtbot.waitSignal(runner.jobCancelled, timeout=5000):
        w.cancel_button.click()
    assert not w.isVisible()
    quiet = []
    with qtbot.waitSignal(runner.jobFinished, timeout=5000):
        runner.submit(lambda token=None: 1, quiet=True, on_result=quiet.append)
    assert quiet == [1] and not w.isVisible()


# -- notices and the error boundary ---------------------------------------------------------------------------
def test_error_boundary_turns_exceptions_into_notices(qtbot):
    parent = QWidget()
    qtbot.addWidget(parent)
    parent.resize(800, 600)
    parent.show()
    n = Notifier(parent)
    toasts = ToastArea(n, parent)
    dock = LogDock(n)
    qtbot.addWidget(dock)

    with error_boundary(n, "Opening"):
        raise InputError("/tmp/a.dcm", "not a DICOM file")

    class Thing:
        notifier = n

        @guarded("Saving")
        def save(self):
            raise ValueError("disk full")

    assert Thing().save() is None
    assert n.messages("error") == ["Opening: /tmp/a.dcm: not a DICOM file", "Saving: ValueError: disk full"]
    assert "Traceback" in n.notices[-1].detail
    assert len(toasts.toasts()) == 2 and toasts.isVisible()
    assert dock.list.count() == 2 and "not a DICOM file" in dock.list.item(0).text()
    toasts.toasts()[0].dismiss()
    qtbot.waitUntil(lambda: len(toasts.toasts()) == 1)


# -- binding --------------------------------------------------------------------------------------------------
class _State:
    def __init__(self):
        self.events = EventGroup("inverted")
        self._inverted = False

    @property
    def inverted(self):
        return self._inverted

    @inverted.setter
    def inverted(self, v):
        if v != self._inverted:
            self._inverted = bool(v)
            self.events.inverted.emit(self._inverted)


def test_binding_two_way_blocks_echo_and_disconnects(qtbot):
    state = _State()
    box = QCheckBox()
    qtbot.addWidget(box)
    toggles = []
    box.toggled.connect(toggles.append)
    b = bind(box, state, "inverted", signal="toggled", setter="setChecked")
    assert bindings_of(box) == [b]
    box.setChecked(True)  # widget -> state
    assert state.inverted is True
    state.inverted = False  # state -> widget, with the widget's signals blocked
    assert box.isChecked() is False and toggles == [True]
    assert state.events.inverted.n_callbacks == 1
    box.deleteLater()
    qtbot.waitUntil(lambda: not b.connected, timeout=2000)
    assert state.events.inverted.n_callbacks == 0 and not b.connected
