"""The one Qt adapter for jobs: run a plain ``fn(*args, token=JobToken, **kw)`` on a worker thread.

Results, errors, progress and cancellation come back on the GUI thread through queued signals (the worker
never touches a widget). A job submitted with a ``key`` supersedes any running job with the same key: the older
one is cancelled and whatever it still produces is dropped, so a slow, stale load can never overwrite a newer
one (napari's slicer, Orange's ``concurrent`` helpers).

    runner = JobRunner()
    runner.submit(load_series, info, key="load", label="Loading CT", on_result=show)

:class:`JobProgressWidget` is the status-bar view of a runner: label, progress bar and a cancel button.
"""

from __future__ import annotations

import itertools
import logging
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QToolButton, QWidget

from reviewer.jobs import Cancelled, JobToken, Progress

log = logging.getLogger(__name__)

_ids = itertools.count(1)


@dataclass(eq=False)
class Job:
    """Handle of one submitted job. ``state``: running, done, error, cancelled or superseded."""

    id: int
    label: str
    key: str | None
    token: JobToken
    quiet: bool = False
    on_result: Callable[[Any], None] | None = None
    on_error: Callable[[BaseException], None] | None = None
    on_progress: Callable[[Progress], None] | None = None
    on_cancelled: Callable[[], None] | None = None
    state: str = "running"
    progress: Progress | None = None
    superseded: bool = False
    traceback: str = ""
    result: Any = field(default=None, repr=False)

    def cancel(self) -> None:
        self.token.cancel()

    @property
    def active(self) -> bool:
        return self.state == "running"


class _Relay(QObject):
    """Signals emitted from worker threads; the runner (GUI thread) receives them queued."""

    progress = Signal(int, object)
    outcome = Signal(int, str, object, str)  # job id, 'result' | 'error' | 'cancelled', value, traceback


class _Runnable(QRunnable):
    def __init__(self, relay: _Relay, job_id: int, fn: Callable[..., Any], args: tuple, kwargs: dict, token: JobToken):
        super().__init__()
        self._relay, self._id, self._fn, self._args, self._kwargs, self._token = relay, job_id, fn, args, kwargs, token

    def run(self) -> None:  # worker thread: no widgets here
        try:
            self._token.check()
            value = self._fn(*self._args, token=self._token, **self._kwargs)
            kind, tb = "result", ""
        except Cancelled:
            kind, value, tb = "cancelled", None, ""
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the GUI thread
            kind, value, tb = "error", exc, traceback.format_exc()
        try:
            self._relay.outcome.emit(self._id, kind, value, tb)
        except RuntimeError:  # the runner was deleted while this job ran
            pass
        finally:
            self._fn = self._args = self._kwargs = None


