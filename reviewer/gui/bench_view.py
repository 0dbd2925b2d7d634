"""Slice-stepping benchmark of the viewer: two linked 512x512 panes of a synthetic int16 CT, rendered offscreen.

Each step goes through the same path as a wheel event (``state.step_slice``), then forces a render of the whole
viewer. The baseline is pyqtgraph's own fastest path: a bare ``ImageItem.setImage`` of the same int16 slices
with explicit levels in two bare views, rendered the same way.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np


def synthetic_ct(n_slices: int = 300, size: int = 512, seed: int = 0):
    """A simple int16 chest-like CT (body ellipse, lungs, noise) as a :class:`Volume`; no demo module needed."""
    from reviewer.geometry import Volume

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = (size - 1) / 2.0
    body = ((xx - c) / (0.45 * size)) ** 2 + ((yy - c) / (0.35 * size)) ** 2 < 1
    lung_l = ((xx - c - 0.18 * size) / (0.12 * size)) ** 2 + ((yy - c) / (0.22 * size)) ** 2 < 1
    lung_r = ((xx - c + 0.18 * size) / (0.12 * size)) ** 2 + ((yy - c) / (0.22 * size)) ** 2 < 1
    base = np.full((size, size), -1000, np.int16)
    base[body] = 40
    base[lung_l | lung_r] = -850
    noise = rng.normal(0, 20, size=(8, size, size)).astype(np.int16)
    arr = np.empty((n_slices, size, size), np.int16)
    for k in range(n_slices):
        arr[k] = base + noise[k % 8]
    return Volume.from_array(
        arr, spacing=(0.7, 0.7, 1.25), origin=(-180.0, -180.0, -300.0), modality="CT", unit="HU", name="synthetic CT"
    )


def _stats(times: list[float]) -> dict[str, float]:
    a = np.asarray(times) * 1000.0
    return {"mean": float(a.mean()), "median": float(np.median(a)), "p95": float(np.percentile(a, 95))}


def run_view_bench(steps: int = 200, n_slices: int = 300, size: int = 512, print_table: bool = True) -> dict[str, Any]:
    """ms per slice step for two linked panes (ours) and for bare pyqtgraph ImageItems (baseline)."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    import pyqtgraph as pg

    from reviewer.gui.viewer import ViewerWidget
    from reviewer.view.state import ViewerState

    vol = synthetic_ct(n_slices, size)
    state = ViewerState(vol, "model A")
    state.add_pane("model B", vol)
    state.set_layout("compare")
    state.apply_preset(1)
    widget = ViewerWidget(state)
    widget.resize(2 * size + 2, size)
    widget.show()
    app.processEvents()
    state.set_slice("axial", 0)
    app.processEvents()

    def render(w) -> None:
        w.repaint()
        app.processEvents()

    # ours: the wheel path
    for _ in range(5):
        state.step_slice("axial", 1)
        render(widget)
    ours = []
    direction = 1
    for s in range(steps):
        if not 0 < state.slice_index("axial") + direction < n_slices:
            direction = -direction
        t0 = time.perf_counter()
        state.step_slice("axial", direction)
        render(widget)
        ours.append(time.perf_counter() - t0)
    widget.close()
    widget.deleteLater()

    # baseline: bare pyqtgraph, same slices, int16 data with explicit levels
    from PySide6.QtWidgets import QHBoxLayout, QWidget

    holder = QWidget()
    lay = QHBoxLayout(holder)
    lay.setContentsMargins(0, 0, 0, 0)
    items = []
    for _ in range(2):
        gv = pg.GraphicsView(background="k")
        vb = pg.ViewBox(invertY=True, lockAspect=True, enableMenu=False)
        gv.setCentralItem(vb)
        im = pg.ImageItem(axisOrder="row-major")
        vb.addItem(im)
        im.setImage(vol.array[0], autoLevels=False, levels=(-1350, 150))
        vb.autoRange(padding=0)
        lay.addWidget(gv)
        items.append(im)
    holder.resize(2 * size + 2, size)
    holder.show()
    app.processEvents()
    base = []
    k = 0
    direction = 1
    for s in range(steps + 5):
        if not 0 < k + direction < n_slices:
            direction = -direction
        k += direction
        t0 = time.perf_counter()
        for im in items:
            im.setImage(vol.array[k], autoLevels=False, levels=(-1350, 150))
        render(holder)
        if s >= 5:
            base.append(time.perf_counter() - t0)
    holder.close()
    holder.deleteLater()
    app.processEvents()

    o, b = _stats(ours), _stats(base)
    result = {
        "ms_per_step": o["mean"],
        "ms_median": o["median"],
        "ms_p95": o["p95"],
        "baseline_ms_per_step": b["mean"],
        "baseline_ms_median": b["median"],
        "baseline_ms_p95": b["p95"],
        "ratio": o["mean"] / b["mean"],
        "panes": 2,
        "size": [size, size, n_slices],
        "steps": steps,
    }
    if print_table:
        print(f"viewer slice stepping: 2 linked panes, {size}x{size}x{n_slices} int16, {steps} steps")
        print(f"{'':28s}{'mean':>8s}{'median':>8s}{'p95':>8s}  (ms/step)")
        print(f"{'reviewer (state.step_slice)':28s}{o['mean']:8.2f}{o['median']:8.2f}{o['p95']:8.2f}")
        print(f"{'bare pyqtgraph ImageItem':28s}{b['mean']:8.2f}{b['median']:8.2f}{b['p95']:8.2f}")
        print(f"ratio {result['ratio']:.2f}")
    return result


if __name__ == "__main__":  # pragma: no cover
    run_view_bench()
