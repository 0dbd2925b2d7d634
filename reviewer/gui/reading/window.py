"""The full-screen reading window: a thin Qt layer over :class:`reviewer.studies.reading.ReadingSession`.

Screens (one QStackedWidget): instructions -> (loading -> reading)* -> end, with a paused screen that hides the
image. The case image loads on a worker thread (:class:`JobRunner`); every mark, rating and submission is written
to the study store at once by the session. Blinded: the window title, captions, tooltips and texts never show
the study's condition labels, models, case ids or file names (the pane is called "image", the volume arrives
with its names removed).

Keys (handled here; the image pane passes them up): 1-5 rate the selected mark (else the case, when the study
asks for a case rating); Delete / Backspace delete the selected mark; Tab selects the next mark; N = no lesion;
Enter = submit; P = pause / resume; Alt+Left / Alt+Right = back / forward (when the study allows going back);
F1-F5 window presets, I invert, R reset, wheel / Up / Down slices; F11 toggles full screen, Escape leaves it.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QKeyEvent, QPalette
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QStackedWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from reviewer.gui.jobs_qt import JobRunner
from reviewer.gui.reading.canvas import COLOR_RATED, COLOR_SELECTED, COLOR_UNRATED, ReadingSliceView
from reviewer.studies.reading import CASE_WORDS_1_5, RATING_WORDS_1_5, ReadingSession
from reviewer.view.state import ViewerState, is_thin_stack

log = logging.getLogger(__name__)

WINDOW_TITLE = "Reader study"
PANE = "image"  # the one pane's name: neutral, never the file or condition
HEARTBEAT_MS = 5000

STYLE = """
QWidget#readingRoot { background: #000000; }
QWidget#topBar, QWidget#sidePanel { background: #141518; }
QLabel { color: #d8d8d8; }
QLabel#counter { color: #ffffff; font-size: 20pt; font-weight: 600; }
QLabel#message { color: #ffb347; font-size: 12pt; }
QLabel#condition { color: #9ecbff; font-size: 14pt; }
QLabel#timer { color: #d8d8d8; font-size: 14pt; }
QLabel#section { color: #9aa0a6; font-size: 10pt; font-weight: 600; text-transform: uppercase; }
QLabel#selectedRating { color: #ffffff; font-size: 13pt; }
QLabel#help { color: #80858c; font-size: 9pt; }
QLabel#big { color: #e8e8e8; font-size: 20pt; }
QLabel#sub { color: #b8bcc2; font-size: 13pt; }
QPushButton { background: #26282d; color: #e6e6e6; border: 1px solid #3a3d44; border-radius: 4px;
              padding: 6px 10px; font-size: 11pt; }
QPushButton:hover { background: #30333a; }
QPushButton:checked { background: #2d6cdf; border-color: #5b8ff0; color: #ffffff; }
QPushButton:disabled { color: #5c5f66; border-color: #2a2c31; }
QPushButton#primary { background: #2d6cdf; border-color: #5b8ff0; color: #ffffff; font-weight: 600; }
QPushButton#primary:disabled { background: #1d2a44; color: #6f7a8f; }
QPushButton#rating { font-size: 14pt; font-weight: 600; min-width: 34px; padding: 6px 4px; }
QListWidget { background: #101114; color: #e0e0e0; border: 1px solid #2a2c31; font-size: 11pt; }
QListWidget::item:selected { background: #1f4fa8; }
QTextBrowser { background: #101114; color: #e0e0e0; border: none; font-size: 13pt; }
"""


def load_case_image(session: ReadingSession, case_token: str, token=None):
    """Job: the (blinded) image of the case ``case_token``; runs on a worker thread."""
    return session.load_image(case_token)


def _label(text: str = "", name: str = "", wrap: bool = False) -> QLabel:
    lab = QLabel(text)
    if name:
        lab.setObjectName(name)
    lab.setWordWrap(wrap)
    return lab


def _button(text: str, name: str = "", checkable: bool = False) -> QPushButton:
    b = QPushButton(text)
    if name:
        b.setObjectName(name)
    b.setCheckable(checkable)
    b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys stay with the image / window
    return b


def _centred_page(title: str, subtitle: str, button_text: str,
                  on_click) -> tuple[QWidget, QLabel, QLabel, QPushButton]:
    """A full-window page: a big title, a subtitle and one primary button, centred."""
    page = QWidget()
    lay = QVBoxLayout(page)
    lay.addStretch(1)
    labels = []
    for text, role in ((title, "big"), (subtitle, "sub")):
        lab = _label(text, role)
        lab.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(lab)
        labels.append(lab)
    button = _button(button_text, "primary")
    button.clicked.connect(on_click)
    row = QHBoxLayout()
    row.addStretch(1)
    row.addWidget(button)
    row.addStretch(1)
    lay.addLayout(row)
    lay.addStretch(1)
    return page, labels[0], labels[1], button


class RatingInput(QWidget):
    """Buttons 1..5, or a 0-100 slider with its value; emits ``rated(value)``. ``show_value(v)`` reflects one."""

    rated = Signal(float)

    def __init__(self, scale: str, parent: QWidget | None = None, words: dict[int, str] | None = None):
        super().__init__(parent)
        self.scale = scale
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)
        self.buttons: list[QPushButton] = []
        self.slider: QSlider | None = None
        self.value_label: QLabel | None = None
        if scale == "1-5":
            self.group = QButtonGroup(self)
            self.group.setExclusive(True)
            for v in range(1, 6):
                b = _button(str(v), "rating", checkable=True)
                if words:
                    b.setToolTip(f"{v}: {words[v]}")
                self.group.addButton(b, v)
                lay.addWidget(b)
                self.buttons.append(b)
                b.clicked.connect(lambda _c=False, v=v: self.rated.emit(float(v)))
        else:
            self.slider = QSlider(Qt.Orientation.Horizontal)
            self.slider.setRange(0, 100)
            self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            self.value_label = _label("–", "selectedRating")
            self.value_label.setMinimumWidth(40)
            lay.addWidget(self.slider, 1)
            lay.addWidget(self.value_label)
            self.slider.valueChanged.connect(lambda v: self.value_label.setText(str(v)))
            self.slider.sliderReleased.connect(lambda: self.rated.emit(float(self.slider.value())))

    def show_value(self, value: float | None) -> None:
        if self.scale == "1-5":
            self.group.setExclusive(False)
            for i, b in enumerate(self.buttons, start=1):
                b.setChecked(value is not None and int(value) == i)
            self.group.setExclusive(True)
        else:
            self.slider.blockSignals(True)
            self.slider.setValue(int(round(value)) if value is not None else 50)
            self.slider.blockSignals(False)
            self.value_label.setText("–" if value is None else f"{value:g}")


class ReadingWindow(QWidget):
    """Reading mode for one reader of one study. ``session``: a ReadingSession (see ``ReadingSession.open``)."""

    closed = Signal()

    def __init__(self, session: ReadingSession, parent: QWidget | None = None, own_store: bool = False):
        super().__init__(parent)
        self.session = session
        self._own_store = own_store
        self.setObjectName("readingRoot")
        self.setWindowTitle(WINDOW_TITLE)
        self.setStyleSheet(STYLE)
        self.setAutoFillBackground(True)
        pal = self.palette()
        pal.setColor(QPalette.ColorRole.Window, QColor("black"))
        self.setPalette(pal)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.runner = JobRunner(self, max_threads=1)
        self.state = ViewerState()
        self._viewer: Any = None
        self._closing = False

        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)
        root.addWidget(self._build_top_bar())
        self.stack = QStackedWidget()
        root.addWidget(self.stack, 1)
        self.pages: dict[str, QWidget] = {}
        self.pages["instructions"] = self._build_instructions()
        self.pages["loading"] = self._build_centered("loading")
        self.pages["reading"] = self._build_reading()
        self.pages["paused"] = self._build_paused()
        self.pages["end"] = self._build_end()
        for page in self.pages.values():
            self.stack.addWidget(page)

        ev = session.events
        ev.screen.connect(self._on_screen)
        ev.case.connect(self._on_case)
        ev.marks.connect(self._on_marks)
        ev.selection.connect(self._on_marks)
        ev.case_rating.connect(self._on_case_rating)
        ev.message.connect(self._on_message)

        self.heartbeat_timer = QTimer(self)
        self.heartbeat_timer.setInterval(HEARTBEAT_MS)
        self.heartbeat_timer.timeout.connect(self._heartbeat)
        self.heartbeat_timer.start()
        self.tick_timer = QTimer(self)
        self.tick_timer.setInterval(500)
        self.tick_timer.timeout.connect(self._tick)
        self.tick_timer.start()

        self._on_case(session.case)
        self._on_screen(session.screen)
        if session.screen == "instructions" and session.case is not None:
            # read the first image while the reader reads the instructions (it is cached for that case only)
            self.runner.submit(load_case_image, session, session.case.token, key="prefetch", quiet=True,
                               label="Preparing the first case", on_error=lambda exc: None)

    # -- building ------------------------------------------------------------------------------------------------
    def _build_top_bar(self) -> QWidget:
        bar = QWidget()
        bar.setObjectName("topBar")
        lay = QHBoxLayout(bar)
        lay.setContentsMargins(16, 6, 16, 6)
        self.counter = _label("", "counter")
        self.condition_label = _label("", "condition")  # only an unblinded study (hide_condition = false) fills it
        self.condition_label.setVisible(False)
        self.message = _label("", "message")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.timer_label = _label("", "timer")
        self.pause_button = _button("Pause (P)")
        self.pause_button.clicked.connect(self.toggle_pause)
        lay.addWidget(self.counter)
        lay.addSpacing(16)
        lay.addWidget(self.condition_label)
        lay.addWidget(self.message, 1)
        lay.addWidget(self.timer_label)
        lay.addSpacing(12)
        lay.addWidget(self.pause_button)
        return bar

    def _build_centered(self, kind: str) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        lay.addStretch(1)
        lab = _label("", "big")
        lab.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(lab)
        lay.addStretch(1)
        setattr(self, f"{kind}_label", lab)
        return page

    def _build_instructions(self) -> QWidget:
        page = QWidget()
        outer = QHBoxLayout(page)
        outer.addStretch(1)
        col = QVBoxLayout()
        outer.addLayout(col, 3)
        outer.addStretch(1)
        col.addStretch(1)
        title = _label("Instructions", "big")
        col.addWidget(title)
        self.instructions_text = QTextBrowser()
        self.instructions_text.setOpenExternalLinks(False)
        self.instructions_text.setMinimumHeight(320)
        col.addWidget(self.instructions_text, 4)
        self.start_button = _button("Start reading", "primary")
        self.start_button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.start_button.clicked.connect(self.start)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.start_button)
        col.addLayout(row)
        col.addStretch(1)
        return page

    def _instructions_html(self) -> str:
        s = self.session
        own = s.instructions.strip() or "Read each case and report what you find."
        paras = "".join(f"<p>{_esc(p)}</p>" for p in own.split("\n\n") if p.strip())
        how = []
        if s.uses_marks:
            how.append("Click the image where you see a lesion to place a mark; rate how confident you are "
                       + ("with the keys 1 to 5 (1 very unlikely … 5 definite)." if s.rating_scale == "1-5"
                          else "with the slider (0 to 100)."))
            how.append("Drag a mark to move it; Delete removes the selected mark; Tab selects the next one.")
            how.append("<b>No lesion</b> (N) submits a case without marks; <b>Submit</b> (Enter) submits the marks.")
        if s.uses_case_rating:
            how.append("Give every case an overall rating of how likely it holds a lesion "
                       + ("(1 to 5; keys 1-5 when no mark is selected)." if s.rating_scale == "1-5"
                          else "(slider, 0 to 100)."))
        how.append("Scroll with the mouse wheel or Up / Down; left-drag adjusts the window, F1-F5 are window presets, "
                   "I inverts, R resets the view.")
        how.append("Going back to earlier cases is " + ("allowed (Alt+Left)." if s.allow_back else "not possible: "
                                                         "each submission is final."))
        if s.definition.time_limit_s:
            how.append(f"Each case has a time limit of {s.definition.time_limit_s:g} s.")
        how.append("Pause (P) hides the image and stops the clock; time also stops while this window is not in "
                   "front. Everything is saved as you go: you can close the window at any time and resume later.")
        c = s.case
        where = ""
        if c is not None:
            where = (f"<p><b>{c.n_cases} cases.</b></p>" if c.index == 0 and not c.marks else
                     f"<p><b>Welcome back: you continue at case {c.index + 1} of {c.n_cases}.</b></p>")
        return paras + where + "<ul>" + "".join(f"<li>{h}</li>" for h in how) + "</ul>"

    def _build_reading(self) -> QWidget:
        page = QWidget()
        lay = QHBoxLayout(page)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        from reviewer.gui.viewer import ViewerWidget

        self.viewer_host = QVBoxLayout()
        self.viewer_host.setContentsMargins(0, 0, 0, 0)
        host = QWidget()
        host.setLayout(self.viewer_host)
        lay.addWidget(host, 1)
        self._viewer_class = ViewerWidget
        lay.addWidget(self._build_side_panel())
        return page

    def _build_side_panel(self) -> QWidget:
        s = self.session
        panel = QWidget()
        panel.setObjectName("sidePanel")
        panel.setFixedWidth(300)
        lay = QVBoxLayout(panel)
        lay.setContentsMargins(14, 14, 14, 14)
        lay.setSpacing(8)
        self.marks_box = QWidget()
        mb = QVBoxLayout(self.marks_box)
        mb.setContentsMargins(0, 0, 0, 0)
        mb.addWidget(_label("Marks", "section"))
        self.mark_list = QListWidget()
        self.mark_list.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.mark_list.setMaximumHeight(130)
        self.mark_list.itemClicked.connect(self._list_clicked)
        mb.addWidget(self.mark_list)
        self.selected_label = _label("", "selectedRating", wrap=True)
        mb.addWidget(self.selected_label)
        self.mark_rating = RatingInput(s.rating_scale, words=RATING_WORDS_1_5)
        self.mark_rating.rated.connect(self._rate_selected)
        mb.addWidget(self.mark_rating)
        self.delete_button = _button("Delete mark (Del)")
        self.delete_button.clicked.connect(lambda: self.session.delete_mark())
        mb.addWidget(self.delete_button)
        lay.addWidget(self.marks_box)
        self.marks_box.setVisible(s.uses_marks)

        self.case_box = QWidget()
        cb = QVBoxLayout(self.case_box)
        cb.setContentsMargins(0, 8, 0, 0)
        cb.addWidget(_label("Case rating: lesion present?", "section"))
        self.case_rating_input = RatingInput(s.rating_scale, words=CASE_WORDS_1_5)
        self.case_rating_input.rated.connect(lambda v: self.session.set_case_rating(v))
        cb.addWidget(self.case_rating_input)
        self.case_rating_label = _label("", "selectedRating", wrap=True)
        cb.addWidget(self.case_rating_label)
        lay.addWidget(self.case_box)
        self.case_box.setVisible(s.uses_case_rating)

        lay.addStretch(1)
        self.no_lesion_button = _button("No lesion (N)")
        self.no_lesion_button.clicked.connect(lambda: self.session.no_lesion())
        self.no_lesion_button.setVisible(s.uses_marks)
        self.submit_button = _button("Submit case (Enter)", "primary")
        self.submit_button.clicked.connect(lambda: self.session.submit())
        lay.addWidget(self.no_lesion_button)
        lay.addWidget(self.submit_button)
        nav = QHBoxLayout()
        self.back_button = _button("‹ Back")
        self.back_button.clicked.connect(lambda: self.session.back())
        self.forward_button = _button("Forward ›")
        self.forward_button.clicked.connect(lambda: self.session.forward())
        nav.addWidget(self.back_button)
        nav.addWidget(self.forward_button)
        self.nav_box = QWidget()
        self.nav_box.setLayout(nav)
        nav.setContentsMargins(0, 0, 0, 0)
        self.nav_box.setVisible(s.allow_back)
        lay.addWidget(self.nav_box)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setStyleSheet("color: #2a2c31;")
        lay.addWidget(line)
        keys = ["Click: mark  ·  drag a mark: move", "Wheel / Up / Down: slice",
                "Left-drag: window  ·  F1-F5: presets", "I: invert  ·  R: reset view"]
        self.help_label = _label("\n".join(keys), "help", wrap=True)
        lay.addWidget(self.help_label)
        return panel

    def _build_paused(self) -> QWidget:
        page, _, _, self.resume_button = _centred_page(
            "Paused", "The image is hidden and the clock is stopped.", "Resume (P)", self.toggle_pause)
        return page

    def _build_end(self) -> QWidget:
        page, self.end_label, self.end_detail, self.close_button = _centred_page("", "", "Close", self.close)
        return page

    # -- session -> widgets ----------------------------------------------------------------------------------
    def _on_screen(self, screen: str) -> None:
        self.stack.setCurrentWidget(self.pages[screen])
        self.pause_button.setVisible(screen in ("reading", "loading"))
        if screen == "instructions":
            self.instructions_text.setHtml(self._instructions_html())
            self.start_button.setFocus()
        elif screen == "loading":
            self.loading_label.setText(f"Loading {self.session.counter_text().lower()}…")
            self._request_image()
        elif screen == "reading":
            if self._viewer is not None and self._viewer.views:
                self._viewer.views[0].setFocus()
        elif screen == "end":
            self._show_end()
        if screen != "reading":
            self.setFocus()
        self._update_controls()

    def _on_case(self, case: Any) -> None:
        self.counter.setText("Finished" if self.session.screen == "end" else self.session.counter_text())
        label = getattr(case, "condition_label", None) if case is not None else None
        self.condition_label.setText(label or "")
        self.condition_label.setVisible(bool(label))
        if case is not None and case.submitted and not self.session.message:
            self.message.setText("An earlier case: changes are saved at once; Enter submits it again.")
        self._on_marks()
        self._on_case_rating(self.session.case_rating)
        self._update_controls()

    def _on_marks(self, _value: Any = None) -> None:
        s = self.session
        self.mark_list.blockSignals(True)
        self.mark_list.clear()
        for n, m in enumerate(s.marks, start=1):
            item = QListWidgetItem(f"Mark {n}:  {s.rating_words(m.rating)}")
            item.setData(Qt.ItemDataRole.UserRole, m.mark_id)
            color = COLOR_SELECTED if m.mark_id == s.selected else (COLOR_RATED if m.rating is not None
                                                                     else COLOR_UNRATED)
            item.setForeground(color)
            self.mark_list.addItem(item)
            if m.mark_id == s.selected:
                item.setSelected(True)
        self.mark_list.blockSignals(False)
        sel = s.selected_mark
        if sel is None:
            self.selected_label.setText("Click the image to mark a lesion." if not s.marks
                                        else "Click a mark to select it.")
        else:
            n = [m.mark_id for m in s.marks].index(sel.mark_id) + 1
            self.selected_label.setText(f"Mark {n}: {s.rating_words(sel.rating)}")
        self.mark_rating.show_value(None if sel is None else sel.rating)
        self.mark_rating.setEnabled(sel is not None)
        self._update_controls()

    def _on_case_rating(self, value: float | None) -> None:
        self.case_rating_input.show_value(value)
        self.case_rating_label.setText(self.session.rating_words(value, case=True))
        self._update_controls()

    def _on_message(self, text: str) -> None:
        self.message.setText(text)

    def _update_controls(self) -> None:
        s = self.session
        editable = s.editable
        has_marks = bool(s.marks)
        self.delete_button.setEnabled(editable and s.selected is not None)
        self.no_lesion_button.setEnabled(editable and not has_marks)
        self.submit_button.setEnabled(editable and (has_marks or s.uses_case_rating))
        self.case_rating_input.setEnabled(editable)
        self.back_button.setEnabled(editable and s.can_go_back)
        self.forward_button.setEnabled(editable and s.can_go_forward)

    def _show_end(self) -> None:
        summ = self.session.summary()
        self.end_label.setText("All cases are read. Thank you!")
        marks = f"{summ.n_marks} mark{'' if summ.n_marks == 1 else 's'}"
        self.end_detail.setText(f"{summ.n_submitted} of {summ.n_cases} cases submitted, {marks}, "
                                f"{duration_text(summ.active_s)} of active reading. You can close this window.")
        self.counter.setText("Finished")
        self.timer_label.setText("")

    # -- loading ---------------------------------------------------------------------------------------------------
    def _request_image(self) -> None:
        tok = self.session.needs_image()
        if tok is None:
            return
        self.runner.submit(load_case_image, self.session, tok, key="case", label="Loading the case",
                           on_result=lambda vol, t=tok: self._image_ready(t, vol),
                           on_error=lambda exc: self.session.image_failed(str(exc)))

    def _image_ready(self, case_token: str, volume: Any) -> None:
        s = self.session
        if s.case is None or s.case.token != case_token:
            return
        if self._viewer is None:
            self._viewer = self._viewer_class(self.state, view_class=ReadingSliceView)
            self.viewer_host.addWidget(self._viewer)
        with self.state.batch():
            self.state.set_primary(volume, PANE)
            if volume.shape[0] > 1 and not is_thin_stack(volume):
                self.state.set_orientation("axial")  # hanging protocol: volumes axial; 2D / thin stacks as acquired
            c = s.case
            if c.window is not None:
                self.state.set_window(*c.window)
            self.state.set_inverted(bool(c.invert))
        self._attach_views()
        s.image_loaded(case_token)

    def _attach_views(self) -> None:
        for v in self._viewer.views:
            if isinstance(v, ReadingSliceView) and v.session is not self.session:
                v.attach(self.session)
                v.key_handler = self.handle_key
            v.draw_marks()

    @property
    def canvas(self) -> ReadingSliceView | None:
        """The image pane (None before the first case loaded)."""
        if self._viewer is None or not self._viewer.views:
            return None
        return self._viewer.views[0]

    # -- actions ---------------------------------------------------------------------------------------------------
    def start(self) -> None:
        self.session.begin()

    def toggle_pause(self) -> None:
        if self.session.screen == "paused":
            self.session.resume()
        else:
            self.session.pause()

    def _rate_selected(self, value: float) -> None:
        s = self.session
        if s.selected is not None:
            s.rate_mark(s.selected, value)

    def _list_clicked(self, item: QListWidgetItem) -> None:
        self.session.select(item.data(Qt.ItemDataRole.UserRole))

    def _heartbeat(self) -> None:
        try:
            self.session.heartbeat()
        except Exception:  # noqa: BLE001 - a failed heartbeat loses a few seconds of timing, never the reading
            log.exception("heartbeat failed")

    def _tick(self) -> None:
        s = self.session
        lim = s.definition.time_limit_s
        if lim is None or s.screen != "reading":
            if lim is None:
                self.timer_label.setText("")
            return
        left = s.time_left()
        if left is None:
            return
        self.timer_label.setText(f"Time left {int(left) // 60}:{int(left) % 60:02d}")
        if left <= 0:
            s.submit_timed_out()

    def keyPressEvent(self, ev: QKeyEvent) -> None:  # noqa: N802
        if self.handle_key(ev.key(), ev.modifiers()):
            ev.accept()
            return
        super().keyPressEvent(ev)

    def handle_key(self, key: int, modifiers=Qt.KeyboardModifier.NoModifier) -> bool:
        """The reading keys (module docstring); True when the key was used."""
        K = Qt.Key
        s = self.session
        screen = s.screen
        alt = bool(modifiers & Qt.KeyboardModifier.AltModifier)
        if key == K.Key_F11:
            self.showNormal() if self.isFullScreen() else self.showFullScreen()
            return True
        if key == K.Key_Escape and self.isFullScreen():
            self.showNormal()
            return True
        if screen == "instructions":
            if key in (K.Key_Return, K.Key_Enter):
                self.start()
                return True
            return False
        if key == K.Key_P:
            self.toggle_pause()
            return True
        if screen != "reading":
            return False
        if K.Key_1 <= key <= K.Key_5 and s.rating_scale == "1-5":
            s.rate(float(key - K.Key_0))
            return True
        if key in (K.Key_Delete, K.Key_Backspace):
            s.delete_mark()
            return True
        if key == K.Key_Tab:
            s.select_next()
            return True
        if key == K.Key_N:
            s.no_lesion()
            return True
        if key in (K.Key_Return, K.Key_Enter):
            s.submit()
            return True
        if alt and key == K.Key_Left:
            s.back()
            return True
        if alt and key == K.Key_Right:
            s.forward()
            return True
        return False

    def event(self, ev) -> bool:
        if ev.type() == QEvent.Type.KeyPress and ev.key() == Qt.Key.Key_Tab and self.handle_key(ev.key()):
            return True  # Tab selects the next mark instead of moving the keyboard focus
        return super().event(ev)

    # -- focus and closing ------------------------------------------------------------------------------------------
    def changeEvent(self, ev) -> None:  # noqa: N802
        if ev.type() == QEvent.Type.ActivationChange:
            self.set_window_active(self.isActiveWindow())
        super().changeEvent(ev)

    def set_window_active(self, active: bool) -> None:
        """Active reading time counts only while this window is the active one (documented in the README)."""
        self.session.set_focused(active)

    def closeEvent(self, ev) -> None:  # noqa: N802
        if not self._closing:
            self._closing = True
            self.heartbeat_timer.stop()
            self.tick_timer.stop()
            self._heartbeat()
            self.runner.shutdown(5000)
            if self._viewer is not None:
                for v in self._viewer.views:
                    if isinstance(v, ReadingSliceView):
                        v.detach()
                        v.key_handler = None
                self._viewer.close_views()
            if self._own_store:
                self.session.store_session.store.close()
            self.closed.emit()
        super().closeEvent(ev)


def duration_text(seconds: float) -> str:
    """45 s, 3 min 20 s, 1 h 05 min."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", "<br>")


def open_reading_window(study: str, reader: str, full_screen: bool = True, parent: QWidget | None = None,
                        url: str | None = None) -> ReadingWindow:
    """Open the study's store (``url``: a PostgreSQL/SQLite URL; default the study folder's SQLite file) and a
    reading window for ``reader`` (a study that lists no readers accepts any reader id; otherwise the id must be
    one of its readers)."""
    from reviewer.studies.store import StudyError, open_store

    store = open_store(url, study=study) if url else open_store(study)
    try:
        known = [r.reader_id for r in store.readers()]
        if reader not in known:
            if store.definition.readers:
                raise StudyError(f"unknown reader {reader!r} in study {store.definition.name!r}; its readers: "
                                 f"{', '.join(known)}")
            store.add_reader(reader)
        session = ReadingSession.open(store, reader)
    except BaseException:
        store.close()
        raise
    win = ReadingWindow(session, parent, own_store=True)
    win.resize(1600, 1000)
    if full_screen:
        win.showFullScreen()
    else:
        win.show()
    return win