class JobRunner(QObject):
    """Runs job functions on its own thread pool; everything it emits arrives on the GUI thread."""

    jobStarted = Signal(object)  # Job
    jobProgress = Signal(object, object)  # Job, Progress
    jobResult = Signal(object, object)  # Job, result
    jobError = Signal(object, object)  # Job, exception
    jobCancelled = Signal(object)  # Job
    jobDropped = Signal(object)  # Job whose outcome was dropped because a newer job with its key superseded it
    jobFinished = Signal(object)  # Job, after any of the above

    def __init__(self, parent: QObject | None = None, max_threads: int = 4):
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._relay = _Relay(self)
        self._relay.progress.connect(self._on_progress)
        self._relay.outcome.connect(self._on_outcome)
        self._jobs: dict[int, Job] = {}
        self._latest: dict[str, Job] = {}
        self._shut = False
        #: called as ``error_handler(job, exc)`` for failures of jobs without ``on_error`` and for exceptions
        #: raised by a job's GUI-thread callbacks
        self.error_handler: Callable[[Job, BaseException], None] | None = None

    # -- public ------------------------------------------------------------------------------------------------
    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        key: str | None = None,
        label: str = "",
        quiet: bool = False,
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> Job:
        """Start ``fn(*args, token=..., **kwargs)`` on a worker thread and return its :class:`Job` handle.

        ``key``: a newer job with the same key cancels this one and drops its outcome. ``quiet`` jobs do not
        show in the progress widget.
        """
        if self._shut:
            raise RuntimeError("JobRunner was shut down")
        job_id = next(_ids)
        relay = self._relay

        def emit_progress(p: Progress) -> None:  # worker thread
            try:
                relay.progress.emit(job_id, p)
            except RuntimeError:
                pass

        token = JobToken(emit_progress)
        job = Job(job_id, label or getattr(fn, "__name__", "job"), key, token, quiet,
                  on_result, on_error, on_progress, on_cancelled)
        if key is not None:
            old = self._latest.get(key)
            if old is not None and old.active:
                old.superseded = True
                old.cancel()
            self._latest[key] = job
        self._jobs[job_id] = job
        self.jobStarted.emit(job)
        self._pool.start(_Runnable(relay, job_id, fn, args, kwargs, token))
        return job

    def active_jobs(self) -> list[Job]:
        return [j for j in self._jobs.values() if j.active]

    def cancel_all(self) -> None:
        for job in list(self._jobs.values()):
            job.cancel()

    def wait(self, msecs: int = -1) -> bool:
        """Block until the worker threads are idle (tests, shutdown). Queued outcomes still need the event loop."""
        return self._pool.waitForDone(msecs)

    def shutdown(self, msecs: int = 10_000) -> bool:
        """Cancel every job and wait for the workers; outcomes arriving afterwards are dropped."""
        self._shut = True
        self.cancel_all()
        done = self._pool.waitForDone(msecs)
        if not done:
            log.warning("jobs still running after %d ms: %s", msecs, [j.label for j in self.active_jobs()])
        return done

    # -- GUI thread ------------------------------------------------------------------------------------------
    @Slot(int, object)
    def _on_progress(self, job_id: int, p: Progress) -> None:
        job = self._jobs.get(job_id)
        if job is None or not job.active or job.superseded:
            return
        job.progress = p
        self._call(job, job.on_progress, p)
        self.jobProgress.emit(job, p)

    @Slot(int, str, object, str)
    def _on_outcome(self, job_id: int, kind: str, value: Any, tb: str) -> None:
        job = self._jobs.pop(job_id, None)
        if job is None:
            return
        if job.key is not None and self._latest.get(job.key) is job:
            del self._latest[job.key]
        stale = job.superseded or (job.key is not None and job.key in self._latest and self._latest[job.key] is not job)
        if stale or self._shut:
            job.state = "superseded" if stale else "cancelled"
            self.jobDropped.emit(job)
        elif kind == "result":
            job.state, job.result = "done", value
            self._call(job, job.on_result, value)
            self.jobResult.emit(job, value)
        elif kind == "cancelled":
            job.state = "cancelled"
            self._call(job, job.on_cancelled)
            self.jobCancelled.emit(job)
        else:
            job.state, job.traceback = "error", tb
            log.error("job %r failed:\n%s", job.label, tb)
            if job.on_error is not None:
                self._call(job, job.on_error, value)
            elif self.error_handler is not None:
                self.error_handler(job, value)
            self.jobError.emit(job, value)
        self.jobFinished.emit(job)

    def _call(self, job: Job, cb: Callable[..., None] | None, *args: Any) -> None:
        if cb is None:
            return
        try:
            cb(*args)
        except Exception as exc:  # noqa: BLE001 - a failing callback must not kill the event loop
            log.exception("callback of job %r failed", job.label)
            if self.error_handler is not None:
                self.error_handler(job, exc)
            else:
                raise


class JobProgressWidget(QWidget):
    """Status-bar view of a :class:`JobRunner`: what runs, how far, and a button to cancel it.

    Shows the most recently started non-quiet job (with "+N" when more run) and hides itself when idle.
    """

    def __init__(self, runner: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self._runner = runner
        self._jobs: list[Job] = []
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        self.label = QLabel()
        self.bar = QProgressBar()
        self.bar.setFixedWidth(160)
        self.bar.setMaximumHeight(16)
        self.bar.setTextVisible(True)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Cancel this job")
        self.cancel_button.clicked.connect(self.cancel_current)
        for w in (self.label, self.bar, self.cancel_button):
            lay.addWidget(w)
        runner.jobStarted.connect(self._started)
        runner.jobProgress.connect(self._progress)
        runner.jobFinished.connect(self._finished)
        runner.jobDropped.connect(self._finished)
        self.setVisible(False)

    @property
    def current(self) -> Job | None:
        return self._jobs[-1] if self._jobs else None

    def cancel_current(self) -> None:
        job = self.current
        if job is not None:
            job.cancel()
            self.label.setText(f"Cancelling {job.label}…")

    def _started(self, job: Job) -> None:
        if job.quiet:
            return
        self._jobs.append(job)
        self._refresh()

    def _progress(self, job: Job, _p: Progress) -> None:
        if job is self.current:
            self._refresh()

    def _finished(self, job: Job) -> None:
        if job in self._jobs:
            self._jobs.remove(job)
            self._refresh()

    def _refresh(self) -> None:
        job = self.current
        if job is None:
            self.setVisible(False)
            return
        more = f" (+{len(self._jobs) - 1})" if len(self._jobs) > 1 else ""
        p = job.progress
        text = job.label
        if p is not None and p.message:
            text = f"{job.label}: {p.message}"
        self.label.setText(text + more)
        if p is None or not p.total:
            self.bar.setRange(0, 0)  # busy indicator
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(round(1000 * min(1.0, p.done / p.total))))
        self.setVisible(True)
