"""Blend synthetic nodules into FPR patches (differentiable) and into scans (a new derived volume + ground truth).

The paper's fusion is ``x_syn * m + x * (1 - m)`` (:func:`blend`). Ours is HU-aware, the same rule in patches
and scans:

1. **Lung only.** The mask is multiplied by a lung weight: the share of parenchyma-like voxels (< -400 HU) in a
   Gaussian neighbourhood (sigma 3 mm) of each voxel, mapped linearly from 25 % (weight 0) to 60 % (weight 1).
   Vessels and airway walls inside the lung count as lung (their neighbourhood is mostly air-like); chest wall,
   mediastinum, diaphragm and bone do not, so a nodule placed near the pleura stops at it.
2. **Never lower density.** ``x_syn = max(nodule HU, local mean HU) + (x - local mean)``: the nodule replaces
   parenchyma, but a vessel or airway wall denser than the nodule (e.g. inside a ground-glass nodule) stays
   visible, as in the demo phantom's own nodules. The local mean is a Gaussian (sigma 1 mm) of the background.
3. **Keep the scanner noise.** The background's detail ``x - local mean`` is carried into the nodule, so the
   inserted nodule has the same noise texture as its surroundings instead of looking denoised.

Outside the (soft) mask the background is returned unchanged, bit for bit.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from reviewer.errors import InputError
from reviewer.findings import Finding
from reviewer.geometry import Volume
from reviewer.synthesis.generator import (NoduleParams, equivalent_diameter_mm, nodule_field, render_nodule)

LUNG_HU = -400.0
LUNG_SIGMA_MM = 3.0
LUNG_LO, LUNG_HI = 0.25, 0.60
SMOOTH_SIGMA_MM = 1.0


def blend(background01: Any, nodule01: Any, mask: Any) -> Any:
    """The paper's fusion ``nodule * m + background * (1 - m)`` (numpy or torch, broadcasting)."""
    return nodule01 * mask + background01 * (1 - mask)


def lung_weight(hu: np.ndarray, sigma_vox: Any) -> np.ndarray:
    """Rule 1 of the module docstring on an HU array; ``sigma_vox`` = LUNG_SIGMA_MM in voxels per array axis."""
    frac = ndimage.gaussian_filter((np.asarray(hu) < LUNG_HU).astype(np.float32), sigma_vox, mode="nearest")
    return np.clip((frac - LUNG_LO) / (LUNG_HI - LUNG_LO), 0.0, 1.0).astype(np.float32)


