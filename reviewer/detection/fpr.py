"""False-positive reduction (FPR): patches around candidates and the 3D classifier that scores them.

Patches are resampled in world millimetres: the patch axes are the patient LPS axes (array ``[z, y, x]``, i.e.
``patch[c, b, a]`` lies at ``center + ((a, b, c) - (P - 1) / 2) * spacing_mm`` in LPS), so the same anatomy gives
the same patch whatever the scan's direction matrix or voxel size. Values are HU windowed to [0, 1].

Heads (REFERENCES section 3): ``sigmoid`` gives one logit; ``beta`` gives evidence e+ and e- (softplus) with
alpha = e+ + 1, beta = e- + 1, p = alpha / (alpha + beta) and uncertainty u = 2 / (alpha + beta).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch import nn
from torch.nn import functional as F

from reviewer.geometry import Volume

AIR_HU = -1024.0


@dataclass(frozen=True)
class FprSpec:
    """What an FPR model sees: a ``patch_size``^3 cube at ``spacing_mm`` isotropic, HU window (lo, hi) -> [0, 1].

    Default: 32^3 at 1.25 mm = a 40 mm field of view, the paper's (64^3 at 0.625 mm) at a quarter of the voxels.
    """

    patch_size: int = 32
    spacing_mm: float = 1.25
    hu_window: tuple[float, float] = (-1000.0, 400.0)

    def __post_init__(self) -> None:
        if int(self.patch_size) < 4 or float(self.spacing_mm) <= 0:
            raise ValueError(f"invalid FPR patch spec: {self.patch_size} voxels at {self.spacing_mm} mm")
        lo, hi = (float(v) for v in self.hu_window)
        if hi <= lo:
            raise ValueError(f"invalid HU window {self.hu_window}")
        object.__setattr__(self, "patch_size", int(self.patch_size))
        object.__setattr__(self, "spacing_mm", float(self.spacing_mm))
        object.__setattr__(self, "hu_window", (lo, hi))

    @property
    def field_of_view_mm(self) -> float:
        return self.patch_size * self.spacing_mm

    @classmethod
    def from_card(cls, card_or_preprocessing: Any) -> "FprSpec":
        """From a model card (or its ``preprocessing`` dict): keys ``patch_size``, ``spacing_mm``, ``hu_window``."""
        pre = getattr(card_or_preprocessing, "preprocessing", card_or_preprocessing) or {}
        sp = pre.get("spacing_mm", 1.25)
        if isinstance(sp, (list, tuple)):
            sp = sp[0]
        return cls(int(pre.get("patch_size", 32)), float(sp), tuple(pre.get("hu_window", (-1000.0, 400.0))))

    def to_json(self) -> dict:
        return {"patch_size": self.patch_size, "spacing_mm": self.spacing_mm, "hu_window": list(self.hu_window)}


def window01(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    lo, hi = window
    out = (np.asarray(hu, dtype=np.float32) - np.float32(lo)) * np.float32(1.0 / (hi - lo))
    return np.clip(out, 0.0, 1.0, out=out)


def patch_offsets_lps(spec: FprSpec) -> np.ndarray:
    """(P, P, P, 3) LPS offsets (mm) of the patch voxels from its centre, array order [z, y, x]."""
    P = spec.patch_size
    ax = (np.arange(P, dtype=np.float64) - (P - 1) / 2.0) * spec.spacing_mm
    z, y, x = np.meshgrid(ax, ax, ax, indexing="ij")
    return np.stack([x, y, z], axis=-1)


def extract_patches(volume: Volume, centers_lps: Any, spec: FprSpec) -> np.ndarray:
    """(N, P, P, P) float32 patches in [0, 1] around world (LPS mm) centres, trilinear, air outside the scan."""
    centers = np.asarray(centers_lps, dtype=np.float64).reshape(-1, 3)
    P = spec.patch_size
    out = np.empty((len(centers), P, P, P), dtype=np.float32)
    offsets = patch_offsets_lps(spec).reshape(-1, 3)
    geom = volume.geometry
    ks, js, is_ = geom.shape
    for n, c in enumerate(centers):
        ijk = geom.world_to_voxel(offsets + c)  # (P^3, 3) continuous (i, j, k)
        lo = np.floor(ijk.min(axis=0)).astype(int) - 1
        hi = np.ceil(ijk.max(axis=0)).astype(int) + 2
        lo_c = np.maximum(lo, 0)
        hi_c = np.minimum(hi, [is_, js, ks])
        if np.any(hi_c <= lo_c):
            out[n] = window01(np.full((P, P, P), AIR_HU), spec.hu_window)
            continue
        sub = volume.array[lo_c[2]:hi_c[2], lo_c[1]:hi_c[1], lo_c[0]:hi_c[0]].astype(np.float32)
        coords = (ijk - lo_c).T[::-1]  # (k, j, i) rows relative to the crop
        vals = ndimage.map_coordinates(sub, coords, order=1, mode="constant", cval=AIR_HU, prefilter=False)
        # voxels beyond the scan's last sample but within half a voxel of it still interpolate to air: fine for CT
        out[n] = window01(vals.reshape(P, P, P), spec.hu_window)
    return out


# -- network ----------------------------------------------------------------------------------------------------
class ResBlock3d(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.c1 = nn.Conv3d(cin, cout, 3, stride, 1, bias=False)
        self.n1 = nn.BatchNorm3d(cout)
        self.c2 = nn.Conv3d(cout, cout, 3, 1, 1, bias=False)
        self.n2 = nn.BatchNorm3d(cout)
        self.skip = None
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv3d(cin, cout, 1, stride, bias=False), nn.BatchNorm3d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.n1(self.c1(x)), inplace=True)
        y = self.n2(self.c2(y))
        return F.relu(y + (x if self.skip is None else self.skip(x)), inplace=True)


class FprNet(nn.Module):
    """3D residual classifier: (B, 1, P, P, P) in [0, 1] -> raw head outputs (B, 1) logit or (B, 2) evidence
    pre-activations [positive, negative]."""

    def __init__(self, head: str = "sigmoid", channels: tuple[int, ...] = (16, 32, 64), stem: int = 8,
                 in_channels: int = 1):
        super().__init__()
        if head not in ("sigmoid", "beta"):
            raise ValueError(f"FPR head must be 'sigmoid' or 'beta', got {head!r}")
        self.head = head
        self.channels = tuple(int(c) for c in channels)
        # one full-resolution stem conv, then every residual block halves the grid (32 -> 16 -> 8 -> 4):
        # full-resolution blocks cost 6x more on a CPU for no measurable gain on 32^3 patches
        layers: list[nn.Module] = [nn.Conv3d(in_channels, stem, 3, 1, 1, bias=False), nn.BatchNorm3d(stem),
                                   nn.ReLU(inplace=True)]
        cin = stem
        for c in self.channels:
            layers.append(ResBlock3d(cin, c, stride=2))
            cin = c
        self.features = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(cin, 64), nn.ReLU(inplace=True), nn.Linear(64, 1 if head == "sigmoid" else 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool3d(f, 1), 1))


def head_outputs(raw: torch.Tensor, head: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Raw head outputs -> (probability (B,), uncertainty (B,) or None)."""
    if head == "sigmoid":
        return torch.sigmoid(raw.reshape(raw.shape[0], -1)[:, 0]), None
    a, b = beta_parameters(raw)
    return a / (a + b), 2.0 / (a + b)


