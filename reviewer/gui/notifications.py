"""Non-modal notices: toasts over the window, a status-bar line and a log dock; plus the one error boundary.

Nothing here opens a modal dialog: a bad file produces a notice naming the file and the problem, and the app
keeps running. ``error_boundary`` is the equivalent of Slicer's ``tryWithErrorDisplay``: wrap a slot (as a
decorator or a ``with`` block) and any exception becomes an error notice with its traceback in the log.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from reviewer.errors import ReviewerError

log = logging.getLogger("reviewer.gui")

LEVELS = ("info", "warning", "error")
_COLORS = {"info": "#2d6cdf", "warning": "#c98a00", "error": "#e53935"}
_TIMEOUT_MS = {"info": 5_000, "warning": 12_000, "error": 20_000}


@dataclass
class Notice:
    level: str  # 'info' | 'warning' | 'error'
    message: str
    detail: str = ""  # traceback or longer explanation, shown in the log dock's tooltip
    time: float = field(default_factory=time.time)

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"


class Notifier(QObject):
    """Collects every notice of the application; views (toasts, log dock, status bar) subscribe to ``notified``."""

    notified = Signal(object)  # Notice

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.notices: list[Notice] = []

    def notify(self, message: str, level: str = "info", detail: str = "") -> Notice:
        if level not in LEVELS:
            raise ValueError(f"unknown notice level {level!r}")
        notice = Notice(level, message, detail)
        self.notices.append(notice)
        getattr(log, "info" if level == "info" else level)("%s%s", message, f"\n{detail}" if detail else "")
        self.notified.emit(notice)
        return notice

    def info(self, message: str) -> Notice:
        return self.notify(message, "info")

    def warning(self, message: str, detail: str = "") -> Notice:
        return self.notify(message, "warning", detail)

    def error(self, message: str, detail: str = "") -> Notice:
        return self.notify(message, "error", detail)

    def exception(self, exc: BaseException, context: str = "", tb: str = "") -> Notice:
        """An error notice for an exception; user-facing errors (InputError...) keep their own message."""
        return self.error(describe_exception(exc, context), tb or _format_tb(exc))

    def messages(self, level: str | None = None) -> list[str]:
        return [n.message for n in self.notices if level is None or n.level == level]


def describe_exception(exc: BaseException, context: str = "") -> str:
    """The one-line message shown to the user: ReviewerError text as is, else the exception type and text."""
    if isinstance(exc, (ReviewerError, OSError)):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return f"{context}: {text}" if context else text


def _format_tb(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


@contextlib.contextmanager
def error_boundary(notifier: Notifier | Callable[[], Notifier], context: str = "") -> Iterator[None]:
    """Turn any exception in the block (or decorated function) into an error notice; never re-raise.

    Like Slicer's ``tryWithErrorDisplay``: restores an override cursor set inside the block, logs the
    traceback, and lets the application go on. ``notifier`` may be a callable returning the notifier.
    """
    cursors = QApplication.overrideCursor() is not None
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - this is the boundary
        if not cursors:
            while QApplication.overrideCursor() is not None:
                QApplication.restoreOverrideCursor()
        n = notifier() if callable(notifier) and not isinstance(notifier, Notifier) else notifier
        n.exception(exc, context)


def cards_or_warn(notifier: "Notifier", task: str) -> list:
    """The model cards of a task; a broken card folder becomes a warning and an empty list, never a broken panel."""
    from reviewer.models.cards import list_cards

    try:
        return list_cards(task=task)
    except Exception as exc:  # noqa: BLE001 - a broken card must not break the panel
        notifier.warning(f"Model cards could not be read: {exc}")
        return []


def guarded(context: str = "", attr: str = "notifier") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Method decorator: run the slot inside :func:`error_boundary` with ``self.<attr>`` as notifier."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            with error_boundary(getattr(self, attr), context):
                return fn(self, *args, **kwargs)
            return None

        return wrapper

    return deco


# -- views ------------------------------------------------------------------------------------------------------
class _Toast(QFrame):
    def __init__(self, notice: Notice, parent: QWidget):
        super().__init__(parent)
        self.notice = notice
        self.setObjectName("toast")
        color = _COLORS[notice.level]
        self.setStyleSheet(
            f"#toast {{ background: rgba(32, 32, 36, 235); border: 1px solid {color}; border-left: 5px solid {color};"
            " border-radius: 4px; } QLabel { color: #eeeeee; background: transparent; }"
        )
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 6, 4, 6)
        self.label = QLabel(f"<b>{notice.level.capitalize()}</b>: {_escape(notice.message)}")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.dismiss)
        lay.addWidget(self.label, 1)
        lay.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        QTimer.singleShot(_TIMEOUT_MS[notice.level], self, self.dismiss)

    dismissed = False

    def dismiss(self) -> None:
        self.dismissed = True
        self.hide()
        self.deleteLater()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class ToastArea(QWidget):
    """A stack of toasts in the bottom-left corner of its parent (over the Messages dock, not the images)."""

    MAX = 4

    def __init__(self, notifier: Notifier, parent: QWidget):
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, False)
        self._lay = QVBoxLayout(self)
        self._lay.setContentsMargins(0, 0, 0, 0)
        self._lay.setSpacing(6)
        self._lay.addStretch(1)
        self.setFixedWidth(340)
        notifier.notified.connect(self.show_notice)
        parent.installEventFilter(self)
        self.hide()

    def toasts(self) -> list[_Toast]:
        return [w for w in self.findChildren(_Toast) if not w.dismissed]

    def show_notice(self, notice: Notice) -> None:
        toasts = self.toasts()
        for old in toasts[: max(0, len(toasts) - self.MAX + 1)]:
            old.dismiss()
        toast = _Toast(notice, self)
        toast.destroyed.connect(self._relayout)
        self._lay.addWidget(toast)
        toast.show()
        self._relayout()

    def _relayout(self, *_: Any) -> None:
        parent = self.parentWidget()
        if parent is None:
            return
        visible = self.toasts()
        if not visible:
            self.hide()
            return
        self.adjustSize()
        h = min(self.sizeHint().height(), max(60, parent.height() - 80))
        self.resize(self.width(), h)
        self.move(12, parent.height() - h - 40)
        self.show()
        self.raise_()

    def eventFilter(self, obj: QObject, event: Any) -> bool:  # follow the parent's size
        if event.type() == event.Type.Resize:
            self._relayout()
        return False


class LogDock(QDockWidget):
    """Dock listing every notice with its time; the tooltip of an entry holds its detail (traceback)."""

    def __init__(self, notifier: Notifier, parent: QWidget | None = None):
        super().__init__("Messages", parent)
        self.setObjectName("messagesDock")
        self.list = QListWidget()
        self.list.setAlternatingRowColors(True)
        self.setWidget(self.list)
        for n in notifier.notices:
            self.add(n)
        notifier.notified.connect(self.add)

    def add(self, notice: Notice) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(notice.time))
        item = QListWidgetItem(f"{stamp}  {notice.level.upper():8s} {notice.message}")
        if notice.level != "info":
            item.setForeground(QColor(_COLORS[notice.level]))
        if notice.detail:
            item.setToolTip(notice.detail[-4000:])
        self.list.addItem(item)
        self.list.scrollToBottom()

