"""Pre-processing for detection: resampling to a model's spacing, HU windowing, lung mask.

The lung mask is a threshold + connected-components segmentation (air below -400 HU, large components not touching
the grid border, holes filled slice by slice, then dilated so juxtapleural nodules stay inside); issue 4 accepts
this classical approach. It only restricts where candidates are looked for, so it errs on the generous side.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from reviewer.geometry import Geometry, Volume


def window01(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    lo, hi = float(window[0]), float(window[1])
    out = (np.asarray(hu, dtype=np.float32) - np.float32(lo)) * np.float32(1.0 / (hi - lo))
    return np.clip(out, 0.0, 1.0, out=out)


def resample(volume: Volume, spacing_mm: float | tuple[float, float, float], order: int = 1,
             cval: float = -1024.0) -> Volume:
    """Resample onto a grid with the same origin and direction and the given (i, j, k) spacing (trilinear).

    The new grid covers the old one's extent; voxel (0, 0, 0) stays where it was, so world coordinates are
    exact through the new :class:`Geometry`.
    """
    sp_new = np.broadcast_to(np.asarray(spacing_mm, dtype=float), (3,))
    sp_old = np.asarray(volume.spacing, dtype=float)
    size_old = np.asarray(volume.geometry.size_ijk, dtype=float)
    size_new = np.maximum(1, np.floor((size_old - 1) * sp_old / sp_new + 1e-6).astype(int) + 1)
    shape_new = (int(size_new[2]), int(size_new[1]), int(size_new[0]))
    scale_kji = (sp_new / sp_old)[::-1]
    arr = volume.array
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32)
    out = ndimage.affine_transform(arr, scale_kji, output_shape=shape_new, order=order, mode="constant",
                                   cval=cval, prefilter=False, output=np.float32)
    geom = Geometry(shape_new, tuple(sp_new), volume.origin, volume.geometry.direction)
    return Volume(out, geom, modality=volume.modality, unit=volume.unit, name=volume.name, source=volume.source,
                  metadata=dict(volume.metadata))


def lung_mask(volume: Volume, threshold: float = -400.0, min_ml: float = 200.0, dilate_mm: float = 6.0) -> np.ndarray:
    """Boolean lung mask (see module docstring). Falls back to 'inside the body' when no lung is found."""
    a = volume.array
    low = a < threshold
    lab, n = ndimage.label(low)
    mask = np.zeros(a.shape, bool)
    if n:
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        vox_ml = float(np.prod(volume.spacing)) / 1000.0
        keep = sizes * vox_ml >= min_ml
        keep[0] = False
        # lungs may touch the first/last slice (the scan cuts through them): only in-plane borders disqualify
        inplane = np.unique(np.concatenate([lab[:, 0, :].ravel(), lab[:, -1, :].ravel(), lab[:, :, 0].ravel(),
                                            lab[:, :, -1].ravel()]))
        keep[inplane] = False
        mask = keep[lab]
    if not mask.any():
        body = a > threshold
        return ndimage.binary_fill_holes(body) if body.any() else np.ones(a.shape, bool)
    st = np.zeros((3, 3, 3), bool)
    st[1] = ndimage.generate_binary_structure(2, 1)
    mask = ndimage.binary_fill_holes(mask, structure=st)
    if dilate_mm > 0:
        it = np.maximum(1, np.rint(dilate_mm / np.asarray(volume.spacing)[::-1]).astype(int))
        # a box dilation, as a separable maximum filter (much faster than binary_dilation with a 3D structure)
        mask = ndimage.maximum_filter(mask.view(np.uint8), size=tuple(2 * it + 1)).view(bool)
    return mask


def mask_bbox(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice, slice]:
    """Bounding box (k, j, i slices) of a mask, grown by ``margin`` voxels; the whole grid when empty."""
    if not mask.any():
        return tuple(slice(0, s) for s in mask.shape)  # type: ignore[return-value]
    out = []
    for ax in range(3):
        other = tuple(a for a in range(3) if a != ax)
        nz = np.nonzero(mask.any(axis=other))[0]
        out.append(slice(max(0, int(nz[0]) - margin), min(mask.shape[ax], int(nz[-1]) + margin + 1)))
    return tuple(out)  # type: ignore[return-value]
