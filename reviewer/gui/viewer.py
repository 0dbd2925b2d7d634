"""ViewerWidget: lays out :class:`SliceView` panes for the layout of a :class:`ViewerState`.

* ``single``: one big pane of the active orientation;
* ``mpr``: axial (large, left) with coronal and sagittal stacked on the right, crosshair linked;
* ``compare``: 2-4 named panes (1x2, 1x3, 2x2) in the active orientation.

All panes are linked through the state: one crosshair (so slices follow), one window / inversion, and one
zoom / pan per orientation. The widget rebuilds its panes when the layout, the orientation or the panes change.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QGridLayout, QWidget

from reviewer.gui.slice_view import SliceView
from reviewer.view.state import ViewerState


def grid_positions(n: int, layout: str) -> list[tuple[int, int, int, int]]:
    """(row, column, row span, column span) of each pane."""
    if layout == "mpr" and n == 3:
        return [(0, 0, 2, 1), (0, 1, 1, 1), (1, 1, 1, 1)]
    if layout == "compare" and n == 4:
        return [(0, 0, 1, 1), (0, 1, 1, 1), (1, 0, 1, 1), (1, 1, 1, 1)]
    return [(0, c, 1, 1) for c in range(n)]


class ViewerWidget(QWidget):
    """The image viewer bound to ``state``. Signal ``readout(str)``: pixel read-out under the mouse."""

    readout = Signal(str)

    def __init__(self, state: ViewerState, parent=None, view_class: type[SliceView] = SliceView):
        super().__init__(parent)
        self.state = state
        self.view_class = view_class  # a SliceView subclass adds tools (e.g. reading marks) to every pane
        pal = self.palette()
        pal.setColor(QPalette.ColorRole.Window, QColor("black"))
        self.setPalette(pal)
        self.setAutoFillBackground(True)
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        self.views: list[SliceView] = []
        self._shown: list[tuple[str, str]] = []
        ev = state.events
        ev.layout.connect(self._on_structure)
        ev.panes.connect(self._on_structure)
        ev.orientation.connect(self._on_structure)
        self.rebuild()

    def _on_structure(self, _value=None) -> None:
        self.rebuild()

    def rebuild(self) -> None:
        """(Re)create the panes for the state's layout; keeps them when nothing visible changed."""
        wanted = [(p.name, o) for p, o in self.state.visible_panes()]
        volumes = [id(self.state.pane(n).volume) for n, _ in wanted]
        key = list(zip(wanted, volumes))
        if key == self._shown and self.views:
            return
        had_focus = any(v.hasFocus() for v in self.views)
        for v in self.views:
            v.unbind()
            self._grid.removeWidget(v)
            v.setParent(None)
            v.deleteLater()
        self.views = []
        show_titles = self.state.layout == "compare"
        positions = grid_positions(len(wanted), self.state.layout)
        mpr = self.state.layout == "mpr" and len(wanted) == 3
        used_cols = {c for _, c, _, _ in positions}
        used_rows = {r + k for r, _, rs, _ in positions for k in range(rs)}
        for col in range(4):
            self._grid.setColumnStretch(col, 0 if col not in used_cols else (3 if mpr and col == 0 else 2))
        for row in range(2):
            self._grid.setRowStretch(row, 1 if row in used_rows else 0)
        for (name, orientation), (r, c, rs, cs) in zip(wanted, positions):
            v = self.view_class(self.state, name, orientation, self, show_title=show_titles or len(self.state.panes) > 1)
            v.readout.connect(self.readout)
            self._grid.addWidget(v, r, c, rs, cs)
            v.show()
            self.views.append(v)
        self._shown = key
        if had_focus and self.views:
            self.views[0].setFocus()

    def view(self, pane: str | None = None, orientation: str | None = None) -> SliceView:
        """The pane showing ``pane`` (default: the first) in ``orientation`` (default: any)."""
        for v in self.views:
            if (pane is None or v.pane_name == pane) and (orientation is None or v.orientation == orientation):
                return v
        raise LookupError(f"no pane {pane!r} / {orientation!r} in layout {self.state.layout!r}")

    def close_views(self) -> None:
        ev = self.state.events
        ev.layout.disconnect(self._on_structure)
        ev.panes.disconnect(self._on_structure)
        ev.orientation.disconnect(self._on_structure)
        for v in self.views:
            v.unbind()

    def closeEvent(self, ev):  # noqa: N802
        self.close_views()
        super().closeEvent(ev)