def _window_hu(x01: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    lo, hi = window
    return np.asarray(x01, dtype=np.float32) * np.float32(hi - lo) + np.float32(lo)


@dataclass
class PatchContext:
    """A background FPR patch prepared for differentiable nodule insertion (one per background)."""

    background01: torch.Tensor  # (P, P, P) in [0, 1]
    smooth_hu: torch.Tensor  # local mean HU
    detail_hu: torch.Tensor  # background - local mean
    lung: torch.Tensor  # lung weight in [0, 1]
    patch_size: int
    spacing_mm: float
    hu_window: tuple[float, float]

    @classmethod
    def from_patch(cls, patch01: Any, spec: Any, dtype: torch.dtype = torch.float32) -> "PatchContext":
        x01 = np.asarray(patch01.detach().cpu().numpy() if isinstance(patch01, torch.Tensor) else patch01, np.float32)
        P = int(spec.patch_size)
        if x01.shape != (P, P, P):
            raise ValueError(f"background patch must be {(P, P, P)}, got {x01.shape}")
        sp = float(spec.spacing_mm)
        window = tuple(float(v) for v in spec.hu_window)
        hu = _window_hu(x01, window)
        smooth = ndimage.gaussian_filter(hu, SMOOTH_SIGMA_MM / sp, mode="nearest")
        lung = lung_weight(smooth, LUNG_SIGMA_MM / sp)
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)  # noqa: E731
        return cls(t(x01), t(smooth), t(hu - smooth), t(lung), P, sp, window)

    def compose(self, theta: torch.Tensor, seed: int | list[int] = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Insert the nodule(s) ``theta`` ((7,) or (B, 7)) at the patch centre: ``(patch01, effective mask)``."""
        hu_nod, m = render_nodule(theta.to(self.background01.dtype), self.patch_size, self.spacing_mm, seed)
        m = m * self.lung
        lo, hi = self.hu_window
        x_syn = (torch.maximum(hu_nod, self.smooth_hu) + self.detail_hu - lo) / (hi - lo)
        return blend(self.background01, x_syn.clamp(0.0, 1.0), m), m


def compose_batch(contexts: list[PatchContext], theta: torch.Tensor, seeds: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Insert nodule b (row b of ``theta``) into background b: ``(B, P, P, P)`` patches and effective masks."""
    outs, masks = [], []
    for b, ctx in enumerate(contexts):
        x, m = ctx.compose(theta[b], seeds[b])
        outs.append(x)
        masks.append(m)
    return torch.stack(outs), torch.stack(masks)


def insert_into_patch(patch01: Any, params: NoduleParams, spec: Any, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Numpy convenience: a patch with the nodule at its centre, and the effective mask."""
    ctx = PatchContext.from_patch(patch01, spec)
    with torch.no_grad():
        x, m = ctx.compose(torch.as_tensor(params.to_vector(), dtype=torch.float32), seed)
    return x.numpy(), m.numpy()


# ----------------------------------------------------------------------------------------------------------------
def nodule_reach_mm(params: NoduleParams) -> float:
    """Radius (mm) beyond which the nodule's mask is negligible."""
    R = params.diameter_mm / 2
    width = 0.4 + (1 - params.margin_sharpness) * (0.25 * R + 1.0)
    spic = R + params.spiculation * 1.5 * R * 1.2 + 1.0
    return max(R * (1 + 0.4 * params.lobulation), spic) + 3.0 * width + 2.0


def insert_nodule(volume: Volume, center_lps: Any, params: NoduleParams, seed: int = 0,
                  name: str | None = None) -> tuple[Volume, Finding]:
    """A NEW volume with a synthetic nodule centred at ``center_lps`` (world LPS mm) and its ground truth.

    The source volume is never modified. World <-> voxel goes through the volume's Geometry (any direction
    matrix); the nodule field is evaluated at the world position of every voxel near the centre.
    """
    center = np.asarray(center_lps, dtype=float).reshape(3)
    g = volume.geometry
    where = volume.source or volume.name or None
    if not g.contains_world(center):
        raise InputError(where, f"insertion point {tuple(np.round(center, 1))} mm lies outside the scan")
    if volume.modality and volume.modality.upper() != "CT":
        raise InputError(where, f"synthetic nodules go into CT volumes in HU, not {volume.modality}")
    sp_kji = np.asarray(g.spacing)[::-1]
    reach = nodule_reach_mm(params)
    pad_mm = reach + 3.0 * LUNG_SIGMA_MM + 3.0 * SMOOTH_SIGMA_MM
    corners = np.array([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)], float)
    lo_n, hi_n = _box(g, center, reach, corners)
    lo_p, hi_p = _box(g, center, pad_mm, corners)
    sl_pad = tuple(slice(lo_p[a], hi_p[a]) for a in (2, 1, 0))
    x_pad = volume.array[sl_pad].astype(np.float32)
    smooth = ndimage.gaussian_filter(x_pad, SMOOTH_SIGMA_MM / sp_kji, mode="nearest")
    lung = lung_weight(smooth, LUNG_SIGMA_MM / sp_kji)
    inner = tuple(slice(lo_n[a] - lo_p[a], hi_n[a] - lo_p[a]) for a in (2, 1, 0))
    kk, jj, ii = np.meshgrid(*(np.arange(lo_n[a], hi_n[a]) for a in (2, 1, 0)), indexing="ij")
    ijk = np.stack([ii, jj, kk], axis=-1).reshape(-1, 3)
    offsets = g.voxel_to_world(ijk) - center
    with torch.no_grad():
        hu, m, _ = nodule_field(torch.as_tensor(params.to_vector(), dtype=torch.float32), offsets, seed,
                                voxel_mm=float(np.mean(g.spacing)))
    shape = kk.shape
    hu = hu.numpy().reshape(shape)
    m = m.numpy().reshape(shape) * lung[inner]
    x = x_pad[inner]
    s = smooth[inner]
    out = x + m * (np.maximum(hu, s) - s)

    arr = volume.array.copy()
    sl = tuple(slice(lo_n[a], hi_n[a]) for a in (2, 1, 0))
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        changed = m > 0
        block = arr[sl]
        block[changed] = np.clip(np.rint(out[changed]), info.min, info.max).astype(arr.dtype)
    else:
        arr[sl] = np.where(m > 0, out, x).astype(arr.dtype)

    vox_vol = float(np.prod(g.spacing))
    measured = equivalent_diameter_mm(m, vox_vol)
    new_uid = "2.25." + str(uuid.uuid4().int)
    md = copy.deepcopy(volume.metadata)
    src_uid = md.get("series_uid", "")
    record = {"center_lps": [float(v) for v in center], "params": params.to_json(), "seed": int(seed),
              "measured_diameter_mm": round(measured, 2)}
    md["synthetic_nodules"] = list(md.get("synthetic_nodules", [])) + [record]
    md["derived_from"] = {"name": volume.name, "source": volume.source, "series_uid": src_uid}
    md["description"] = "synthetic nodule inserted"
    md["series_uid"] = new_uid
    base = volume.name or "volume"
    new = Volume(arr, g, modality=volume.modality, unit=volume.unit,
                 name=name or f"{base} + synthetic nodule", source=volume.source, metadata=md,
                 warnings=list(volume.warnings) + [
                     f"synthetic nodule inserted at LPS ({center[0]:.1f}, {center[1]:.1f}, {center[2]:.1f}) mm: "
                     "not an acquired image"],
                 default_window=volume.default_window)
    finding = Finding(
        center_lps=tuple(center), kind="synthetic-nodule", diameter_mm=round(params.diameter_mm, 2),
        observer="reviewer.synthesis", observer_type="device", source=new_uid,
        label=f"synthetic {params.kind} nodule {params.diameter_mm:.1f} mm",
        extra={"params": params.to_json(), "seed": int(seed), "measured_diameter_mm": round(measured, 2),
               "source_series_uid": src_uid, "nodule_kind": params.kind},
    )
    return new, finding


def _box(g, center: np.ndarray, reach: float, corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ijk = g.world_to_voxel(corners * reach + center)
    lo = np.maximum(np.floor(ijk.min(axis=0)).astype(int), 0)
    hi = np.minimum(np.ceil(ijk.max(axis=0)).astype(int) + 1, np.asarray(g.size_ijk))
    return lo, hi
