"""One image pane: a pyqtgraph GraphicsView showing one orientation of one pane of a :class:`ViewerState`.

The widget holds no state of its own: it draws what the state says (slice from the crosshair, window, zoom/pan,
overlays) and turns user input into state calls. Mouse (OHIF / Cornerstone): wheel = slice, left-drag =
window/level (horizontal = width, vertical = level), right-drag = zoom, middle-drag = pan, click = crosshair.
Keys: Up/Down, PageUp/PageDown = slice, Home/End = first/last slice, 1-5 = window presets, i = invert,
r / space = reset view, a / c / s = axial / coronal / sagittal (single and compare layouts).

View coordinates are millimetres (screen pixel (x, y) at (x * sx, y * sy)), so a locked 1:1 aspect gives the
true aspect ratio and linked panes of different grids share zoom/pan in mm.
"""

from __future__ import annotations

import weakref

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QGraphicsRectItem, QGraphicsSimpleTextItem

from reviewer.gui.overlay_items import OverlayItems
from reviewer.view.reslice import DisplayFrame
from reviewer.view.state import ViewerState
from reviewer.view.windowing import WindowLUT

CROSSHAIR_COLORS = {"axial": (230, 80, 80), "coronal": (80, 200, 80), "sagittal": (230, 200, 60)}
LABEL_COLOR = QColor(255, 220, 120)
CAPTION_COLOR = QColor(150, 220, 255)
TEXT_COLOR = QColor(230, 230, 230)


class SliceImageItem(pg.ImageItem):
    """ImageItem fed with uint8 slices windowed through a precomputed LUT (pyqtgraph's fastest path)."""

    def __init__(self) -> None:
        super().__init__(axisOrder="row-major")
        self._windowing = WindowLUT()
        self.raw: np.ndarray | None = None  # the (view of the) volume slice currently shown

    def show_slice(self, raw: np.ndarray, window: tuple[float, float], inverted: bool) -> None:
        self.raw = raw
        u8 = self._windowing.apply(raw, window, inverted, copy=False)
        # levels None + no LUT on uint8 = pyqtgraph's pass-through path (Format_Grayscale8, no colour table)
        self.setImage(u8, autoLevels=False, autoDownsample=False)


def _num(v: float) -> str:
    """Window numbers: integers for HU-sized values, significant digits for tiny MR magnitudes."""
    return f"{v:.0f}" if abs(v) >= 100 or v == 0 else f"{v:.3g}"


class SliceViewBox(pg.ViewBox):
    """ViewBox whose mouse gestures drive the owning :class:`SliceView` (no pyqtgraph pan/zoom of its own)."""

    def __init__(self, owner: "SliceView"):
        super().__init__(invertY=True, lockAspect=True, enableMenu=False, defaultPadding=0.0)
        self._owner = weakref.ref(owner)
        self.setMouseEnabled(False, False)

    def wheelEvent(self, ev, axis=None):  # noqa: N802 (Qt naming)
        owner = self._owner()
        if owner is not None:
            owner.on_wheel(ev.delta())
        ev.accept()

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802
        owner = self._owner()
        if owner is not None:
            owner.on_drag(ev)
        ev.accept()

    def mouseClickEvent(self, ev):  # noqa: N802
        owner = self._owner()
        if owner is not None and ev.button() == Qt.MouseButton.LeftButton:
            owner.on_click(self.mapSceneToView(ev.scenePos()))
        ev.accept()


def _text_item(size: int, color: QColor = TEXT_COLOR, bold: bool = False) -> QGraphicsSimpleTextItem:
    item = QGraphicsSimpleTextItem()
    f = QFont()
    f.setPointSize(size)
    f.setBold(bold)
    item.setFont(f)
    item.setBrush(color)
    item.setZValue(1000)
    return item


