"""A tiny evented-state helper (napari / glue style), Qt-free.

``state.events.<name>.connect(cb)`` registers ``cb(value)``; ``emit(value)`` calls every callback with the new
value. Bound methods are held through weak references, so a widget that forgets to disconnect does not stay
alive because of the model. ``with events.batch(): ...`` coalesces emissions: each event fires once, with its
last value, when the outermost batch ends.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from typing import Any, Callable, Iterator

_UNSET = object()


class EventEmitter:
    """One named event: a list of callbacks taking the new value."""

    def __init__(self, name: str, owner: "EventGroup | None" = None):
        self.name = name
        self._owner = owner
        self._callbacks: list[Any] = []  # weakref.WeakMethod or plain callables

    def connect(self, callback: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Register ``callback(value)``; returns it so it can be used as a decorator."""
        if getattr(callback, "__self__", None) is not None and hasattr(callback, "__func__"):
            ref: Any = weakref.WeakMethod(callback)
        else:
            ref = callback
        if not any(self._matches(r, callback) for r in self._callbacks):
            self._callbacks.append(ref)
        return callback

    def disconnect(self, callback: Callable[[Any], Any] | None = None) -> None:
        """Remove ``callback`` (all callbacks when None). Unknown callbacks are ignored."""
        if callback is None:
            self._callbacks.clear()
            return
        self._callbacks = [r for r in self._callbacks if not self._matches(r, callback)]

    @staticmethod
    def _resolve(ref: Any) -> Callable[[Any], Any] | None:
        return ref() if isinstance(ref, weakref.WeakMethod) else ref

    @classmethod
    def _matches(cls, ref: Any, callback: Callable[[Any], Any]) -> bool:
        cb = cls._resolve(ref)
        return cb is not None and cb == callback

    @property
    def n_callbacks(self) -> int:
        return sum(1 for r in self._callbacks if self._resolve(r) is not None)

    def emit(self, value: Any = None) -> None:
        if self._owner is not None and self._owner._batch_depth > 0:
            self._owner._pending[self.name] = value
            return
        self._fire(value)

    def _fire(self, value: Any) -> None:
        dead = []
        for ref in list(self._callbacks):
            cb = self._resolve(ref)
            if cb is None:
                dead.append(ref)
                continue
            cb(value)
        if dead:
            self._callbacks = [r for r in self._callbacks if r not in dead]


class EventGroup:
    """A set of named emitters, reachable as attributes: ``events.window.connect(cb)``."""

    def __init__(self, *names: str):
        self._batch_depth = 0
        self._pending: dict[str, Any] = {}
        self._emitters: dict[str, EventEmitter] = {}
        for n in names:
            self.add(n)

    def add(self, name: str) -> EventEmitter:
        em = EventEmitter(name, self)
        self._emitters[name] = em
        setattr(self, name, em)
        return em

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._emitters)

    def __getitem__(self, name: str) -> EventEmitter:
        return self._emitters[name]

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Coalesce emissions until the outermost batch exits; each event then fires once (last value)."""
        self._batch_depth += 1
        try:
            yield
        finally:
            self._batch_depth -= 1
            if self._batch_depth == 0 and self._pending:
                pending, self._pending = self._pending, {}
                # fire in declaration order so listeners see a consistent sequence
                for name in self._emitters:
                    if name in pending:
                        self._emitters[name]._fire(pending[name])

    def disconnect_all(self) -> None:
        for em in self._emitters.values():
            em.disconnect()
