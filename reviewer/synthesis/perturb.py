"""The stress tests' perturbations applied to a scan (for the GUI's "perturb the current view"), Qt-free.

Each returns a NEW derived volume; the source is never modified. Noise is defined on the FPR input scale (HU
window -> [0, 1], as the stress tests) and written back as an HU change, so values outside the window (bone,
air below -1000) keep their offset from the window instead of being clipped.

* :func:`noise_volume`: uniform noise of magnitude a or Poisson "xS" over the whole scan or a sphere;
* :func:`pgd_volume`: patch PGD (:func:`reviewer.synthesis.adversarial.pgd_patch`) at a world point, the
  perturbation resampled (nearest patch voxel) from the LPS patch grid onto the scan's voxels (any direction
  matrix, through Geometry). On a scan coarser than the patch the written-back perturbation is an approximation
  and weaker than in patch space: ``after`` reports the patch-space response.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from reviewer.errors import InputError
from reviewer.geometry import Volume
from reviewer.synthesis.adversarial import PGD_EPS, PGD_ITERS, PGD_STEP, pgd_patch, poisson_noise, uniform_noise

DEFAULT_WINDOW = (-1000.0, 400.0)


def _derived(volume: Volume, array: np.ndarray, what: str) -> Volume:
    md = copy.deepcopy(volume.metadata)
    md["derived_from"] = {"name": volume.name, "source": volume.source, "series_uid": md.get("series_uid", "")}
    md["description"] = what
    md["series_uid"] = "2.25." + str(uuid.uuid4().int)
    md.setdefault("perturbations", []).append(what)
    return Volume(array, volume.geometry, modality=volume.modality, unit=volume.unit,
                  name=f"{volume.name or 'volume'} + {what}", source=volume.source, metadata=md,
                  warnings=list(volume.warnings) + [f"{what}: not an acquired image"],
                  default_window=volume.default_window)


def _store(volume: Volume, hu: np.ndarray) -> np.ndarray:
    if np.issubdtype(volume.array.dtype, np.integer):
        info = np.iinfo(volume.array.dtype)
        return np.clip(np.rint(hu), info.min, info.max).astype(volume.array.dtype)
    return hu.astype(volume.array.dtype)


def sphere_mask(volume: Volume, center_lps: Any, radius_mm: float) -> np.ndarray:
    """Boolean (k, j, i) mask of voxels within ``radius_mm`` of a world point."""
    g = volume.geometry
    kk, jj, ii = np.indices(g.shape)
    w = g.voxel_to_world(np.stack([ii, jj, kk], -1).reshape(-1, 3)).reshape(g.shape + (3,))
    return np.linalg.norm(w - np.asarray(center_lps, float), axis=-1) <= radius_mm


def noise_volume(volume: Volume, kind: str, level: float, seed: int = 0, window: tuple[float, float] = DEFAULT_WINDOW,
                 center_lps: Any = None, radius_mm: float | None = None) -> Volume:
    """``kind`` 'uniform' (``level`` = magnitude, e.g. 0.3/0.6/0.9) or 'poisson' (``level`` = scale, 50 or 5)."""
    lo, hi = (float(v) for v in window)
    hu = volume.array.astype(np.float32)
    x01 = np.clip((hu - lo) / (hi - lo), 0.0, 1.0)
    rng = np.random.default_rng([int(seed), 4009])
    if kind == "uniform":
        noisy = uniform_noise(x01, float(level), rng)
        what = f"uniform noise {level:g}"
    elif kind == "poisson":
        noisy = poisson_noise(x01, float(level), rng)
        what = f"Poisson noise x{level:g}"
    else:
        raise ValueError(f"noise kind must be 'uniform' or 'poisson', got {kind!r}")
    delta = (noisy - x01) * np.float32(hi - lo)
    if center_lps is not None and radius_mm is not None:
        delta *= sphere_mask(volume, center_lps, radius_mm)
    return _derived(volume, _store(volume, hu + delta), what)


@dataclass
class PgdVolumeResult:
    volume: Volume
    before: float  # model output on the clean patch
    after: float  # on the perturbed patch (as the model sees it)
    target: float


def pgd_volume(model, spec, volume: Volume, center_lps: Any, target: float, eps: float = PGD_EPS,
               step: float = PGD_STEP, iters: int = PGD_ITERS, seed: int = 0, token=None) -> PgdVolumeResult:
    """Patch PGD at ``center_lps`` towards ``target`` (0: make a nodule vanish, 1: make the spot fire)."""
    import torch

    from reviewer.detection.fpr import extract_patches, fpr_outputs

    c = np.asarray(center_lps, float).reshape(3)
    if not volume.geometry.contains_world(c):
        raise InputError(volume.source or volume.name or None, f"point {tuple(np.round(c, 1))} mm is outside the scan")
    patch = extract_patches(volume, c[None], spec)
    adv = pgd_patch(model, patch, float(target), eps, step, iters, seed=seed, token=token).cpu().numpy()
    dev = next(model.parameters()).device
    with torch.no_grad():
        before = float(fpr_outputs(model, torch.as_tensor(patch[:, None], device=dev))[0][0])
        after = float(fpr_outputs(model, torch.as_tensor(adv[:, None], device=dev))[0][0])
    delta01 = (adv - patch)[0]
    lo, hi = spec.hu_window
    P, sp = spec.patch_size, spec.spacing_mm
    # voxels of the scan inside the patch's field of view, and their continuous patch index [z, y, x]
    g = volume.geometry
    half = (P - 1) / 2.0 * sp
    corners = np.array([[a, b, d] for a in (-1, 1) for b in (-1, 1) for d in (-1, 1)], float) * half + c
    ijk = g.world_to_voxel(corners)
    i0 = np.maximum(np.floor(ijk.min(0)).astype(int), 0)
    i1 = np.minimum(np.ceil(ijk.max(0)).astype(int) + 1, np.asarray(g.size_ijk))
    kk, jj, ii = np.meshgrid(*(np.arange(i0[a], i1[a]) for a in (2, 1, 0)), indexing="ij")
    w = g.voxel_to_world(np.stack([ii, jj, kk], -1).reshape(-1, 3)) - c
    pidx = w / sp + (P - 1) / 2.0  # (x, y, z) patch index
    # nearest patch voxel: a scan finer than the patch then returns the model's own perturbation when the patch is
    # extracted again (linear interpolation twice would blur PGD's high-frequency pattern and weaken it)
    d = ndimage.map_coordinates(delta01, pidx[:, ::-1].T, order=0, mode="constant", cval=0.0)
    arr = volume.array.copy()
    sl = tuple(slice(i0[a], i1[a]) for a in (2, 1, 0))
    arr[sl] = _store(volume, arr[sl].astype(np.float32) + d.reshape(kk.shape).astype(np.float32) * (hi - lo))
    what = f"PGD perturbation towards {'nodule' if target >= 0.5 else 'no nodule'} (eps {eps:g})"
    return PgdVolumeResult(_derived(volume, arr, what), before, after, float(target))
