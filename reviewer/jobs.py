"""One job abstraction: long work is a plain function taking a :class:`JobToken`.

The function reports progress with ``token.progress(done, total, message)`` and calls ``token.check()`` at
safe points, which raises :class:`Cancelled` once cancellation was requested. The GUI runs such a function on
a worker thread (``reviewer.gui.jobs_qt``); the CLI runs it with a progress bar (:func:`run_with_progress_bar`);
tests call it directly with a plain token.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

T = TypeVar("T")


class Cancelled(Exception):
    """Raised inside a job when the user cancelled it."""


@dataclass
class Progress:
    done: float
    total: float | None
    message: str


class JobToken:
    """Progress sink and cancel flag shared by a job and whoever runs it. Thread-safe."""

    def __init__(self, on_progress: Callable[[Progress], None] | None = None, min_interval_s: float = 0.05):
        self._cancel = threading.Event()
        self._on_progress = on_progress
        self._min_interval = min_interval_s
        self._last_emit = 0.0
        self.last: Progress | None = None

    # -- cancellation ------------------------------------------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        if self._cancel.is_set():
            raise Cancelled()

    # -- progress ----------------------------------------------------------------------------------------------
    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        """Report progress and check for cancellation. Callbacks are rate-limited except for the final step."""
        self.check()
        p = Progress(done, total, message)
        self.last = p
        if self._on_progress is None:
            return
        now = time.monotonic()
        final = total is not None and done >= total
        if final or now - self._last_emit >= self._min_interval:
            self._last_emit = now
            self._on_progress(p)

    def sub(self, start: float, stop: float, total: float) -> "SubToken":
        """A token mapping a sub-task's 0..1 progress onto [start, stop] of ``total``."""
        return SubToken(self, start, stop, total)


class SubToken(JobToken):
    def __init__(self, parent: JobToken, start: float, stop: float, total: float):
        self._parent = parent
        self._range = (start, stop, total)
        self.last = None

    def cancel(self) -> None:
        self._parent.cancel()

    @property
    def cancelled(self) -> bool:
        return self._parent.cancelled

    def check(self) -> None:
        self._parent.check()

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        start, stop, parent_total = self._range
        frac = 0.0 if not total else min(1.0, done / total)
        self._parent.progress(start + frac * (stop - start), parent_total, message)


def run_with_progress_bar(fn: Callable[..., T], *args: Any, label: str = "", **kwargs: Any) -> T:
    """Run ``fn(*args, token=..., **kwargs)`` with a tqdm progress bar on stderr; Ctrl+C cancels the job."""
    from tqdm import tqdm

    bar = tqdm(total=100, desc=label or getattr(fn, "__name__", "job"), unit="%", file=sys.stderr,
               leave=False, disable=None, bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}")

    def on_progress(p: Progress) -> None:
        if p.total:
            bar.n = round(100.0 * p.done / p.total, 1)
        if p.message:
            bar.set_postfix_str(p.message, refresh=False)
        bar.refresh()

    token = JobToken(on_progress)
    try:
        return fn(*args, token=token, **kwargs)
    except KeyboardInterrupt:
        token.cancel()
        raise Cancelled() from None
    finally:
        bar.close()
