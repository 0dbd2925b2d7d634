"""Orientation handling: a *display frame* per view orientation, without resampling.

The voxel axes of a volume are matched to the nearest patient axes; a display frame then permutes and flips
them (numpy views, never a copy of the volume) so that the screen follows the radiological convention:

=========  =====================  =====================  ===========================
view       screen x (left->right)  screen y (top->down)   slice index increases to
=========  =====================  =====================  ===========================
axial      R -> L                 A -> P                 S (superior)
coronal    R -> L                 S -> I                 A (anterior)
sagittal   A -> P                 S -> I                 R (right)
=========  =====================  =====================  ===========================

Screen coordinates ``(x, y)`` are continuous display pixel indices (pixel centres at integers, x = column,
y = row of :func:`slice_image`), ``n`` is the slice index along the view normal. Oblique volumes are shown on
their own voxel grid (the nearest patient axes); the edge labels then carry combined letters ("RA") computed
from the actual direction cosines. The slice index grows like 3D Slicer's slice offset (towards S, A, R).
All world <-> voxel conversion goes through :class:`reviewer.geometry.Geometry`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from reviewer.geometry import Geometry, Volume, direction_letters

ORIENTATIONS = ("axial", "coronal", "sagittal")

# (patient axis, sign) of screen x, screen y and the slice normal, in LPS (0 = x: R->L, 1 = y: A->P, 2 = z: I->S)
_SCREEN_AXES = {
    "axial": ((0, +1), (1, +1), (2, +1)),
    "coronal": ((0, +1), (2, -1), (1, -1)),
    "sagittal": ((1, +1), (2, -1), (0, -1)),
}


def check_orientation(orientation: str) -> str:
    if orientation not in _SCREEN_AXES:
        raise ValueError(f"unknown orientation {orientation!r}; expected one of {', '.join(ORIENTATIONS)}")
    return orientation


def patient_axis_of_voxel_axes(direction: np.ndarray) -> tuple[int, int, int]:
    """For voxel axes i, j, k the patient axis (0, 1, 2) each is closest to (a permutation, best overall match)."""
    d = np.abs(np.asarray(direction, dtype=float))
    best = max(itertools.permutations(range(3)), key=lambda p: sum(d[p[a], a] for a in range(3)))
    return tuple(int(v) for v in best)  # type: ignore[return-value]


@dataclass(frozen=True)
class DisplayFrame:
    """How one orientation of one geometry is put on screen. Cheap; cached per (geometry, orientation)."""

    geometry: Geometry
    orientation: str
    voxel_axes: tuple[int, int, int]  # voxel axis (0=i, 1=j, 2=k) shown as screen x, screen y, slice normal
    flips: tuple[bool, bool, bool]  # whether each display axis runs against its voxel axis

    # -- sizes ---------------------------------------------------------------------------------------------------
    @property
    def sizes(self) -> tuple[int, int, int]:
        """(width, height, number of slices)."""
        s = self.geometry.size_ijk
        return (s[self.voxel_axes[0]], s[self.voxel_axes[1]], s[self.voxel_axes[2]])

    @property
    def width(self) -> int:
        return self.sizes[0]

    @property
    def height(self) -> int:
        return self.sizes[1]

    @property
    def n_slices(self) -> int:
        return self.sizes[2]

    @property
    def pixel_size(self) -> tuple[float, float]:
        """(mm per screen x pixel, mm per screen y pixel)."""
        sp = self.geometry.spacing
        return (sp[self.voxel_axes[0]], sp[self.voxel_axes[1]])

    @property
    def slice_spacing(self) -> float:
        return self.geometry.spacing[self.voxel_axes[2]]

    def clamp_index(self, index: float) -> int:
        return int(min(max(int(round(float(index))), 0), self.n_slices - 1))

    # -- arrays ----------------------------------------------------------------------------------------------------
    def display_array(self, array: np.ndarray) -> np.ndarray:
        """The volume array as a (slice, screen y, screen x) numpy *view* (transpose + negative strides)."""
        if tuple(array.shape) != tuple(self.geometry.shape):
            raise ValueError(f"array shape {array.shape} does not match geometry {self.geometry.shape}")
        # array is (k, j, i): voxel axis a lives in array axis 2 - a
        v = np.transpose(array, (2 - self.voxel_axes[2], 2 - self.voxel_axes[1], 2 - self.voxel_axes[0]))
        sl = tuple(slice(None, None, -1) if f else slice(None) for f in (self.flips[2], self.flips[1], self.flips[0]))
        return v[sl]

    def slice_image(self, array: np.ndarray, index: int) -> np.ndarray:
        """2D view (rows = screen y, cols = screen x) of slice ``index`` (clamped)."""
        return self.display_array(array)[self.clamp_index(index)]

    # -- coordinates -------------------------------------------------------------------------------------------------
    def display_to_voxel(self, xyn: Any) -> np.ndarray:
        """Screen (x, y, slice) -> continuous voxel (i, j, k); shape (3,) or (N, 3)."""
        p = np.asarray(xyn, dtype=float)
        out = np.empty_like(p)
        size = self.geometry.size_ijk
        for d in range(3):
            a = self.voxel_axes[d]
            out[..., a] = (size[a] - 1 - p[..., d]) if self.flips[d] else p[..., d]
        return out

    def voxel_to_display(self, ijk: Any) -> np.ndarray:
        """Continuous voxel (i, j, k) -> screen (x, y, slice)."""
        p = np.asarray(ijk, dtype=float)
        out = np.empty_like(p)
        size = self.geometry.size_ijk
        for d in range(3):
            a = self.voxel_axes[d]
            out[..., d] = (size[a] - 1 - p[..., a]) if self.flips[d] else p[..., a]
        return out

    def display_to_world(self, xyn: Any) -> np.ndarray:
        return self.geometry.voxel_to_world(self.display_to_voxel(xyn))

    def world_to_display(self, xyz: Any) -> np.ndarray:
        return self.voxel_to_display(self.geometry.world_to_voxel(xyz))

    def slice_index_of_world(self, xyz: Any) -> int:
        """The (clamped) slice index containing a world point."""
        return self.clamp_index(self.world_to_display(xyz)[..., 2])

    # -- directions and labels -----------------------------------------------------------------------------------
    def screen_direction(self, d: int) -> np.ndarray:
        """LPS unit vector of increasing display axis d (0 = screen x, 1 = screen y, 2 = slice normal)."""
        v = self.geometry.direction_matrix[:, self.voxel_axes[d]]
        return -v if self.flips[d] else v

    def edge_labels(self) -> dict[str, str]:
        """Patient-direction letters at the screen edges: keys "left", "right", "top", "bottom"."""
        left, right = direction_letters(self.screen_direction(0))
        top, bottom = direction_letters(self.screen_direction(1))
        return {"left": left, "right": right, "top": top, "bottom": bottom}

    def plane_pixel_world(self, index: float) -> np.ndarray:
        """World coordinates of every pixel centre of a slice: (height, width, 3)."""
        w, h = self.width, self.height
        ys, xs = np.mgrid[0:h, 0:w].astype(float)
        xyn = np.stack([xs, ys, np.full_like(xs, float(index))], axis=-1)
        return self.display_to_world(xyn)


@lru_cache(maxsize=256)
def _frame(geometry: Geometry, orientation: str) -> DisplayFrame:
    check_orientation(orientation)
    direction = geometry.direction_matrix
    patient_of = patient_axis_of_voxel_axes(direction)
    voxel_of = {p: a for a, p in enumerate(patient_of)}
    axes, flips = [], []
    for patient_axis, sign in _SCREEN_AXES[orientation]:
        a = voxel_of[patient_axis]
        axes.append(a)
        flips.append(bool(direction[patient_axis, a] * sign < 0))
    return DisplayFrame(geometry, orientation, tuple(axes), tuple(flips))  # type: ignore[arg-type]


def display_frame(volume_or_geometry: Volume | Geometry, orientation: str) -> DisplayFrame:
    g = volume_or_geometry.geometry if isinstance(volume_or_geometry, Volume) else volume_or_geometry
    return _frame(g, orientation)


# -- module-level conveniences --------------------------------------------------------------------------------------
def n_slices(volume: Volume, orientation: str) -> int:
    return display_frame(volume, orientation).n_slices


def slice_image(volume: Volume, orientation: str, index: int) -> np.ndarray:
    """2D numpy view (rows = screen y, cols = screen x) of one slice; no copy."""
    return display_frame(volume, orientation).slice_image(volume.array, index)


def pixel_size(volume: Volume, orientation: str) -> tuple[float, float]:
    return display_frame(volume, orientation).pixel_size


def screen_to_world(volume: Volume, orientation: str, x: float, y: float, index: float) -> np.ndarray:
    return display_frame(volume, orientation).display_to_world((x, y, index))


def world_to_screen(volume: Volume, orientation: str, xyz: Any) -> tuple[float, float, float]:
    x, y, n = display_frame(volume, orientation).world_to_display(xyz)
    return (float(x), float(y), float(n))


def slice_index_of_world(volume: Volume, orientation: str, xyz: Any) -> int:
    return display_frame(volume, orientation).slice_index_of_world(xyz)


def edge_labels(volume: Volume, orientation: str) -> dict[str, str]:
    return display_frame(volume, orientation).edge_labels()
