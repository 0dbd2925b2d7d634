"""The reading pane: a :class:`SliceView` whose left button places, selects and drags the reader's marks.

Mouse: click on the image = a new mark (selected); click on a mark = select it; left-drag that starts on a mark =
move it (persisted once, when the button is released); left-drag elsewhere = window / level as in the viewer;
wheel = slice, right-drag = zoom, middle-drag = pan. Keys 1-5 are *not* window presets here (they rate marks,
handled by the reading window); F1-F5 are the presets instead.

Marks are drawn in the pane's view coordinates (mm): a ring with the rating beside it, full strength on the
slice the mark was placed on and dimmed on the slices within :data:`NEAR_MM` of it, hidden elsewhere. The
selected mark is drawn thicker in a different colour; an unrated mark shows "?".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsSimpleTextItem

from reviewer.gui.slice_view import SliceView

NEAR_MM = 6.0  # marks show (dimmed) on slices this close to the one they were placed on
HIT_PX = 16.0  # a click within this many screen pixels of a mark's centre selects it
RING_PX = 44.0  # ring diameter on screen: wide enough to leave a small lesion visible inside
READING_KEYS = (Qt.Key.Key_Delete, Qt.Key.Key_Backspace, Qt.Key.Key_Tab, Qt.Key.Key_N, Qt.Key.Key_P,
                Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_F11)
COLOR_RATED = QColor(255, 196, 0)
COLOR_UNRATED = QColor(255, 110, 80)
COLOR_SELECTED = QColor(80, 220, 255)


@dataclass
class _MarkItems:
    ring: QGraphicsEllipseItem
    label: QGraphicsSimpleTextItem


class ReadingSliceView(SliceView):
    """A SliceView bound to a reading session (``session`` attribute set by the reading window).

    The session is duck-typed: ``marks`` (MarkView: ``mark_id``, ``world_lps``, ``rating``), ``selected`` (id or None),
    ``events.marks`` / ``events.selection``, ``add_mark(world)``, ``select(id)``, ``move_mark(id, world)``,
    ``rating_text(rating)`` and ``editable``.
    """

    session: Any = None
    #: ``handler(key, modifiers) -> bool``: the reading window's keys (ratings, Delete, N, Enter...), tried first
    key_handler: Any = None

    def __init__(self, *args, **kwargs):
        self._mark_items: dict[Any, _MarkItems] = {}
        self._dragging: Any = None  # id of the mark being dragged
        self._drag_world: np.ndarray | None = None
        super().__init__(*args, **kwargs)
        self.crosshair_visible(False)
        self.viewport().setCursor(Qt.CursorShape.CrossCursor)

    def crosshair_visible(self, on: bool) -> None:
        self.hline.setVisible(on)
        self.vline.setVisible(on)

    # -- session binding -------------------------------------------------------------------------------------------
    def attach(self, session: Any) -> None:
        self.detach()
        self.session = session
        session.events.marks.connect(self._on_marks)
        session.events.selection.connect(self._on_marks)
        self.draw_marks()

    def detach(self) -> None:
        if self.session is not None:
            self.session.events.marks.disconnect(self._on_marks)
            self.session.events.selection.disconnect(self._on_marks)
        self.session = None
        self._clear_mark_items()

    def unbind(self) -> None:
        self.detach()
        super().unbind()

    def _on_marks(self, _value=None) -> None:
        self.draw_marks()

    def _on_crosshair(self, value) -> None:
        super()._on_crosshair(value)
        self.draw_marks()

    # -- drawing ---------------------------------------------------------------------------------------------------
    def _clear_mark_items(self) -> None:
        for items in self._mark_items.values():
            self.vb.removeItem(items.ring)
            self.vb.removeItem(items.label)
        self._mark_items = {}

    def _px_to_view(self) -> tuple[float, float]:
        """View units (mm) per screen pixel in x and y."""
        r = self.vb.viewRect()
        w, h = max(self.vb.width(), 1.0), max(self.vb.height(), 1.0)
        return (r.width() / w, r.height() / h)

    def mark_display(self, world: Any) -> np.ndarray:
        """(x, y, slice) of a world point in this pane."""
        return self.frame.world_to_display(np.asarray(world, dtype=float))

    def mark_strength(self, world: Any) -> float:
        """1 on the mark's own slice, 0.45 on nearby slices, 0 (hidden) further away."""
        n = self.mark_display(world)[2]
        shown = self.slice_index()
        if self.frame.clamp_index(n) == shown:
            return 1.0
        dist_mm = abs(float(n) - shown) * self.frame.slice_spacing
        return 0.45 if dist_mm <= NEAR_MM else 0.0

    def draw_marks(self) -> None:
        s = self.session
        if s is None:
            self._clear_mark_items()
            return
        marks = {m.mark_id: m for m in s.marks}
        for mid in list(self._mark_items):
            if mid not in marks:
                items = self._mark_items.pop(mid)
                self.vb.removeItem(items.ring)
                self.vb.removeItem(items.label)
        sx, sy = self.frame.pixel_size
        px, py = self._px_to_view()
        for mid, m in marks.items():
            world = self._drag_world if (mid == self._dragging and self._drag_world is not None) else m.world_lps
            items = self._mark_items.get(mid)
            if items is None:
                ring = QGraphicsEllipseItem()
                ring.setZValue(200)
                label = QGraphicsSimpleTextItem()
                f = QFont()
                f.setPointSize(15)
                f.setBold(True)
                label.setFont(f)
                label.setFlag(label.GraphicsItemFlag.ItemIgnoresTransformations, True)
                label.setZValue(201)
                self.vb.addItem(ring, ignoreBounds=True)
                self.vb.addItem(label, ignoreBounds=True)
                items = self._mark_items[mid] = _MarkItems(ring, label)
            strength = self.mark_strength(world)
            selected = mid == s.selected
            color = COLOR_SELECTED if selected else (COLOR_RATED if m.rating is not None else COLOR_UNRATED)
            x, y, _ = self.mark_display(world)
            cx, cy = x * sx, y * sy
            rx, ry = 0.5 * RING_PX * px, 0.5 * RING_PX * py
            items.ring.setRect(QRectF(cx - rx, cy - ry, 2 * rx, 2 * ry))
            pen = pg.mkPen(color, width=3.5 if selected else 2.0)
            if strength < 1.0:
                pen.setStyle(Qt.PenStyle.DashLine)
            items.ring.setPen(pen)
            items.label.setText(s.rating_text(m.rating))
            items.label.setBrush(color)
            items.label.setPos(QPointF(cx + rx * 1.1, cy - ry * 1.6))
            for it in (items.ring, items.label):
                it.setVisible(strength > 0)
                it.setOpacity(strength)

    def resizeEvent(self, ev):  # noqa: N802 - rings keep their on-screen size
        super().resizeEvent(ev)
        self.draw_marks()

    def _apply_view(self) -> None:
        super()._apply_view()
        if hasattr(self, "_mark_items"):
            self.draw_marks()

    # -- hit testing -------------------------------------------------------------------------------------------------
    def mark_at(self, view_pos: QPointF) -> Any:
        """The id of the visible mark nearest ``view_pos`` within :data:`HIT_PX` screen pixels, else None."""
        s = self.session
        if s is None:
            return None
        sx, sy = self.frame.pixel_size
        px, py = self._px_to_view()
        best, best_d = None, HIT_PX
        for m in s.marks:
            if self.mark_strength(m.world_lps) <= 0:
                continue
            x, y, _ = self.mark_display(m.world_lps)
            d = float(np.hypot((x * sx - view_pos.x()) / px, (y * sy - view_pos.y()) / py))
            if d <= best_d:
                best, best_d = m.mark_id, d
        return best

    def world_at(self, view_pos: QPointF) -> np.ndarray:
        x, y = self.view_to_display(view_pos)
        return self.frame.display_to_world((x, y, float(self.slice_index())))

    def inside_image(self, view_pos: QPointF) -> bool:
        x, y = self.view_to_display(view_pos)
        fr = self.frame
        return -0.5 <= x <= fr.width - 0.5 and -0.5 <= y <= fr.height - 0.5

    # -- input -------------------------------------------------------------------------------------------------------
    def on_click(self, view_pos: QPointF) -> None:
        s = self.session
        if s is None or not s.editable:
            return
        mid = self.mark_at(view_pos)
        if mid is not None:
            s.select(mid)
        elif self.inside_image(view_pos):
            s.add_mark(self.world_at(view_pos))

    def on_drag(self, ev) -> None:
        s = self.session
        if ev.button() == Qt.MouseButton.LeftButton and s is not None and s.editable:
            if ev.isStart():
                start = self.vb.mapSceneToView(ev.buttonDownScenePos())
                mid = self.mark_at(start)
                if mid is not None:
                    self._dragging = mid
                    s.select(mid)
            if self._dragging is not None:
                pos = self.vb.mapSceneToView(ev.scenePos())
                if self.inside_image(pos):
                    self._drag_world = self.world_at(pos)
                    self.draw_marks()
                if ev.isFinish():
                    mid, world = self._dragging, self._drag_world
                    self._dragging, self._drag_world = None, None
                    if world is not None:
                        s.move_mark(mid, world)
                    self.draw_marks()
                return
        super().on_drag(ev)

    def event(self, ev):  # Tab would move the keyboard focus; in reading it selects the next mark
        if ev.type() == QEvent.Type.KeyPress and ev.key() == Qt.Key.Key_Tab and self._reading_key(ev):
            return True
        return super().event(ev)

    def _reading_key(self, ev) -> bool:
        handler = self.key_handler
        if handler is not None and handler(ev.key(), ev.modifiers()):
            ev.accept()
            return True
        return False

    def keyPressEvent(self, ev):  # noqa: N802
        key = ev.key()
        K = Qt.Key
        if self._reading_key(ev):
            return
        if (K.Key_0 <= key <= K.Key_9 or key in READING_KEYS
                or key in (K.Key_Left, K.Key_Right, K.Key_A, K.Key_C, K.Key_S)):
            ev.ignore()  # unused reading keys do nothing here; the hanging protocol fixes the orientation
            return
        if K.Key_F1 <= key <= K.Key_F5:
            self.state.apply_preset(int(key - K.Key_F1) + 1)
            ev.accept()
            return
        super().keyPressEvent(ev)
