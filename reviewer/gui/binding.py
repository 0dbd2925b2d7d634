"""One two-way binding helper between a Qt widget (or QAction) property and a field of a Qt-free state object.

napari style: widget -> state goes through a weak reference to the state (a widget never keeps a state
alive); state -> widget writes with the widget's signals blocked (no echo back into the state); the
connections are recorded and disconnected when the widget is destroyed.

    bind(invert_action, state, "inverted", signal="toggled", setter="setChecked",
         to_state=lambda s, on: s.inverted != on and s.toggle_invert())
"""

from __future__ import annotations

import logging
import weakref
from typing import Any, Callable

import shiboken6
from PySide6.QtCore import QObject, QSignalBlocker

log = logging.getLogger(__name__)


class Binding:
    """One recorded widget <-> state connection; :meth:`disconnect` undoes both directions."""

    def __init__(
        self,
        widget: QObject,
        state: Any,
        field: str,
        signal: str | None,
        setter: str | Callable[[QObject, Any], None] | None,
        event: str | None,
        from_state: Callable[[Any], Any] | None,
        to_state: Callable[[Any, Any], Any] | None,
    ):
        self.field = field
        self.event_name = event or field
        self._widget = widget
        try:
            self._state_ref: Callable[[], Any] = weakref.ref(state)
        except TypeError:  # objects without __weakref__ fall back to a strong reference
            self._state_ref = lambda s=state: s
        self._from_state = from_state or (lambda s: getattr(s, field))
        self._to_state = to_state or (lambda s, v: setattr(s, field, v))
        self._setter = setter
        self._signal = getattr(widget, signal) if signal else None
        self._event = None
        self.connected = True
        if self._signal is not None:
            self._signal.connect(self._widget_changed)
        if setter is not None:
            self._event = _event(state, self.event_name)
            self._event.connect(self._state_changed)
        widget.destroyed.connect(self._on_destroyed)
        self.update_widget()

    # widget -> state
    def _widget_changed(self, *args: Any) -> None:
        state = self._state_ref()
        if state is None or not self.connected:
            return
        value = args[0] if len(args) == 1 else args
        self._to_state(state, value)

    # state -> widget
    def _state_changed(self, *_: Any) -> None:
        self.update_widget()

    def update_widget(self) -> None:
        state = self._state_ref()
        w = self._widget
        if state is None or not self.connected or self._setter is None or not shiboken6.isValid(w):
            return
        value = self._from_state(state)
        blocker = QSignalBlocker(w)
        try:
            if callable(self._setter):
                self._setter(w, value)
            else:
                getattr(w, self._setter)(value)
        finally:
            blocker.unblock()

    def _on_destroyed(self, *_: Any) -> None:
        self.disconnect(widget_alive=False)

    def disconnect(self, widget_alive: bool = True) -> None:
        if not self.connected:
            return
        self.connected = False
        if self._event is not None:
            try:
                self._event.disconnect(self._state_changed)
            except Exception:  # noqa: BLE001 - an event without disconnect: the callback is now inert
                log.debug("could not disconnect %s", self.event_name, exc_info=True)
        if widget_alive and self._signal is not None and shiboken6.isValid(self._widget):
            try:
                self._signal.disconnect(self._widget_changed)
            except (RuntimeError, TypeError):
                pass
        self._event = self._signal = None
        _registry.pop(id(self), None)


def _event(state: Any, name: str) -> Any:
    events = getattr(state, "events", None)
    ev = getattr(events, name, None) if events is not None else None
    if ev is None or not hasattr(ev, "connect"):
        raise AttributeError(f"{type(state).__name__}.events has no event {name!r}")
    return ev


_registry: dict[int, Binding] = {}  # keeps bindings alive until their widget is destroyed or they are disconnected


def bind(
    widget: QObject,
    state: Any,
    field: str,
    *,
    signal: str | None = None,
    setter: str | Callable[[QObject, Any], None] | None = None,
    event: str | None = None,
    from_state: Callable[[Any], Any] | None = None,
    to_state: Callable[[Any, Any], Any] | None = None,
) -> Binding:
    """Bind ``widget`` to ``state.<field>`` in both directions.

    ``signal``: name of the widget's change signal (widget -> state; omit for a one-way state -> widget binding).
    ``setter``: name of the widget's setter or ``f(widget, value)`` (state -> widget; omit for widget -> state only).
    ``event``: name of the state event announcing a change (default: ``field``), i.e. ``state.events.<event>``.
    ``from_state(state)`` / ``to_state(state, value)``: how to read and write the state (default: the attribute).
    """
    b = Binding(widget, state, field, signal, setter, event, from_state, to_state)
    _registry[id(b)] = b
    return b


def bindings_of(widget: QObject) -> list[Binding]:
    return [b for b in _registry.values() if b._widget is widget]
