"""FNAF shapes on the 320x320 image grid: the official random walk, a disk, a Gaussian blob.

A feature is an additive image ``values`` (zero outside its support). Intensities are absolute, or relative to the
image's range (fraction of max - min, the official sampling range being min..max of the fully sampled image).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

SHAPES = ("random-walk", "disk", "gaussian")
# Location range of the official evaluation (start uniform in [50, 270] on a 320x320 image).
OFFICIAL_LOCATION_RANGE = (50, 270)


@dataclass
class Feature:
    """An additive feature on an image grid, with the pixels it occupies and where it was placed."""

    values: np.ndarray  # (H, W) float32, zero outside the support
    center: tuple[int, int]  # (row, col)
    shape: str
    params: dict = field(default_factory=dict)

    @property
    def support(self) -> np.ndarray:
        return self.values != 0

    def loss_region(self) -> np.ndarray:
        """The feature pixels plus their immediate neighbours (3x3), where the attack loss is measured."""
        return loss_region(self.support)


def loss_region(support: np.ndarray) -> np.ndarray:
    return ndimage.binary_dilation(support, structure=np.ones((3, 3), bool))


def random_walk(shape: tuple[int, int], start: tuple[int, int], n_steps: int, low: float, high: float,
                rng: np.random.Generator) -> Feature:
    """The official FNAF shape: n steps, each setting the current pixel to U(low, high) then moving 1 pixel."""
    h, w = shape
    values = np.zeros(shape, np.float32)
    r, c = start
    moves = ((-1, 0), (1, 0), (0, -1), (0, 1))
    for _ in range(n_steps):
        values[r, c] = rng.uniform(low, high)
        dr, dc = moves[rng.integers(4)]
        r = int(np.clip(r + dr, 0, h - 1))
        c = int(np.clip(c + dc, 0, w - 1))
    return Feature(values, (int(start[0]), int(start[1])), "random-walk", {"n_steps": n_steps, "low": low, "high": high})


def disk(shape: tuple[int, int], center: tuple[int, int], radius_px: float, intensity: float) -> Feature:
    rr, cc = np.ogrid[: shape[0], : shape[1]]
    inside = (rr - center[0]) ** 2 + (cc - center[1]) ** 2 <= radius_px ** 2
    values = np.where(inside, np.float32(intensity), np.float32(0))
    return Feature(values.astype(np.float32), tuple(center), "disk", {"radius_px": radius_px, "intensity": intensity})


def gaussian_blob(shape: tuple[int, int], center: tuple[int, int], sigma_px: float, amplitude: float,
                  cutoff_sigmas: float = 2.5) -> Feature:
    rr, cc = np.ogrid[: shape[0], : shape[1]]
    d2 = (rr - center[0]) ** 2 + (cc - center[1]) ** 2
    values = amplitude * np.exp(-d2 / (2 * sigma_px ** 2))
    values[d2 > (cutoff_sigmas * sigma_px) ** 2] = 0
    return Feature(values.astype(np.float32), tuple(center), "gaussian", {"sigma_px": sigma_px, "amplitude": amplitude})


def make_feature(kind: str, shape: tuple[int, int], center: tuple[int, int], size: float, intensity: float,
                 rng: np.random.Generator | None = None, intensity_high: float | None = None) -> Feature:
    """One entry point for the GUI and the CLI.

    ``size``: random walk -> number of steps; disk -> radius in pixels; gaussian -> sigma in pixels.
    ``intensity``: the (low) intensity; the random walk draws U(intensity, intensity_high).
    """
    if kind == "random-walk":
        rng = rng or np.random.default_rng()
        return random_walk(shape, center, int(size), intensity, intensity if intensity_high is None else intensity_high, rng)
    if kind == "disk":
        return disk(shape, center, size, intensity)
    if kind == "gaussian":
        return gaussian_blob(shape, center, size, intensity)
    raise ValueError(f"unknown feature shape {kind!r}; choose one of {', '.join(SHAPES)}")


def mm_to_px(size_mm: float, pixel_spacing_mm: float) -> float:
    return size_mm / pixel_spacing_mm


def relative_intensity(image: np.ndarray, fraction: float) -> float:
    """An intensity given as a fraction of the image's range (max - min)."""
    return float(fraction * (float(image.max()) - float(image.min())))
