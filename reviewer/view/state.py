"""ViewerState: the whole viewer model (panes, layout, linked crosshair / window / zoom, overlays). Qt-free.

Widgets hold no state of their own: they draw what this object says and call its methods on user input.
Every change fires ``state.events.<name>`` with the new value; ``with state.batch(): ...`` coalesces changes.

Linked state: the crosshair (a world LPS point) determines the slice shown in every orientation of every pane;
window (width, level) and inversion apply to all panes; zoom / pan are kept per orientation and shared by every
pane showing that orientation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from reviewer.geometry import Volume
from reviewer.view.events import EventGroup
from reviewer.view.overlays import Overlay, SlicePlane
from reviewer.view.presets import WindowPreset, default_window, find_preset
from reviewer.view.reslice import ORIENTATIONS, DisplayFrame, check_orientation, display_frame

LAYOUTS = ("single", "mpr", "compare")
MAX_PANES = 4

EVENT_NAMES = ("panes", "layout", "orientation", "window", "inverted", "crosshair", "view", "overlays", "captions",
               "clicked")


@dataclass(frozen=True)
class Click:
    """A left click on a pane (payload of ``events.clicked``): the pane's name and the world LPS point."""

    pane: str
    world: tuple[float, float, float]


@dataclass(frozen=True)
class Pane:
    name: str
    volume: Volume


@dataclass(frozen=True)
class ViewTransform:
    """Zoom (1 = the slice fits the pane) and pan (offset of the view centre from the slice centre, mm)."""

    zoom: float = 1.0
    pan: tuple[float, float] = (0.0, 0.0)


def acquisition_plane(volume: Volume) -> str:
    """The orientation whose normal is nearest the volume's slice (k) axis."""
    axis = int(np.argmax(np.abs(volume.geometry.direction_matrix[:, 2])))
    return ("sagittal", "coronal", "axial")[axis]


def is_thin_stack(volume: Volume) -> bool:
    """Few slices, much thicker than the pixels: a 2D multi-slice acquisition."""
    k, j, i = volume.shape
    si, sj, sk = volume.spacing
    return k < 24 and sk > 2.0 * max(si, sj)