class SliceView(pg.GraphicsView):
    """One pane: ``orientation`` of the pane named ``pane_name`` of ``state``. Signal ``readout(str)``."""

    readout = Signal(str)

    def __init__(self, state: ViewerState, pane_name: str, orientation: str, parent=None, show_title: bool = True):
        super().__init__(parent, background="k")
        self.state = state
        self.pane_name = pane_name
        self.orientation = orientation
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(120, 120)

        self.vb = SliceViewBox(self)
        self.setCentralItem(self.vb)
        self.image = SliceImageItem()
        self.vb.addItem(self.image)
        color = CROSSHAIR_COLORS.get(orientation, (200, 200, 200))
        pen = pg.mkPen(color=(*color, 150), width=1)
        self.hline = pg.InfiniteLine(angle=0, movable=False, pen=pen)
        self.vline = pg.InfiniteLine(angle=90, movable=False, pen=pen)
        for line in (self.hline, self.vline):
            line.setZValue(50)
            self.vb.addItem(line, ignoreBounds=True)
        self._overlay_items: dict[str, OverlayItems] = {}

        # fixed-position text in scene (= viewport pixel) coordinates
        scene = self.scene()
        self.title = _text_item(10, TEXT_COLOR, bold=True)
        self.title.setText(pane_name if show_title else "")
        self.info = _text_item(9)
        self.caption = _text_item(9, CAPTION_COLOR)
        self.caption_bg = QGraphicsRectItem()  # dark backing so captions stay legible on bright anatomy
        self.caption_bg.setBrush(QColor(0, 0, 0, 150))
        self.caption_bg.setPen(pg.mkPen(None))
        self.caption_bg.setZValue(999)
        self.caption_bg.setVisible(False)
        scene.addItem(self.caption_bg)
        self.edge = {k: _text_item(13, LABEL_COLOR, bold=True) for k in ("left", "right", "top", "bottom")}
        for item in (self.title, self.info, self.caption, *self.edge.values()):
            scene.addItem(item)

        self._mouse_proxy = pg.SignalProxy(scene.sigMouseMoved, rateLimit=30, slot=self._mouse_moved)
        self._drag_start: tuple | None = None
        self._bound = False
        self._last_slice: int | None = None
        self.bind()
        self.refresh()

    # -- binding ---------------------------------------------------------------------------------------------------
    def _connections(self) -> list:
        """(state event, handler) pairs: one list, so binding and unbinding cannot drift apart."""
        ev = self.state.events
        return [(ev.crosshair, self._on_crosshair), (ev.window, self._on_window), (ev.inverted, self._on_window),
                (ev.view, self._on_view), (ev.overlays, self._on_overlays), (ev.captions, self._on_captions)]

    def bind(self) -> None:
        if self._bound:
            return
        for event, handler in self._connections():
            event.connect(handler)
        self._bound = True

    def unbind(self) -> None:
        if not self._bound:
            return
        for event, handler in self._connections():
            event.disconnect(handler)
        self._mouse_proxy.disconnect()
        self._bound = False

    def closeEvent(self, ev):  # noqa: N802
        self.unbind()
        super().closeEvent(ev)

    # -- model helpers ---------------------------------------------------------------------------------------------
    @property
    def frame(self) -> DisplayFrame:
        return self.state.frame(self.orientation, self.pane_name)

    @property
    def volume(self):
        return self.state.pane(self.pane_name).volume

    def slice_index(self) -> int:
        return self.state.slice_index(self.orientation, self.pane_name)

    def view_to_display(self, p: QPointF) -> tuple[float, float]:
        sx, sy = self.frame.pixel_size
        return (p.x() / sx, p.y() / sy)

    # -- state -> widget -------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Redraw everything from the state."""
        fr = self.frame
        sx, sy = fr.pixel_size
        for key, text in fr.edge_labels().items():
            self.edge[key].setText(text)
        self._last_slice = None
        self._on_crosshair(None)
        # setRect needs an image; pixel centres land on integer multiples of the pixel size
        self.image.setRect(QRectF(-0.5 * sx, -0.5 * sy, fr.width * sx, fr.height * sy))
        self._apply_view()
        self._on_captions(None)

    def _on_captions(self, _value) -> None:
        self.caption.setText(self.state.caption(self.pane_name))
        self._place_texts()

    def _on_crosshair(self, _value) -> None:
        idx = self.slice_index()
        if idx != self._last_slice:
            self._last_slice = idx
            self._show_image()
            self._draw_overlays()
        self._place_crosshair()
        self._update_info()

    def _on_window(self, _value) -> None:
        self._show_image()
        self._update_info()

    def _show_image(self) -> None:
        fr = self.frame
        raw = fr.slice_image(self.volume.array, self.slice_index())
        self.image.show_slice(raw, self.state.window, self.state.inverted)

    def _place_crosshair(self) -> None:
        x, y, _ = self.frame.world_to_display(self.state.crosshair)
        sx, sy = self.frame.pixel_size
        self.vline.setValue(x * sx)
        self.hline.setValue(y * sy)

    def _update_info(self) -> None:
        n = self.frame.n_slices
        w, l = self.state.window
        inv = "  inverted" if self.state.inverted else ""
        self.info.setText(f"{self.orientation} {self.slice_index() + 1}/{n}\nW {_num(w)} L {_num(l)}{inv}")
        self._place_texts()

    def _on_view(self, value) -> None:
        orientation, _ = value
        if orientation == self.orientation:
            self._apply_view()

    def _apply_view(self) -> None:
        fr = self.frame
        sx, sy = fr.pixel_size
        vt = self.state.view(self.orientation)
        w, h = fr.width * sx / vt.zoom, fr.height * sy / vt.zoom
        cx = (fr.width - 1) * sx / 2.0 + vt.pan[0]
        cy = (fr.height - 1) * sy / 2.0 + vt.pan[1]
        self.vb.setRange(QRectF(cx - w / 2, cy - h / 2, w, h), padding=0.0)

    def _on_overlays(self, _value) -> None:
        names = {o.name for o in self.state.overlays}
        for name in list(self._overlay_items):
            if name not in names:
                self._overlay_items.pop(name).remove()
        self._draw_overlays()

    def _draw_overlays(self) -> None:
        if not self.state.overlays and not self._overlay_items:
            return
        plane = self.state.plane(self.orientation, self.pane_name)
        for z, ov in enumerate(self.state.overlays):
            items = self._overlay_items.get(ov.name)
            if items is None:
                items = self._overlay_items[ov.name] = OverlayItems(self.vb, z=20 + 2 * z)
            if not ov.shown_in(self.pane_name, self.state.layout):
                items.clear()
                continue
            items.update(ov, plane)

    def overlay_items(self, name: str) -> OverlayItems:
        return self._overlay_items[name]

    # -- text placement --------------------------------------------------------------------------------------------
    def resizeEvent(self, ev):  # noqa: N802
        super().resizeEvent(ev)
        self._place_texts()

    def _place_texts(self) -> None:
        if not hasattr(self, "edge"):  # called by the base class before __init__ finished
            return
        r = self.viewport().rect()
        W, H = r.width(), r.height()
        m = 6
        self.title.setPos(m, m)
        tb = self.title.boundingRect()
        self.caption.setPos(m, m + (tb.height() if self.title.text() else 0))
        cb = self.caption.boundingRect()
        self.caption_bg.setVisible(bool(self.caption.text()))
        self.caption_bg.setRect(self.caption.x() - 3, self.caption.y() - 1, cb.width() + 6, cb.height() + 2)
        ib = self.info.boundingRect()
        self.info.setPos(m, H - ib.height() - m)
        e = self.edge
        b = e["left"].boundingRect()
        e["left"].setPos(m, (H - b.height()) / 2)
        b = e["right"].boundingRect()
        e["right"].setPos(W - b.width() - m, (H - b.height()) / 2)
        b = e["top"].boundingRect()
        e["top"].setPos((W - b.width()) / 2, m)
        b = e["bottom"].boundingRect()
        e["bottom"].setPos((W - b.width()) / 2, H - b.height() - m)

    # -- widget -> state -------------------------------------------------------------------------------------------
    def on_wheel(self, delta: float) -> None:
        if delta:
            self.state.step_slice(self.orientation, 1 if delta > 0 else -1, self.pane_name)

    def on_click(self, view_pos: QPointF) -> None:
        x, y = self.view_to_display(view_pos)
        world = self.frame.display_to_world((x, y, float(self.slice_index())))
        self.state.set_crosshair(world)
        self.state.report_click(self.pane_name, world)

    def on_drag(self, ev) -> None:
        button = ev.button()
        if ev.isStart():
            vt = self.state.view(self.orientation)
            self._drag_start = (self.state.window, vt.zoom, vt.pan)
        if self._drag_start is None:
            return
        (w0, l0), zoom0, pan0 = self._drag_start
        d = ev.screenPos() - ev.buttonDownScreenPos()
        dx, dy = float(d.x()), float(d.y())
        if button == Qt.MouseButton.LeftButton:
            step = self.state.window_step()
            self.state.set_window(max(w0 + dx * step, 1.0), l0 + dy * step)
        elif button == Qt.MouseButton.RightButton:
            self.state.set_view(self.orientation, zoom=zoom0 * float(np.exp(-dy * 0.01)))
        elif button == Qt.MouseButton.MiddleButton:
            # incremental: the view follows the state after every step, so map both points with the current view
            a = self.vb.mapSceneToView(ev.lastScenePos())
            b = self.vb.mapSceneToView(ev.scenePos())
            vt = self.state.view(self.orientation)
            self.state.set_view(
                self.orientation, pan=(vt.pan[0] - (b.x() - a.x()), vt.pan[1] - (b.y() - a.y()))
            )
        if ev.isFinish():
            self._drag_start = None

    def keyPressEvent(self, ev):  # noqa: N802
        key = ev.key()
        K = Qt.Key
        s = self.state
        o, p = self.orientation, self.pane_name
        if key in (K.Key_Up, K.Key_PageUp):
            s.step_slice(o, 1, p)
        elif key in (K.Key_Down, K.Key_PageDown):
            s.step_slice(o, -1, p)
        elif key == K.Key_Home:
            s.set_slice(o, 0, p)
        elif key == K.Key_End:
            s.set_slice(o, s.n_slices(o, p) - 1, p)
        elif K.Key_1 <= key <= K.Key_5:
            s.apply_preset(int(key - K.Key_0))
        elif key == K.Key_I:
            s.toggle_invert()
        elif key in (K.Key_R, K.Key_Space):
            s.reset_view()
        elif key == K.Key_A:
            s.set_orientation("axial")
        elif key == K.Key_C:
            s.set_orientation("coronal")
        elif key == K.Key_S:
            s.set_orientation("sagittal")
        else:
            super().keyPressEvent(ev)
            return
        ev.accept()

    def _mouse_moved(self, args) -> None:
        if not self._bound:
            return
        pos = args[0]
        if not self.vb.sceneBoundingRect().contains(pos):
            return
        v = self.vb.mapSceneToView(pos)
        x, y = self.view_to_display(v)
        world = self.frame.display_to_world((x, y, float(self.slice_index())))
        self.readout.emit(self.state.readout(world))
