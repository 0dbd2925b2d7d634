"""Candidate generation (CG): a 3D residual U-Net predicting a heat map of Gaussian blobs at nodule centres.

The network has two output channels on the input grid: channel 0 is the heat-map logit, channel 1 regresses
``log(diameter / 10 mm)`` (trained only near nodule centres); the diameter reported with a candidate is that
regression read at the heat-map peak. Inference runs in overlapping windows (cosine-weighted blending), then
peaks (local maxima of the heat map) are ranked and non-maximum suppression keeps at most N candidates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from reviewer.jobs import JobToken

BLOB_SIGMA_MIN_MM = 2.0


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.c1 = nn.Conv3d(cin, cout, 3, 1, 1, bias=False)
        self.n1 = nn.InstanceNorm3d(cout, affine=True)
        self.c2 = nn.Conv3d(cout, cout, 3, 1, 1, bias=False)
        self.n2 = nn.InstanceNorm3d(cout, affine=True)
        self.skip = nn.Conv3d(cin, cout, 1, bias=False) if cin != cout else nn.Identity()

    def forward(self, x):
        y = F.leaky_relu(self.n1(self.c1(x)), 0.1, inplace=True)
        y = self.n2(self.c2(y))
        return F.leaky_relu(y + self.skip(x), 0.1, inplace=True)


class ResUNet3d(nn.Module):
    """Residual 3D U-Net; input (B, 1, D, H, W) in [0, 1] with D, H, W multiples of 2**levels -> (B, 2, D, H, W)."""

    def __init__(self, channels: tuple[int, ...] = (4, 8, 16, 32), out_channels: int = 2):
        super().__init__()
        self.channels = tuple(int(c) for c in channels)
        self.levels = len(self.channels) - 1
        self.enc = nn.ModuleList()
        cin = 1
        for c in self.channels:
            self.enc.append(ResBlock(cin, c))
            cin = c
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for c_skip in reversed(self.channels[:-1]):
            self.up.append(nn.ConvTranspose3d(cin, c_skip, 2, 2))
            self.dec.append(ResBlock(2 * c_skip, c_skip))
            cin = c_skip
        self.head = nn.Conv3d(cin, out_channels, 1)
        with torch.no_grad():  # start with a low prior of nodule (heat ~ 0.01) for stable early training
            self.head.bias[0] = -4.6
            self.head.bias[1:] = 0.0

    @property
    def multiple(self) -> int:
        return 2 ** self.levels

    def forward(self, x):
        skips = []
        for i, blk in enumerate(self.enc):
            x = blk(x)
            if i < self.levels:
                skips.append(x)
                x = F.max_pool3d(x, 2)
        for up, dec in zip(self.up, self.dec):
            x = up(x)
            x = dec(torch.cat([x, skips.pop()], 1))
        return self.head(x)


def _cg_factory(**args) -> ResUNet3d:
    return ResUNet3d(**args)


def register() -> None:
    from reviewer.models.cards import register_architecture

    register_architecture("detection.ResUNet3d", _cg_factory)


register()


# -- targets ----------------------------------------------------------------------------------------------------
def blob_sigma_mm(diameter_mm: float) -> float:
    return max(BLOB_SIGMA_MIN_MM, diameter_mm / 4.0)


def heatmap_target(shape_kji: tuple[int, int, int], centers_ijk: np.ndarray, diameters_mm: np.ndarray,
                   spacing_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(heat (K, J, I) in [0, 1], log-diameter target (K, J, I)) for nodules at voxel positions (i, j, k).

    Each nodule is a Gaussian of sigma = max(2 mm, d / 4) with peak 1 (max over overlapping blobs); the
    diameter target is log(d / 10) where that nodule's blob dominates, 0 elsewhere.
    """
    heat = np.zeros(shape_kji, np.float32)
    logd = np.zeros(shape_kji, np.float32)
    grids = [np.arange(n, dtype=np.float32) for n in shape_kji]
    for c, d in zip(np.asarray(centers_ijk, float).reshape(-1, 3), np.asarray(diameters_mm, float).reshape(-1)):
        s = blob_sigma_mm(d) / spacing_mm
        r = int(math.ceil(3 * s))
        ci, cj, ck = c
        lo = [max(0, int(math.floor(v)) - r) for v in (ck, cj, ci)]
        hi = [min(n, int(math.ceil(v)) + r + 1) for v, n in zip((ck, cj, ci), shape_kji)]
        if any(h <= l for l, h in zip(lo, hi)):
            continue
        gk = np.exp(-0.5 * ((grids[0][lo[0]:hi[0]] - ck) / s) ** 2)[:, None, None]
        gj = np.exp(-0.5 * ((grids[1][lo[1]:hi[1]] - cj) / s) ** 2)[None, :, None]
        gi = np.exp(-0.5 * ((grids[2][lo[2]:hi[2]] - ci) / s) ** 2)[None, None, :]
        g = gk * gj * gi
        sl = tuple(slice(a, b) for a, b in zip(lo, hi))
        win = g > heat[sl]
        heat[sl] = np.where(win, g, heat[sl])
        logd[sl] = np.where(win, np.float32(math.log(max(d, 1.0) / 10.0)), logd[sl])
    heat[heat < 1e-3] = 0.0
    return heat, logd


# -- inference --------------------------------------------------------------------------------------------------
def _starts(n: int, win: int, stride: int) -> list[int]:
    if n <= win:
        return [0]
    s = list(range(0, n - win + 1, stride))
    if s[-1] != n - win:
        s.append(n - win)
    return s


