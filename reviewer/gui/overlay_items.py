"""Draw the 2D primitives of :mod:`reviewer.view.overlays` with pyqtgraph items, in a pane's view coordinates.

View coordinates of a pane are millimetres: screen pixel (x, y) lies at (x * sx, y * sy), sx, sy the pane's
pixel size, so the aspect ratio is right with a locked 1:1 view aspect.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QPainterPath
from PySide6.QtWidgets import QGraphicsPathItem

from reviewer.view.overlays import Ellipses, Markers, Overlay, Rects, RGBAImage, SlicePlane


class OverlayItems:
    """The pyqtgraph items of one overlay in one pane; created lazily, updated in place on every slice change."""

    def __init__(self, viewbox: pg.ViewBox, z: float):
        self._vb = viewbox
        self._z = z
        self.scatter: pg.ScatterPlotItem | None = None
        self.path: QGraphicsPathItem | None = None
        self.image: pg.ImageItem | None = None
        self.texts: list[pg.TextItem] = []

    def _items(self) -> list:
        return [i for i in (self.scatter, self.path, self.image) if i is not None] + self.texts

    def clear(self) -> None:
        for item in self._items():
            item.setVisible(False)

    def remove(self) -> None:
        for item in self._items():
            self._vb.removeItem(item)
        self.scatter = self.path = self.image = None
        self.texts = []

    def update(self, overlay: Overlay, plane: SlicePlane) -> None:
        """Redraw ``overlay`` on ``plane`` (hidden when the overlay is not visible)."""
        for t in self.texts:
            self._vb.removeItem(t)
        self.texts = []
        if not overlay.visible:
            self.clear()
            return
        sx, sy = plane.frame.pixel_size
        prims = overlay.cut(plane)
        path = QPainterPath()
        pen = None
        markers = None
        rgba = None
        for p in prims:
            if isinstance(p, Markers):
                markers = p
            elif isinstance(p, Ellipses):
                pen = p.color
                for (cx, cy), (rx, ry), lb in zip(p.centers, p.radii, p.labels or [""] * len(p.centers)):
                    path.addEllipse(QPointF(cx * sx, cy * sy), rx * sx, ry * sy)
                    self._label(lb, cx * sx + rx * sx, cy * sy - ry * sy, p.color)
            elif isinstance(p, Rects):
                pen = p.color
                for (x0, y0), (x1, y1), lb in zip(p.mins, p.maxs, p.labels or [""] * len(p.mins)):
                    path.addRect(QRectF(x0 * sx, y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy))
                    self._label(lb, x1 * sx, y0 * sy, p.color)
            elif isinstance(p, RGBAImage):
                rgba = p.rgba
        # markers
        if markers is not None:
            if self.scatter is None:
                self.scatter = pg.ScatterPlotItem(pxMode=True, brush=None)
                self.scatter.setZValue(self._z)
                self._vb.addItem(self.scatter, ignoreBounds=True)
            pos = markers.xy * np.array([sx, sy])
            self.scatter.setData(
                pos=pos, size=markers.size_px, symbol="o", pen=pg.mkPen(markers.color, width=2), brush=None
            )
            for (x, y), lb in zip(pos, markers.labels):
                self._label(lb, x, y, markers.color)
            self.scatter.setVisible(True)
        elif self.scatter is not None:
            self.scatter.setVisible(False)
        # circles and rectangles
        if not path.isEmpty():
            if self.path is None:
                self.path = QGraphicsPathItem()
                self.path.setZValue(self._z)
                self._vb.addItem(self.path, ignoreBounds=True)
            self.path.setPen(pg.mkPen(pen, width=2))  # mkPen is cosmetic: constant width on screen
            self.path.setPath(path)
            self.path.setVisible(True)
        elif self.path is not None:
            self.path.setVisible(False)
        # label / heat maps
        if rgba is not None:
            if self.image is None:
                self.image = pg.ImageItem(axisOrder="row-major")
                self.image.setZValue(self._z - 1)
                self._vb.addItem(self.image, ignoreBounds=True)
            self.image.setImage(rgba, autoLevels=False, levels=(0, 255))
            h, w = rgba.shape[:2]
            self.image.setRect(QRectF(-0.5 * sx, -0.5 * sy, w * sx, h * sy))
            self.image.setVisible(True)
        elif self.image is not None:
            self.image.setVisible(False)
        for item in self._items():
            item.setOpacity(float(overlay.opacity))

    def _label(self, text: str, x: float, y: float, color) -> None:
        if not text:
            return
        t = pg.TextItem(text, color=color, anchor=(0, 1))
        t.setPos(x, y)
        t.setZValue(self._z + 1)
        self._vb.addItem(t, ignoreBounds=True)
        self.texts.append(t)
