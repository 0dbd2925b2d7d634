"""``reviewer study read STUDY --reader ID``: the reading window as an application of its own.

Opens the study's store (its SQLite file, or ``--db URL``), starts or resumes the reader and shows the reading
window full screen. With ``screenshot`` the instructions are skipped, the first case is rendered to a PNG once its
image is on screen, and the app exits (no reading is recorded beyond opening the session).
"""

from __future__ import annotations

import sys
from pathlib import Path


def run_reading(study: str, reader: str, url: str | None = None, full_screen: bool = True,
                screenshot: str | None = None, timeout_s: float = 120.0) -> int:
    from reviewer.gui.app import _install_excepthook, _no_display, get_app

    if screenshot is None and _no_display():
        print("error: no display found (DISPLAY / WAYLAND_DISPLAY unset): reading needs a screen. Run it on a "
              "desktop or under Xvfb.", file=sys.stderr)
        return 3
    app = get_app()
    from PySide6.QtCore import QEventLoop, QTimer

    from reviewer.gui.notifications import Notifier
    from reviewer.gui.reading.window import open_reading_window

    win = open_reading_window(study, reader, full_screen=full_screen and screenshot is None, url=url)
    notifier = Notifier(win)
    previous_hook = _install_excepthook(notifier)
    code = {"value": 0}
    # a screenshot runs its own loop: QCoreApplication.exit() would make every later nested loop (a caller's,
    # e.g. a test's) return at once until the next app.exec()
    loop = QEventLoop() if screenshot is not None else None
    if screenshot is not None:
        win.resize(1600, 1000)
        waited = {"n": 0}

        def poll() -> None:
            waited["n"] += 1
            s = win.session
            if s.screen in ("reading", "end") or waited["n"] * 0.2 > timeout_s:
                win.repaint()
                ok = win.grab().save(str(Path(screenshot)), "PNG")
                print(f"screenshot: {screenshot}" if ok else f"error: could not write {screenshot}", file=sys.stderr)
                code["value"] = 0 if ok and s.screen in ("reading", "end") else 1
                win.close()
                loop.exit(code["value"])
                return
            QTimer.singleShot(200, poll)

        win.start()
        QTimer.singleShot(400, poll)
    try:
        rc = loop.exec() if loop is not None else app.exec()
    finally:
        sys.excepthook = previous_hook
        win.close()
        win.deleteLater()
        app.processEvents()
    return code["value"] if screenshot is not None else int(rc)
