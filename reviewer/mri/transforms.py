"""fastMRI's single-coil transform: mask -> ifft2c -> centre crop -> magnitude -> instance normalisation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reviewer.mri.fft import ifft2c
from reviewer.mri.masks import Mask

CROP = (320, 320)
NORM_EPS = 1e-11
CLAMP = 6.0


def center_crop(data: np.ndarray, shape: tuple[int, int] = CROP, allow_smaller: bool = False) -> np.ndarray:
    """Crop the last two axes to ``shape`` around the centre (fastMRI's ``center_crop``).

    With ``allow_smaller`` an image smaller than ``shape`` along an axis keeps its size there.
    """
    rows, cols = data.shape[-2:]
    h, w = shape
    if allow_smaller:
        h, w = min(h, rows), min(w, cols)
    if not (0 < h <= rows and 0 < w <= cols):
        raise ValueError(f"cannot crop {rows}x{cols} to {h}x{w}")
    r0 = (rows - h) // 2
    c0 = (cols - w) // 2
    return data[..., r0:r0 + h, c0:c0 + w]


def normalize_instance(data: np.ndarray, eps: float = NORM_EPS) -> tuple[np.ndarray, float, float]:
    """(data - mean) / (std + eps), returning mean and std (torch's unbiased std, as fastMRI uses)."""
    mean = float(data.mean())
    std = float(data.std(ddof=1)) if data.size > 1 else 0.0
    return (data - mean) / (std + eps), mean, std


def normalize(data: np.ndarray, mean: float, std: float, eps: float = NORM_EPS) -> np.ndarray:
    return (data - mean) / (std + eps)


def zero_filled(kspace: np.ndarray, mask: Mask | None = None, crop: tuple[int, int] | None = CROP) -> np.ndarray:
    """Magnitude of the (masked) inverse FFT, centre-cropped: the zero-filled reconstruction."""
    k = kspace if mask is None else mask.apply(kspace)
    img = ifft2c(k)
    if crop is not None:
        img = center_crop(img, crop)
    return np.abs(img).astype(np.float32)


@dataclass
class UnetSample:
    """One slice prepared for the U-Net: normalised zero-filled input, normalised target, and the statistics."""

    image: np.ndarray  # (320, 320) float32, normalised and clamped
    target: np.ndarray | None  # same normalisation, clamped
    mean: float
    std: float


def unet_sample(kspace: np.ndarray, mask: Mask | None, target: np.ndarray | None = None,
                crop: tuple[int, int] = CROP) -> UnetSample:
    """fastMRI ``UnetDataTransform`` for a single-coil slice (kspace (rows, cols) complex)."""
    image = zero_filled(kspace, mask, crop)
    image, mean, std = normalize_instance(image)
    image = np.clip(image, -CLAMP, CLAMP).astype(np.float32)
    tgt = None
    if target is not None:
        tgt = np.clip(normalize(center_crop(target, crop), mean, std), -CLAMP, CLAMP).astype(np.float32)
    return UnetSample(image, tgt, mean, std)