class ViewerState:
    """Model of the image viewer. See the module docstring; events: ``EVENT_NAMES``."""

    def __init__(self, volume: Volume | None = None, name: str | None = None):
        self.events = EventGroup(*EVENT_NAMES)
        self._panes: list[Pane] = []
        self._layout = "single"
        self._orientation = "axial"
        self._window: tuple[float, float] = (400.0, 40.0)
        self._inverted = False
        self._crosshair = np.zeros(3)
        self._views: dict[str, ViewTransform] = {o: ViewTransform() for o in ORIENTATIONS}
        self._overlays: list[Overlay] = []
        self._captions: dict[str, str] = {}
        self.preset_name: str = ""
        if volume is not None:
            self.set_primary(volume, name)

    # -- read-only properties ----------------------------------------------------------------------------------
    @property
    def panes(self) -> tuple[Pane, ...]:
        return tuple(self._panes)

    @property
    def pane_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self._panes)

    @property
    def primary(self) -> Pane | None:
        return self._panes[0] if self._panes else None

    @property
    def layout(self) -> str:
        return self._layout

    @property
    def orientation(self) -> str:
        """The active orientation, shown by the 'single' and 'compare' layouts."""
        return self._orientation

    @property
    def window(self) -> tuple[float, float]:
        return self._window

    @property
    def inverted(self) -> bool:
        return self._inverted

    @property
    def crosshair(self) -> np.ndarray:
        return self._crosshair.copy()

    @property
    def overlays(self) -> tuple[Overlay, ...]:
        return tuple(self._overlays)

    def view(self, orientation: str) -> ViewTransform:
        return self._views[check_orientation(orientation)]

    def batch(self):
        """Context manager coalescing events (each fires once, after the block)."""
        return self.events.batch()

    # -- panes ---------------------------------------------------------------------------------------------------
    def pane(self, name: str | int | None = None) -> Pane:
        if not self._panes:
            raise LookupError("the viewer has no image")
        if name is None:
            return self._panes[0]
        if isinstance(name, int):
            return self._panes[name]
        for p in self._panes:
            if p.name == name:
                return p
        raise KeyError(f"no pane named {name!r}; panes: {', '.join(self.pane_names)}")

    def set_primary(self, volume: Volume, name: str | None = None) -> None:
        """Show a new study: one pane, default window, crosshair at the centre, view reset.

        The active orientation becomes the acquisition plane; a thin stack of thick slices (a 2D multi-slice
        acquisition such as a knee MRI) opens in the single layout, where reformats would mislead.
        """
        name = name or volume.name or "image"
        with self.batch():
            self._panes = [Pane(name, volume)]
            self.events.panes.emit(self.panes)
            plane = acquisition_plane(volume)
            if plane != self._orientation:
                self._orientation = plane
                self.events.orientation.emit(plane)
            if self._layout == "mpr" and is_thin_stack(volume):
                self._layout = "single"
                self.events.layout.emit(self._layout)
            self._crosshair = volume.geometry.center_world()
            self.events.crosshair.emit(self.crosshair)
            self._reset_window()
            self._reset_views()
            if self._captions:
                self._captions = {}
                self.events.captions.emit(self.captions)
            if self._layout == "compare":
                self._layout = "single"
                self.events.layout.emit(self._layout)

    def add_pane(self, name: str, volume: Volume) -> Pane:
        """Add (or replace, when the name exists) a pane; comparison panes must share the primary's world frame."""
        if not self._panes:
            self.set_primary(volume, name)
            return self._panes[0]
        pane = Pane(name, volume)
        for i, p in enumerate(self._panes):
            if p.name == name:
                self._panes[i] = pane
                break
        else:
            if len(self._panes) >= MAX_PANES:
                raise ValueError(f"at most {MAX_PANES} panes; remove one before adding {name!r}")
            self._panes.append(pane)
        self.events.panes.emit(self.panes)
        return pane

    def remove_pane(self, name: str) -> None:
        pane = self.pane(name)
        if len(self._panes) == 1:
            raise ValueError("cannot remove the last pane; use set_primary to change the image")
        self._panes.remove(pane)
        self.events.panes.emit(self.panes)
        if self._captions.pop(name, None) is not None:
            self.events.captions.emit(self.captions)

    # -- captions (per-pane text, e.g. metrics of a reconstruction) ----------------------------------------------
    @property
    def captions(self) -> dict[str, str]:
        return dict(self._captions)

    def caption(self, pane: str) -> str:
        return self._captions.get(pane, "")

    def set_caption(self, pane: str, text: str) -> None:
        """Text shown in the corner of the pane named ``pane`` (empty text removes it); fires ``captions``."""
        text = str(text or "")
        if self._captions.get(pane, "") == text:
            return
        if text:
            self._captions[pane] = text
        else:
            self._captions.pop(pane, None)
        self.events.captions.emit(self.captions)

    def set_captions(self, captions: dict[str, str]) -> None:
        """Replace all captions at once (one event)."""
        new = {k: str(v) for k, v in captions.items() if v}
        if new != self._captions:
            self._captions = new
            self.events.captions.emit(self.captions)

    # -- clicks --------------------------------------------------------------------------------------------------
    def report_click(self, pane: str, world: Any) -> None:
        """A widget reports a left click on ``pane`` at a world point; tools listen to ``events.clicked``."""
        w = np.asarray(world, dtype=float).reshape(3)
        self.events.clicked.emit(Click(str(pane), (float(w[0]), float(w[1]), float(w[2]))))

    # -- layout / orientation -------------------------------------------------------------------------------------
    def set_layout(self, name: str) -> None:
        if name not in LAYOUTS:
            raise ValueError(f"unknown layout {name!r}; expected one of {', '.join(LAYOUTS)}")
        if name != self._layout:
            self._layout = name
            self.events.layout.emit(name)

    def set_orientation(self, orientation: str) -> None:
        check_orientation(orientation)
        if orientation != self._orientation:
            self._orientation = orientation
            self.events.orientation.emit(orientation)

    def visible_panes(self) -> list[tuple[Pane, str]]:
        """(pane, orientation) of each view the current layout shows, in reading order."""
        if not self._panes:
            return []
        if self._layout == "mpr":
            return [(self._panes[0], o) for o in ORIENTATIONS]
        if self._layout == "compare":
            return [(p, self._orientation) for p in self._panes]
        return [(self._panes[0], self._orientation)]

    # -- geometry helpers ------------------------------------------------------------------------------------------
    def frame(self, orientation: str, pane: str | int | None = None) -> DisplayFrame:
        return display_frame(self.pane(pane).volume, orientation)

    def slice_index(self, orientation: str, pane: str | int | None = None) -> int:
        """Slice shown in ``orientation`` by ``pane``: the one containing the crosshair."""
        return self.frame(orientation, pane).slice_index_of_world(self._crosshair)

    def plane(self, orientation: str, pane: str | int | None = None) -> SlicePlane:
        fr = self.frame(orientation, pane)
        return SlicePlane(fr, fr.slice_index_of_world(self._crosshair))

    def n_slices(self, orientation: str, pane: str | int | None = None) -> int:
        return self.frame(orientation, pane).n_slices

    # -- crosshair / slices ------------------------------------------------------------------------------------------
    def set_crosshair(self, world: Any) -> None:
        w = np.asarray(world, dtype=float).reshape(3)
        if not np.all(np.isfinite(w)):
            raise ValueError("crosshair must be a finite LPS point")
        if np.array_equal(w, self._crosshair):
            return
        self._crosshair = w
        self.events.crosshair.emit(self.crosshair)

    def set_slice(self, orientation: str, index: int, pane: str | int | None = None) -> int:
        """Move the crosshair along the view normal onto slice ``index`` (clamped); returns the slice shown."""
        fr = self.frame(orientation, pane)
        idx = fr.clamp_index(index)
        d = fr.world_to_display(self._crosshair)
        d[2] = idx
        self.set_crosshair(fr.display_to_world(d))
        return idx

    def step_slice(self, orientation: str, delta: int, pane: str | int | None = None) -> int:
        return self.set_slice(orientation, self.slice_index(orientation, pane) + int(delta), pane)

    # -- window --------------------------------------------------------------------------------------------------
    def set_window(self, width: float, level: float, preset_name: str = "") -> None:
        w = (max(float(width), 1e-6), float(level))
        self.preset_name = preset_name
        if w != self._window:
            self._window = w
            self.events.window.emit(w)

    def apply_preset(self, key: int | str) -> WindowPreset:
        """Window preset by shortcut 1-5 or name; non-CT (MR) volumes get the percentile auto window."""
        pane = self.pane()
        preset = find_preset(pane.volume, key)
        self.set_window(*preset.window_for(pane.volume), preset_name=preset.name)
        return preset

    def _reset_window(self) -> None:
        if self._panes:
            self.set_window(*default_window(self._panes[0].volume), preset_name="default")
        if self._inverted:
            self._inverted = False
            self.events.inverted.emit(False)

    def window_step(self) -> float:
        """Grey-value change per screen pixel of a window/level drag."""
        if not self._panes:
            return 1.0
        lo, hi = self._panes[0].volume.robust_range(0.1, 99.9)
        return max((hi - lo) / 500.0, 1e-6)

    def set_inverted(self, on: bool) -> None:
        if bool(on) != self._inverted:
            self._inverted = bool(on)
            self.events.inverted.emit(self._inverted)

    def toggle_invert(self) -> None:
        self.set_inverted(not self._inverted)

    # -- zoom / pan ------------------------------------------------------------------------------------------------
    def set_view(self, orientation: str, zoom: float | None = None, pan: tuple[float, float] | None = None) -> None:
        cur = self.view(orientation)
        new = replace(
            cur,
            zoom=cur.zoom if zoom is None else float(min(max(zoom, 0.05), 50.0)),
            pan=cur.pan if pan is None else (float(pan[0]), float(pan[1])),
        )
        if new != cur:
            self._views[orientation] = new
            self.events.view.emit((orientation, new))

    def _reset_views(self) -> None:
        for o in ORIENTATIONS:
            if self._views[o] != ViewTransform():
                self._views[o] = ViewTransform()
                self.events.view.emit((o, self._views[o]))

    def reset_view(self) -> None:
        """Zoom to fit, no pan, the default window, not inverted (the crosshair stays)."""
        with self.batch():
            self._reset_views()
            self._reset_window()

    # -- overlays --------------------------------------------------------------------------------------------------
    def add_overlay(self, overlay: Overlay) -> None:
        """Add an overlay, replacing one with the same name."""
        self._overlays = [o for o in self._overlays if o.name != overlay.name] + [overlay]
        self.events.overlays.emit(self.overlays)

    def remove_overlay(self, name: str) -> None:
        self._overlays = [o for o in self._overlays if o.name != name]
        self.events.overlays.emit(self.overlays)

    def overlay(self, name: str) -> Overlay:
        for o in self._overlays:
            if o.name == name:
                return o
        raise KeyError(f"no overlay named {name!r}")

    def set_overlay_visible(self, name: str, on: bool) -> None:
        o = self.overlay(name)
        if o.visible != bool(on):
            o.visible = bool(on)
            self.events.overlays.emit(self.overlays)

    def set_overlay_opacity(self, name: str, opacity: float) -> None:
        o = self.overlay(name)
        o.opacity = float(min(max(opacity, 0.0), 1.0))
        self.events.overlays.emit(self.overlays)

    # -- read-out --------------------------------------------------------------------------------------------------
    def readout(self, world: Any) -> str:
        """One line per pane: value with unit, voxel index (i, j, k) and the patient position in mm (LPS)."""
        w = np.asarray(world, dtype=float).reshape(3)
        pos = f"{w[0]:.1f}, {w[1]:.1f}, {w[2]:.1f} mm (LPS)"
        lines = []
        for p in self._panes:
            vol = p.volume
            idx = vol.geometry.world_to_array_index(w)
            if idx is None:
                lines.append(f"{p.name}: outside the image  |  {pos}")
                continue
            value = vol.array[idx]
            if np.issubdtype(vol.array.dtype, np.integer):
                text = f"{int(value)}"
            else:
                text = f"{float(value):.4g}"
            if vol.unit:
                text += f" {vol.unit}"
            k, j, i = idx
            lines.append(f"{p.name}: {text}  |  voxel ({i}, {j}, {k})  |  {pos}")
        return "\n".join(lines)