def beta_parameters(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """alpha = softplus(raw+) + 1, beta = softplus(raw-) + 1."""
    e = F.softplus(raw.float())
    return e[:, 0] + 1.0, e[:, 1] + 1.0


def fpr_outputs(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Differentiable (prob (B,), uncertainty (B,) | None) of an FPR model on patches (B, 1, P, P, P)."""
    core = model.module if hasattr(model, "module") else model
    return head_outputs(model(x), getattr(core, "head", "sigmoid"))


def fpr_log_probabilities(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable (log p, log(1 - p)) (B,) computed from the raw head outputs, so gradients survive where the
    probability itself saturates to 0 or 1 in float32 (attacks on very confident outputs need them)."""
    core = model.module if hasattr(model, "module") else model
    raw = model(x)
    if getattr(core, "head", "sigmoid") == "sigmoid":
        z = raw.reshape(raw.shape[0], -1)[:, 0].float()
        return F.logsigmoid(z), F.logsigmoid(-z)
    a, b = beta_parameters(raw)
    total = torch.log(a + b)
    return torch.log(a) - total, torch.log(b) - total


@torch.no_grad()
def score_patches(model: nn.Module, patches: np.ndarray, device=None, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray | None]:
    """Numpy (N, P, P, P) patches -> (prob (N,), uncertainty (N,) | None), in batches, model in eval mode."""
    dev = device or next(model.parameters()).device
    probs, uncs = [], []
    for s in range(0, len(patches), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(patches[s:s + batch_size]))[:, None].to(dev)
        p, u = fpr_outputs(model, x)
        probs.append(p.float().cpu().numpy())
        if u is not None:
            uncs.append(u.float().cpu().numpy())
    prob = np.concatenate(probs) if probs else np.zeros(0, np.float32)
    unc = (np.concatenate(uncs) if uncs else np.zeros(0, np.float32)) if (uncs or getattr(model, "head", "") == "beta") else None
    return prob, unc


def _fpr_factory(**args) -> FprNet:
    return FprNet(**args)


def register() -> None:
    from reviewer.models.cards import register_architecture

    register_architecture("detection.FprNet", _fpr_factory)


register()