def _blend_weight(win: tuple[int, int, int]) -> np.ndarray:
    ws = [np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 2 * 0.98 + 0.02 for n in win]
    return (ws[0][:, None, None] * ws[1][None, :, None] * ws[2][None, None, :]).astype(np.float32)


@torch.no_grad()
def sliding_window(model: ResUNet3d, image01: np.ndarray, window: int = 96, overlap: float = 0.25,
                   device=None, token: JobToken | None = None, amp: bool = True) -> np.ndarray:
    """Run the CG on a whole (K, J, I) image in [0, 1]: (2, K, J, I) float32 = [heat probability, log-diameter].

    Windows of ``window``^3 voxels (smaller along short axes, rounded up to the network's multiple) overlap by
    ``overlap``; outputs are blended with a smooth weight that falls off towards the window border.
    """
    dev = device or next(model.parameters()).device
    m = model.multiple
    shape = image01.shape
    padded = [max(int(math.ceil(n / m) * m), m) for n in shape]
    img = np.zeros(padded, np.float32)
    img[: shape[0], : shape[1], : shape[2]] = image01
    win = tuple(min(int(math.ceil(window / m) * m), p) for p in padded)
    stride = tuple(max(m, int(round(w * (1 - overlap) / m)) * m) for w in win)
    out = np.zeros((2, *padded), np.float32)
    wsum = np.zeros(padded, np.float32)
    wgt = _blend_weight(win)
    starts = [(a, b, c) for a in _starts(padded[0], win[0], stride[0]) for b in _starts(padded[1], win[1], stride[1])
              for c in _starts(padded[2], win[2], stride[2])]
    use_amp = amp and dev.type == "cuda"
    for n, (a, b, c) in enumerate(starts):
        if token is not None:
            token.progress(n, len(starts), "candidate generation")
        sl = (slice(a, a + win[0]), slice(b, b + win[1]), slice(c, c + win[2]))
        x = torch.from_numpy(img[sl])[None, None].to(dev)
        with torch.autocast(dev.type, enabled=use_amp):
            y = model(x)[0].float()
        y[0] = torch.sigmoid(y[0])
        out[(slice(None), *sl)] += y.cpu().numpy() * wgt
        wsum[sl] += wgt
    out /= np.maximum(wsum, 1e-6)
    return out[:, : shape[0], : shape[1], : shape[2]]


@dataclass
class Candidate:
    ijk: tuple[float, float, float]  # voxel position on the CG grid (i, j, k)
    score: float
    diameter_mm: float


def find_peaks(heat: np.ndarray, logd: np.ndarray | None, mask: np.ndarray | None = None, threshold: float = 0.02,
               max_candidates: int = 100, nms_mm: float = 6.0, spacing_mm: float = 2.0,
               max_peaks: int = 5000) -> list[Candidate]:
    """Local maxima of ``heat`` above ``threshold`` (inside ``mask``), ranked, then greedy NMS: a peak is dropped
    when closer than max(nms_mm, half the kept candidate's diameter) to a higher one. At most ``max_candidates``.

    The peak position is refined to sub-voxel precision by the heat-weighted centroid of its 3x3x3 neighbourhood.
    """
    t = torch.from_numpy(np.ascontiguousarray(heat, dtype=np.float32))[None, None]
    mx = F.max_pool3d(t, 3, 1, 1)[0, 0].numpy()
    peaks = (heat >= mx) & (heat > threshold)
    if mask is not None:
        peaks &= mask
    k, j, i = np.nonzero(peaks)
    scores = heat[k, j, i]
    order = np.argsort(-scores, kind="stable")[:max_peaks]
    pos = np.zeros((len(order), 3))
    diam = np.zeros(len(order))
    for n, o in enumerate(order):
        kk, jj, ii = int(k[o]), int(j[o]), int(i[o])
        lo = (max(0, kk - 1), max(0, jj - 1), max(0, ii - 1))
        nb = heat[lo[0]:kk + 2, lo[1]:jj + 2, lo[2]:ii + 2].astype(np.float64)
        w = nb / nb.sum()
        pos[n] = [(w.sum(axis=(0, 1)) * np.arange(lo[2], lo[2] + nb.shape[2])).sum(),
                  (w.sum(axis=(0, 2)) * np.arange(lo[1], lo[1] + nb.shape[1])).sum(),
                  (w.sum(axis=(1, 2)) * np.arange(lo[0], lo[0] + nb.shape[0])).sum()]
        diam[n] = 10.0 * math.exp(float(logd[kk, jj, ii])) if logd is not None else 2 * nms_mm
    keep = nms_points(pos * spacing_mm, scores[order], np.maximum(nms_mm, diam / 2.0), max_candidates)
    return [Candidate(tuple(float(v) for v in pos[n]), float(scores[order[n]]), float(diam[n])) for n in keep]


def nms_points(points_mm: np.ndarray, scores: np.ndarray, radius_mm: float | np.ndarray, max_keep: int = 100) -> list[int]:
    """Greedy NMS on points: indices kept, best first; a point is suppressed within ``radius_mm`` of a kept one
    (per kept point when an array)."""
    pts = np.asarray(points_mm, float).reshape(-1, 3)
    rad = np.broadcast_to(np.asarray(radius_mm, float), (len(pts),))
    keep: list[int] = []
    for o in np.argsort(-np.asarray(scores, float), kind="stable"):
        if keep and np.any(np.linalg.norm(pts[keep] - pts[o], axis=1) < rad[keep]):
            continue
        keep.append(int(o))
        if len(keep) >= max_keep:
            break
    return keep
