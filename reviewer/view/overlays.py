"""Overlays in world (LPS mm) coordinates, cut by a pane's slice plane into 2D primitives. Qt-free.

``overlay.cut(plane)`` is a pure function returning primitives in the pane's screen coordinates (continuous
display pixel indices, pixel centres at integers; see :mod:`reviewer.view.reslice`). The GUI only draws them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from reviewer.geometry import Geometry, Volume
from reviewer.view.reslice import DisplayFrame, display_frame

Color = Any  # (r, g, b[, a]) 0-255 or "#rrggbb"


@dataclass(frozen=True)
class SlicePlane:
    """The display frame of a pane plus the slice it shows."""

    frame: DisplayFrame
    index: int

    @classmethod
    def of(cls, volume_or_geometry: Volume | Geometry, orientation: str, index: int) -> "SlicePlane":
        return cls(display_frame(volume_or_geometry, orientation), int(index))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.frame.height, self.frame.width)


# -- primitives ------------------------------------------------------------------------------------------------------
@dataclass
class Markers:
    xy: np.ndarray  # (N, 2) screen x, y
    labels: list[str]
    color: Color
    size_px: float


@dataclass
class Ellipses:
    centers: np.ndarray  # (N, 2) screen x, y
    radii: np.ndarray  # (N, 2) radius along screen x and screen y, in display pixels
    color: Color
    labels: list[str] = field(default_factory=list)


@dataclass
class Rects:
    mins: np.ndarray  # (N, 2) screen x, y of the top-left pixel-edge corner
    maxs: np.ndarray  # (N, 2) bottom-right pixel-edge corner
    color: Color
    labels: list[str] = field(default_factory=list)


@dataclass
class RGBAImage:
    rgba: np.ndarray  # (height, width, 4) uint8, same grid as the pane's slice


Primitive = Markers | Ellipses | Rects | RGBAImage


# -- overlays -------------------------------------------------------------------------------------------------------
class Overlay:
    name: str
    visible: bool
    opacity: float
    #: pane names that show the overlay in the compare layout (None: every pane); single and MPR layouts show it
    #: anyway. E.g. one model's detections only on that model's pane.
    panes: tuple[str, ...] | None = None

    def shown_in(self, pane: str, layout: str = "compare") -> bool:
        return self.panes is None or layout != "compare" or pane in self.panes

    def cut(self, plane: SlicePlane) -> list[Primitive]:  # pragma: no cover - interface
        raise NotImplementedError


def _labels(labels: Sequence[str] | None, n: int) -> list[str]:
    if labels is None:
        return [""] * n
    labels = [str(s) for s in labels]
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} items")
    return labels


def _points(a: Any, what: str) -> np.ndarray:
    p = np.asarray(a, dtype=float).reshape(-1, 3)
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{what}: coordinates must be finite")
    return p


@dataclass
class PointsOverlay(Overlay):
    """Marks at world points (e.g. CAD detections, reader marks), shown on slices within ``slab`` slices."""

    points: Any
    labels: Sequence[str] | None = None
    color: Color = (255, 200, 0)
    size_px: float = 10.0
    name: str = "points"
    visible: bool = True
    opacity: float = 1.0
    slab: float = 0.5  # shown when |slice distance| <= slab (in slices)

    def __post_init__(self) -> None:
        self.points = _points(self.points, self.name)
        self.labels = _labels(self.labels, len(self.points))

    def cut(self, plane: SlicePlane) -> list[Primitive]:
        if len(self.points) == 0:
            return []
        d = plane.frame.world_to_display(self.points)
        keep = np.abs(d[:, 2] - plane.index) <= self.slab + 1e-6
        if not keep.any():
            return []
        return [Markers(d[keep, :2], [lb for lb, k in zip(self.labels, keep) if k], self.color, self.size_px)]


@dataclass
class SpheresOverlay(Overlay):
    """Spheres (e.g. nodules: centre + radius), drawn as the circle where the slice plane cuts each sphere."""

    centers: Any
    radii_mm: Any
    labels: Sequence[str] | None = None
    color: Color = (0, 220, 0)
    name: str = "spheres"
    visible: bool = True
    opacity: float = 1.0

    def __post_init__(self) -> None:
        self.centers = _points(self.centers, self.name)
        self.radii_mm = np.broadcast_to(np.asarray(self.radii_mm, dtype=float), (len(self.centers),)).copy()
        self.labels = _labels(self.labels, len(self.centers))

    def cut(self, plane: SlicePlane) -> list[Primitive]:
        if len(self.centers) == 0:
            return []
        fr = plane.frame
        d = fr.world_to_display(self.centers)
        dist_mm = (d[:, 2] - plane.index) * fr.slice_spacing  # display axes are orthonormal voxel axes
        r2 = self.radii_mm**2 - dist_mm**2
        keep = r2 > 0
        if not keep.any():
            return []
        r = np.sqrt(r2[keep])
        sx, sy = fr.pixel_size
        radii = np.stack([r / sx, r / sy], axis=1)
        return [Ellipses(d[keep, :2], radii, self.color, [lb for lb, k in zip(self.labels, keep) if k])]


def _box_corners(mins: np.ndarray, maxs: np.ndarray) -> np.ndarray:
    """(N, 8, 3) corners of boxes given by min / max corners."""
    sel = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=bool)
    return np.where(sel[None, :, :], maxs[:, None, :], mins[:, None, :])


@dataclass
class BoxesOverlay(Overlay):
    """Boxes: world axis-aligned (``min_corners``, ``max_corners`` in LPS mm), or voxel boxes of a reference grid.

    Drawn as the rectangle where the slice plane crosses the box (the display-space bounding box of its corners,
    exact unless the pane's volume is oblique to the box). Use :meth:`from_voxel_boxes` for per-slice 2D boxes
    given in the voxel space of a reference geometry.
    """

    min_corners: Any
    max_corners: Any
    labels: Sequence[str] | None = None
    color: Color = (0, 160, 255)
    name: str = "boxes"
    visible: bool = True
    opacity: float = 1.0
    corners: Any = None  # (N, 8, 3) world corners; derived from min/max corners unless given

    def __post_init__(self) -> None:
        self.min_corners = _points(self.min_corners, self.name)
        self.max_corners = _points(self.max_corners, self.name)
        if self.min_corners.shape != self.max_corners.shape:
            raise ValueError(f"{self.name}: {len(self.min_corners)} min corners but {len(self.max_corners)} max corners")
        if self.corners is None:
            lo = np.minimum(self.min_corners, self.max_corners)
            hi = np.maximum(self.min_corners, self.max_corners)
            self.corners = _box_corners(lo, hi)
        self.corners = np.asarray(self.corners, dtype=float).reshape(-1, 8, 3)
        self.labels = _labels(self.labels, len(self.corners))

    @classmethod
    def from_voxel_boxes(
        cls, geometry: Geometry, min_ijk: Any, max_ijk: Any, **kwargs: Any
    ) -> "BoxesOverlay":
        """Boxes given as voxel index ranges (inclusive, voxel centres) of ``geometry``.

        A 2D box on slice k is ``min_ijk = (i0, j0, k)``, ``max_ijk = (i1, j1, k)``; it covers the voxels' full
        extent (+-0.5 voxel), so it shows on exactly that slice of its own grid.
        """
        lo = np.asarray(min_ijk, dtype=float).reshape(-1, 3) - 0.5
        hi = np.asarray(max_ijk, dtype=float).reshape(-1, 3) + 0.5
        corners = geometry.voxel_to_world(_box_corners(lo, hi).reshape(-1, 3)).reshape(-1, 8, 3)
        return cls(corners.min(axis=1), corners.max(axis=1), corners=corners, **kwargs)

    def cut(self, plane: SlicePlane) -> list[Primitive]:
        if len(self.corners) == 0:
            return []
        d = plane.frame.world_to_display(self.corners.reshape(-1, 3)).reshape(-1, 8, 3)
        lo, hi = d.min(axis=1), d.max(axis=1)
        # a voxel-centred box of extent e spans display coords [lo, hi]; slice n crosses it when lo < n < hi
        eps = 1e-6
        keep = (lo[:, 2] < plane.index + eps) & (hi[:, 2] > plane.index - eps)
        if not keep.any():
            return []
        return [Rects(lo[keep, :2], hi[keep, :2], self.color, [lb for lb, k in zip(self.labels, keep) if k])]


# -- volume overlays -------------------------------------------------------------------------------------------------
def _sample_on_plane(volume: Volume, plane: SlicePlane, order: int, cval: float) -> np.ndarray:
    """Values of ``volume`` on the pane's slice: a direct view when grids match, else resampled via world coords."""
    if volume.geometry == plane.frame.geometry:
        return plane.frame.slice_image(volume.array, plane.index)
    from scipy.ndimage import map_coordinates

    world = plane.frame.plane_pixel_world(plane.index)  # (h, w, 3)
    ijk = volume.geometry.world_to_voxel(world.reshape(-1, 3))
    coords = ijk[:, ::-1].T  # array order (k, j, i)
    arr = volume.array
    if order > 0 and not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    vals = map_coordinates(arr, coords, order=order, mode="constant", cval=cval, prefilter=False)
    return vals.reshape(plane.shape)


DEFAULT_LABEL_COLORS = {
    1: (255, 60, 60),
    2: (60, 220, 60),
    3: (60, 120, 255),
    4: (255, 220, 0),
    5: (255, 0, 255),
    6: (0, 230, 230),
    7: (255, 140, 0),
    8: (160, 80, 255),
}


@dataclass
class LabelMapOverlay(Overlay):
    """An integer label volume (segmentation) drawn in colour; label 0 is transparent. Nearest-neighbour resampling."""

    volume: Volume
    colors: dict[int, Color] | None = None
    name: str = "labels"
    visible: bool = True
    opacity: float = 0.4

    def __post_init__(self) -> None:
        if not np.issubdtype(self.volume.array.dtype, np.integer) and self.volume.array.dtype != bool:
            raise ValueError(f"{self.name}: a label map needs an integer array, got {self.volume.array.dtype}")
        self._lut = self._build_lut()

    def _build_lut(self) -> np.ndarray:
        colors = dict(DEFAULT_LABEL_COLORS if self.colors is None else self.colors)
        top = int(max([int(self.volume.array.max()) if self.volume.array.size else 0, *colors.keys(), 1]))
        lut = np.zeros((top + 1, 4), dtype=np.uint8)
        for label in range(1, top + 1):
            c = colors.get(label, DEFAULT_LABEL_COLORS[(label - 1) % len(DEFAULT_LABEL_COLORS) + 1])
            rgb = _rgb(c)
            lut[label] = (*rgb, 255)
        return lut

    def cut(self, plane: SlicePlane) -> list[Primitive]:
        lab = _sample_on_plane(self.volume, plane, order=0, cval=0)
        lab = np.clip(lab, 0, len(self._lut) - 1).astype(np.intp, copy=False)
        return [RGBAImage(np.ascontiguousarray(self._lut[lab]))]


def _rgb(c: Color) -> tuple[int, int, int]:
    if isinstance(c, str):
        s = c.lstrip("#")
        return (int(s[0:2], 16), int(s[2:4], 16), int(s[4:6], 16))
    return (int(c[0]), int(c[1]), int(c[2]))


# piecewise-linear colour maps (position 0..1, r, g, b)
COLORMAPS = {
    "hot": [(0.0, 0, 0, 0), (0.35, 230, 0, 0), (0.7, 255, 210, 0), (1.0, 255, 255, 255)],
    "jet": [(0.0, 0, 0, 140), (0.15, 0, 0, 255), (0.4, 0, 255, 255), (0.6, 255, 255, 0), (0.85, 255, 0, 0), (1.0, 128, 0, 0)],
    "viridis": [(0.0, 68, 1, 84), (0.25, 59, 82, 139), (0.5, 33, 145, 140), (0.75, 94, 201, 98), (1.0, 253, 231, 37)],
    "gray": [(0.0, 0, 0, 0), (1.0, 255, 255, 255)],
}


def colormap_lut(name: str, n: int = 256) -> np.ndarray:
    """(n, 3) uint8 table of a named colour map."""
    if name not in COLORMAPS:
        raise KeyError(f"unknown colour map {name!r}; known: {', '.join(COLORMAPS)}")
    stops = np.asarray(COLORMAPS[name], dtype=float)
    t = np.linspace(0.0, 1.0, n)
    return np.stack([np.interp(t, stops[:, 0], stops[:, c]) for c in (1, 2, 3)], axis=1).round().astype(np.uint8)


@dataclass
class HeatMapOverlay(Overlay):
    """A float volume (probability, error map) through a colour map; values <= range[0] are transparent."""

    volume: Volume
    colormap: str = "hot"
    opacity: float = 0.5
    range: tuple[float, float] | None = None
    name: str = "heat map"
    visible: bool = True

    def __post_init__(self) -> None:
        if self.range is None:
            self.range = self.volume.robust_range(0.0, 100.0)
        self._lut = colormap_lut(self.colormap)

    def cut(self, plane: SlicePlane) -> list[Primitive]:
        vals = np.asarray(_sample_on_plane(self.volume, plane, order=1, cval=np.nan), dtype=np.float32)
        lo, hi = self.range
        t = (vals - lo) / max(hi - lo, 1e-12)
        valid = np.isfinite(t) & (t > 0)
        idx = (np.clip(np.nan_to_num(t, nan=0.0), 0.0, 1.0) * 255).astype(np.intp)
        rgba = np.zeros(plane.shape + (4,), dtype=np.uint8)
        rgba[..., :3] = self._lut[idx]
        rgba[..., 3] = np.where(valid, 255, 0)
        return [RGBAImage(rgba)]
