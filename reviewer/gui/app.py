"""Application entry point: ``run_app(paths=(), demo=None, screenshot=None) -> int``.

Creates the QApplication (name, organisation, icon, dark Fusion palette), the main window at 1600x1000, scans
the given paths, or opens the demo (CT in MPR with its ground-truth nodules, lung window, crosshair on the
largest nodule). With ``screenshot`` the window is rendered to a PNG once every job has finished, and the app
exits. Without a display on Linux, Qt's offscreen platform is used.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable

log = logging.getLogger(__name__)

APP_NAME = "Reviewer"
ORG_NAME = "reviewer"
ORG_DOMAIN = "reviewer.invalid"
WINDOW_SIZE = (1600, 1000)


def _no_display() -> bool:
    return (sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
            and not os.environ.get("QT_QPA_PLATFORM"))


def _ensure_platform() -> None:
    """Use the offscreen platform on a Linux machine without X11 or Wayland (CI, SSH, screenshots)."""
    if _no_display():
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def app_icon():
    from PySide6.QtGui import QIcon

    from reviewer.resources import RESOURCES

    path = RESOURCES / "icons" / "reviewer.svg"
    return QIcon(str(path)) if path.exists() else QIcon()


def dark_palette():
    from PySide6.QtGui import QColor, QPalette

    p = QPalette()
    role, group = QPalette.ColorRole, QPalette.ColorGroup
    colors = {
        role.Window: "#2b2d31", role.WindowText: "#e6e6e6", role.Base: "#1f2023", role.AlternateBase: "#27292d",
        role.ToolTipBase: "#f0f0f0", role.ToolTipText: "#111111", role.Text: "#e6e6e6", role.Button: "#34363b",
        role.ButtonText: "#e6e6e6", role.BrightText: "#ff5555", role.Highlight: "#2d6cdf",
        role.HighlightedText: "#ffffff", role.Link: "#6ea8fe", role.PlaceholderText: "#8a8d93",
    }
    for r, c in colors.items():
        p.setColor(r, QColor(c))
    for r in (role.WindowText, role.Text, role.ButtonText):
        p.setColor(group.Disabled, r, QColor("#808080"))
    return p


def get_app():
    """The QApplication (created once, with name, organisation, icon and the dark Fusion style)."""
    _ensure_platform()
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
        app.setStyle("Fusion")
        app.setPalette(dark_palette())
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setOrganizationName(ORG_NAME)
    app.setOrganizationDomain(ORG_DOMAIN)
    import reviewer

    app.setApplicationVersion(reviewer.__version__)
    app.setWindowIcon(app_icon())
    return app


def create_main_window(paths: Iterable[str | os.PathLike] = (), demo: Any = None, state: Any = None):
    """Build the main window (not shown), then start scanning ``paths`` and/or opening ``demo``."""
    app = get_app()
    from reviewer.gui.main_window import MainWindow

    window = MainWindow(state)
    window.setWindowIcon(app_icon())
    w, h = WINDOW_SIZE
    screen = app.primaryScreen()
    if screen is not None and app.platformName() not in ("offscreen", "minimal"):
        avail = screen.availableGeometry()
        w, h = min(w, int(avail.width() * 0.95)), min(h, int(avail.height() * 0.92))
    window.resize(w, h)
    paths = [os.fspath(p) for p in paths]
    if demo is not None:
        window.open_demo(demo)
    if paths:
        window.open_paths(paths)
    return window


class _Screenshot:
    """Save ``window.grab()`` once the window is idle (no job running, demo done) and quit the event loop."""

    def __init__(self, app: Any, window: Any, path: str | os.PathLike, wait_demo: bool, timeout_s: float = 300.0):
        from PySide6.QtCore import QTimer

        self.app, self.window, self.path = app, window, Path(path)
        self.demo_ok: bool | None = None if wait_demo else True
        self.code = 1
        self.t0 = time.monotonic()
        self.timeout_s = timeout_s
        self.idle_since: float | None = None
        window.demoOpened.connect(self._demo_done)
        self.timer = QTimer(window)
        self.timer.setInterval(100)
        self.timer.timeout.connect(self._poll)
        self.timer.start()

    def _demo_done(self, ok: bool) -> None:
        self.demo_ok = bool(ok)

    def _poll(self) -> None:
        now = time.monotonic()
        busy = bool(self.window.runner.active_jobs()) or self.demo_ok is None
        if busy:
            self.idle_since = None
            if now - self.t0 < self.timeout_s:
                return
            log.error("screenshot: still busy after %.0f s, saving what is shown", self.timeout_s)
        elif self.idle_since is None:
            self.idle_since = now  # let the views render the final state before grabbing
            return
        elif now - self.idle_since < 0.4:
            return
        self.timer.stop()
        self.save(ok=not busy and self.demo_ok is not False)

    def save(self, ok: bool) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.window.repaint()
        pixmap = self.window.grab()
        saved = pixmap.save(str(self.path), "PNG")
        if saved:
            print(f"screenshot: {self.path} ({pixmap.width()}x{pixmap.height()})", file=sys.stderr)
        else:
            print(f"error: could not write the screenshot {self.path}", file=sys.stderr)
        for n in self.window.notifier.notices:
            if n.level != "info":
                print(f"{n.level}: {n.message}", file=sys.stderr)
        self.code = 0 if (saved and ok) else 1
        self.app.exit(self.code)


def _install_excepthook(notifier: Any):
    """Unhandled exceptions in slots become error notices (with the traceback in the log); the app goes on."""
    previous = sys.excepthook

    def hook(exc_type, exc, tb):  # noqa: ANN001
        if issubclass(exc_type, KeyboardInterrupt):
            return previous(exc_type, exc, tb)
        log.error("unhandled exception", exc_info=(exc_type, exc, tb))
        try:
            notifier.exception(exc)
        except Exception:  # noqa: BLE001 - never fail inside the hook
            previous(exc_type, exc, tb)

    sys.excepthook = hook
    return previous


def run_app(paths: Iterable[str | os.PathLike] = (), demo: Any = None, screenshot: str | os.PathLike | None = None) -> int:
    """Open the GUI; returns the exit code. ``screenshot``: render to this PNG when everything loaded, then exit."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if screenshot is None and _no_display():
        print("error: no display found (DISPLAY / WAYLAND_DISPLAY unset): the window cannot be shown here. "
              "Run it on a desktop or under Xvfb, use --screenshot PNG with `reviewer demo`, or the headless "
              "commands (reviewer --help).", file=sys.stderr)
        return 3
    app = get_app()
    window = create_main_window(paths, demo)
    previous_hook = _install_excepthook(window.notifier)
    shot = _Screenshot(app, window, screenshot, wait_demo=demo is not None) if screenshot else None
    window.show()
    window.focus_viewer()
    try:
        code = app.exec()
    finally:
        sys.excepthook = previous_hook
        window.close()
        window.deleteLater()
        app.processEvents()
    return shot.code if shot is not None else int(code)
