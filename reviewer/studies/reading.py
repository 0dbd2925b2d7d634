"""The reading-mode model: what the reading window shows and does, Qt-free (evented like ``ViewerState``).

:class:`ReadingSession` wraps one reader's :class:`reviewer.studies.store.ReaderSession` (every mark, rating and
submission goes straight to the store, so killing the app loses nothing) and keeps the UI-side state the store
does not know: which mark is selected, which screen is up (instructions, loading, reading, paused, end), the last
message. Events (``session.events.<name>.connect(cb)``): ``screen``, ``case``, ``marks``, ``selection``,
``case_rating``, ``message``.

Active reading time is measured by the store with the clock given to ``start_session``; here that clock is an
:class:`ActiveClock`, which stands still while it is *held*: before the reader starts (instructions), while a case
image loads, and while the window does not have the focus (another application in front, minimised, screen
locked). An explicit Pause also holds it and is persisted by the store (``ReaderSession.pause``), so a session
closed while paused reopens paused.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from reviewer.studies.store import CaseView, MarkView, ReaderSession, StudyError
from reviewer.view.events import EventGroup

SCREENS = ("instructions", "loading", "reading", "paused", "end")
EVENT_NAMES = ("screen", "case", "marks", "selection", "case_rating", "message")

RATING_WORDS_1_5 = {1: "very unlikely", 2: "unlikely", 3: "possible", 4: "probable", 5: "definite"}  # a mark
CASE_WORDS_1_5 = {1: "definitely normal", 2: "probably normal", 3: "unsure", 4: "probably abnormal",
                  5: "definitely abnormal"}  # a case (ROC)


class ActiveClock:
    """A monotonic clock that stands still while any hold is set: ``hold("unfocused")`` / ``release(...)``."""

    def __init__(self, base: Callable[[], float] = time.monotonic, held: tuple[str, ...] = ()):
        self._base = base
        self._offset = 0.0
        self._holds: set[str] = set()
        self._held_at: float | None = None
        for reason in held:
            self.hold(reason)

    def __call__(self) -> float:
        now = self._held_at if self._held_at is not None else self._base()
        return now - self._offset

    @property
    def holds(self) -> frozenset[str]:
        return frozenset(self._holds)

    @property
    def running(self) -> bool:
        return not self._holds

    def hold(self, reason: str) -> None:
        if not self._holds:
            self._held_at = self._base()
        self._holds.add(reason)

    def release(self, reason: str) -> None:
        if reason not in self._holds:
            return
        self._holds.discard(reason)
        if not self._holds and self._held_at is not None:
            self._offset += self._base() - self._held_at
            self._held_at = None

    def set_held(self, reason: str, on: bool) -> None:
        (self.hold if on else self.release)(reason)


def rating_text(rating: float | None) -> str:
    """Short text drawn beside a mark: its rating, or "?" while unrated."""
    if rating is None:
        return "?"
    return f"{rating:g}"


class ReadingSession:
    """One reader reading one study (see the module docstring). ``store_session`` from ``store.start_session``
    created with ``clock=`` this object's :attr:`clock` (use :meth:`open`)."""

    def __init__(self, store_session: ReaderSession, clock: ActiveClock):
        self.store_session = store_session
        self.clock = clock
        self.events = EventGroup(*EVENT_NAMES)
        self._case: CaseView | None = None
        self._marks: list[MarkView] = []
        self._selected: int | None = None
        self._case_rating: float | None = None
        self._screen = "instructions"
        self._message = ""
        self._loaded_token: str | None = None  # the case whose image is on screen
        self._refresh()
        if self._case is None:
            self._screen = "end"

    @classmethod
    def open(cls, store: Any, reader_id: str, base_clock: Callable[[], float] = time.monotonic) -> "ReadingSession":
        """Start or resume ``reader_id`` in ``store``; the clock stays held until :meth:`begin`."""
        clock = ActiveClock(base_clock, held=("instructions",))
        return cls(store.start_session(reader_id, clock=clock), clock)

    # -- read-only state -------------------------------------------------------------------------------------------
    @property
    def definition(self):
        return self.store_session.store.definition

    @property
    def case(self) -> CaseView | None:
        return self._case

    @property
    def marks(self) -> tuple[MarkView, ...]:
        return tuple(self._marks)

    @property
    def selected(self) -> int | None:
        return self._selected

    @property
    def selected_mark(self) -> MarkView | None:
        return next((m for m in self._marks if m.mark_id == self._selected), None)

    @property
    def case_rating(self) -> float | None:
        return self._case_rating

    @property
    def screen(self) -> str:
        return self._screen

    @property
    def message(self) -> str:
        return self._message

    @property
    def uses_marks(self) -> bool:
        return self.definition.uses_marks

    @property
    def uses_case_rating(self) -> bool:
        return self.definition.uses_case_rating

    @property
    def rating_scale(self) -> str:
        return self.definition.rating_scale

    @property
    def rating_range(self) -> tuple[int, int]:
        return self.definition.rating_range

    @property
    def instructions(self) -> str:
        return self.definition.instructions

    @property
    def allow_back(self) -> bool:
        return self.definition.navigation.allow_back

    @property
    def editable(self) -> bool:
        """Whether marks and ratings may change now (a loaded case on screen, not paused, time not up)."""
        return (self._screen == "reading" and self._case is not None and self._loaded_token == self._case.token
                and not self.time_up())

    def active_seconds(self) -> float:
        """Active reading time of the current case so far (persisted part + the running part)."""
        c = self.store_session.current()
        return 0.0 if c is None else c.active_s

    def time_left(self) -> float | None:
        c = self.store_session.current()
        return None if c is None else c.time_left_s

    def time_up(self) -> bool:
        lim = self.definition.time_limit_s
        return lim is not None and self._case is not None and self.active_seconds() >= lim

    def counter_text(self) -> str:
        c = self._case
        return "" if c is None else f"Case {c.index + 1} of {c.n_cases}"

    def rating_text(self, rating: float | None) -> str:
        return rating_text(rating)

    def rating_words(self, rating: float | None, case: bool = False) -> str:
        """The meaning of a mark's (or with ``case``, the case's) rating on the study's scale, for the panel."""
        if rating is None:
            return "not rated yet"
        if self.rating_scale == "1-5":
            words = CASE_WORDS_1_5 if case else RATING_WORDS_1_5
            return f"{rating:g} — {words.get(int(rating), '')}"
        return f"{rating:g} / 100"

    # -- internals -------------------------------------------------------------------------------------------------
    def _set_screen(self, screen: str) -> None:
        if screen not in SCREENS:
            raise ValueError(screen)
        if screen != self._screen:
            self._screen = screen
            self.events.screen.emit(screen)

    def _say(self, text: str) -> None:
        self._message = text
        self.events.message.emit(text)

    def _refresh(self) -> None:
        """Mirror the store's current case (marks, rating) after a navigation or on resume."""
        self._case = self.store_session.current()
        self._marks = list(self._case.marks) if self._case is not None else []
        self._case_rating = self._case.case_rating if self._case is not None else None
        self._selected = None

    def _emit_case(self) -> None:
        with self.events.batch():
            self.events.case.emit(self._case)
            self.events.marks.emit(self.marks)
            self.events.selection.emit(self._selected)
            self.events.case_rating.emit(self._case_rating)

    def _guard(self, fn: Callable[[], Any]) -> Any:
        """Run a store action; a refusal (StudyError) becomes the message instead of an exception."""
        try:
            out = fn()
        except StudyError as exc:
            self._say(str(exc))
            return None
        self._say("")
        return out

    def _token(self) -> str | None:
        return None if self._case is None else self._case.token

    def _after_navigation(self) -> None:
        self._loaded_token = None
        if self._case is None:
            self.clock.hold("finished")
            self._set_screen("end")
        else:
            self.clock.hold("loading")
            self._set_screen("loading")
        self._emit_case()

    # -- flow ------------------------------------------------------------------------------------------------------
    def begin(self) -> None:
        """Leave the instructions: resume a paused session as paused, else load the current case."""
        if self._case is None:
            self._set_screen("end")
            return
        self.clock.release("instructions")
        if self.store_session.paused:
            self.clock.hold("paused")
            self._set_screen("paused")
            self._emit_case()
            return
        self._after_navigation()

    def needs_image(self) -> str | None:
        """The token of the case whose image should be loaded now (None when nothing is to load)."""
        if self._screen == "loading" and self._case is not None:
            return self._case.token
        return None

    def load_image(self, case_token: str):
        """Load the case image (blinded Volume); a plain function for a worker thread."""
        return self.store_session.load_image(token=case_token)

    def image_loaded(self, case_token: str) -> bool:
        """The image of ``case_token`` is on screen: start reading it (False when that case is no longer current)."""
        if self._case is None or case_token != self._case.token or self._screen != "loading":
            return False
        self._loaded_token = case_token
        self.clock.release("loading")
        self._set_screen("reading")
        return True

    def image_failed(self, problem: str) -> None:
        self._say(f"This case's image could not be loaded: {problem}")

    def set_focused(self, focused: bool) -> None:
        """The reading window gained or lost the focus: time counts only while it has it."""
        self.clock.set_held("unfocused", not focused)

    def pause(self) -> None:
        if self._screen in ("paused", "end", "instructions"):
            return
        self.store_session.pause()
        self.clock.hold("paused")
        self._set_screen("paused")

    def resume(self) -> None:
        if self._screen != "paused":
            return
        self.store_session.resume()
        self.clock.release("paused")
        if self._case is not None and self._loaded_token == self._case.token:
            self._set_screen("reading")
        else:
            self._after_navigation()

    def heartbeat(self) -> None:
        """Persist the active time so far (called every few seconds and on close)."""
        if self._case is not None:
            self.store_session.heartbeat()

    # -- marks -----------------------------------------------------------------------------------------------------
    def add_mark(self, world: Any) -> MarkView | None:
        if not self.editable:
            return None
        if not self.uses_marks:
            self._say("This study asks for one rating per case: use the case rating, no marks.")
            return None
        mv = self._guard(lambda: self.store_session.add_mark(world_lps=tuple(float(v) for v in world),
                                                             token=self._token()))
        if mv is None:
            return None
        self._marks.append(mv)
        self._selected = mv.mark_id
        with self.events.batch():
            self.events.marks.emit(self.marks)
            self.events.selection.emit(self._selected)
        return mv

    def select(self, mark_id: int | None) -> None:
        if mark_id is not None and all(m.mark_id != mark_id for m in self._marks):
            raise KeyError(mark_id)
        if mark_id != self._selected:
            self._selected = mark_id
            self.events.selection.emit(mark_id)

    def select_next(self, step: int = 1) -> None:
        """Cycle the selection through the marks (Tab)."""
        if not self._marks:
            return
        ids = [m.mark_id for m in self._marks]
        i = ids.index(self._selected) if self._selected in ids else -1
        self.select(ids[(i + step) % len(ids)])

    def _replace(self, mv: MarkView) -> None:
        self._marks = [mv if m.mark_id == mv.mark_id else m for m in self._marks]
        self.events.marks.emit(self.marks)

    def move_mark(self, mark_id: int, world: Any) -> MarkView | None:
        if not self.editable:
            self.events.marks.emit(self.marks)  # redraw where it was
            return None
        mv = self._guard(lambda: self.store_session.move_mark(mark_id, world_lps=tuple(float(v) for v in world),
                                                              token=self._token()))
        if mv is not None:
            self._replace(mv)
        else:
            self.events.marks.emit(self.marks)
        return mv

    def delete_mark(self, mark_id: int | None = None) -> bool:
        """Delete ``mark_id`` (default: the selected mark)."""
        mark_id = self._selected if mark_id is None else mark_id
        if mark_id is None or not self.editable:
            return False
        ok = self._guard(lambda: self.store_session.delete_mark(mark_id, token=self._token()) or True)
        if not ok:
            return False
        self._marks = [m for m in self._marks if m.mark_id != mark_id]
        with self.events.batch():
            if self._selected == mark_id:
                self._selected = self._marks[-1].mark_id if self._marks else None
                self.events.selection.emit(self._selected)
            self.events.marks.emit(self.marks)
        return True

    # -- ratings ---------------------------------------------------------------------------------------------------
    def rate_mark(self, mark_id: int, rating: float) -> MarkView | None:
        if not self.editable:
            return None
        mv = self._guard(lambda: self.store_session.rate_mark(mark_id, rating, token=self._token()))
        if mv is not None:
            self._replace(mv)
        return mv

    def set_case_rating(self, rating: float) -> bool:
        if not self.editable:
            return False
        ok = self._guard(lambda: self.store_session.set_case_rating(rating, token=self._token()) or True)
        if ok:
            self._case_rating = float(rating)
            self.events.case_rating.emit(self._case_rating)
        return bool(ok)

    def rate(self, rating: float) -> str:
        """A rating key: rates the selected mark, else the case (when the study asks for a case rating).

        Returns what was rated: "mark", "case" or "" (nothing).
        """
        if not self.editable:
            return ""
        if self._selected is not None:
            return "mark" if self.rate_mark(self._selected, rating) is not None else ""
        if self.uses_case_rating:
            return "case" if self.set_case_rating(rating) else ""
        if self._marks:
            self._say("Select a mark first (click it), then rate it.")
        else:
            self._say("Click the image to place a mark, then rate it.")
        return ""

    # -- submission and navigation ---------------------------------------------------------------------------------
    def submit(self) -> bool:
        """Submit the case as it is (every mark rated; the case rated when asked) and go to the next one."""
        if not self.editable:
            return False
        before = self._case
        nxt = self._guard(lambda: (self.store_session.submit_case(token=self._token()), True))
        if nxt is None:
            return False
        self._refresh()
        if self._case is None or before is None or self._case.token != before.token:
            self._after_navigation()
        return True

    def no_lesion(self) -> bool:
        """Submit the case without marks ("no lesion")."""
        if not self.editable:
            return False
        if self._marks:
            self._say("This case has marks: delete them before submitting it as 'no lesion', or submit the marks.")
            return False
        return self.submit()

    def submit_timed_out(self) -> bool:
        """The time limit ran out: submit what there is (unrated marks are dropped by the store)."""
        if self._case is None or self._screen not in ("reading",):
            return False
        nxt = self._guard(lambda: (self.store_session.submit_case(timed_out=True, token=self._token()), True))
        if nxt is None:
            return False
        self._refresh()
        self._after_navigation()
        self._say("The time for the previous case ran out; it was submitted as it was.")
        return True

    @property
    def can_go_back(self) -> bool:
        return self._case is not None and self._case.can_go_back

    @property
    def can_go_forward(self) -> bool:
        return self._case is not None and self._case.can_go_forward

    def back(self) -> bool:
        """Go to the previous case when the study allows it (refused with a message otherwise)."""
        if self._screen not in ("reading", "loading"):
            return False
        if not self.allow_back:
            self._say("This study does not allow going back to earlier cases.")
            return False
        if not self.can_go_back:
            self._say("This is the first case.")
            return False
        ok = self._guard(lambda: (self.store_session.go_back(), True))
        if not ok:
            return False
        self._refresh()
        self._after_navigation()
        return True

    def forward(self) -> bool:
        """After going back: return towards the first unread case without resubmitting."""
        if self._screen not in ("reading", "loading") or not self.can_go_forward:
            return False
        ok = self._guard(lambda: (self.store_session.go_forward(), True))
        if not ok:
            return False
        self._refresh()
        self._after_navigation()
        return True

    def summary(self):
        return self.store_session.summary()
