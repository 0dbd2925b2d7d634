"""Fast screening of many FNAF candidates: tiles around each feature with frozen instance-norm statistics.

A feature changes the zero-filled input only in the rows it occupies (column under-sampling aliases along
rows), and the loss is measured in a small region around it. So each candidate is evaluated on a tile
(default 64x64, aligned to the U-Net's pooling grid) around its loss region, with the input normalisation and
every InstanceNorm layer using the statistics of the clean full image (a feature of a few pixels changes them
negligibly). Candidates in a batch cost a tile each instead of a full 320x320 forward pass.

The screened loss is an approximation used for ranking only: :func:`screened_search_scores` re-scores the
best candidates with the exact full-image forward model, so every reported loss is exact.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch
from scipy import ndimage

from reviewer.fnaf.forward import CLAMP, EPS, FeatureScore, region_nmse, score_features

ALIGN = 16  # 2 ** num_pool_layers of a 4-level U-Net


@contextlib.contextmanager
def _instance_norm_hooks(model: torch.nn.Module, stats: dict, record: bool) -> Iterator[None]:
    """Record (record=True) or impose (record=False) per-channel mean/var of every InstanceNorm layer."""
    handles = []
    for name, mod in model.named_modules():
        if not isinstance(mod, torch.nn.modules.instancenorm._InstanceNorm):
            continue

        def hook(module, inputs, output, _name=name):
            x = inputs[0]
            if record:
                stats[_name] = (x.mean((2, 3), keepdim=True), x.var((2, 3), unbiased=False, keepdim=True))
                return output
            mean, var = stats[_name]
            return (x - mean) / torch.sqrt(var + module.eps)

        handles.append(mod.register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _tile_origin(center: float, size: int, extent: int, align: int = ALIGN) -> int:
    """Origin of a tile of ``size`` around ``center``, on the pooling grid, as centred as the grid allows."""
    start = int(round((center - size / 2) / align)) * align
    last = ((extent - size) // align) * align
    return max(0, min(last, start))


def column_responses(mask_cols: np.ndarray) -> np.ndarray:
    """Row response of the under-sampling to a unit impulse at each column: row c is
    ``ifft1c(mask * fft1c(delta_c))``. Masking k-space columns leaves rows untouched, so the zero-filled image of
    (image + feature) is the clean zero-filled image plus, on each feature pixel's row, its value times this row."""
    n = mask_cols.size
    eye = np.eye(n, dtype=np.complex64)
    k = np.fft.fftshift(np.fft.fft(np.fft.ifftshift(eye, axes=-1), axis=-1, norm="ortho"), axes=-1)
    return np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(k * mask_cols[None, :], axes=-1), axis=-1, norm="ortho"),
                           axes=-1).astype(np.complex64)


@torch.no_grad()
def screen_losses(model: torch.nn.Module, image: np.ndarray, features: np.ndarray, mask_cols: np.ndarray,
                  tile: int = 64, batch_size: int = 64, return_ip: bool = False):
    """Approximate attack losses of N candidate features (N, H, W) on one image, one tile per candidate.

    The zero-filled inputs are exact (sparse row updates of the clean zero-filled image, see
    :func:`column_responses`), and so is the information-preservation MSE returned with ``return_ip``; only the
    network runs on a tile with frozen statistics.
    """
    from reviewer.mri.fft import fft2c, ifft2c

    device = next(model.parameters()).device
    img = np.asarray(image, dtype=np.float32)
    h, w = img.shape
    tile_h, tile_w = min(tile, h), min(tile, w)
    zc_clean = ifft2c(fft2c(img.astype(np.complex64)) * mask_cols[None, :]).astype(np.complex64)
    zf_clean = np.abs(zc_clean)
    mean, std = float(zf_clean.mean()), float(zf_clean.std(ddof=1))
    scale = 1.0 / (std + EPS)
    stats: dict = {}
    with _instance_norm_hooks(model, stats, record=True):
        x = torch.as_tensor(np.clip((zf_clean - mean) * scale, -CLAMP, CLAMP), device=device)
        model(x[None, None])
    resp = column_responses(np.asarray(mask_cols, dtype=np.float32))
    target_clean_energy = float(np.sum(np.clip((img - mean) * scale, -CLAMP, CLAMP) ** 2))
    n = len(features)
    losses = np.empty(n, dtype=np.float64)
    ips = np.empty(n, dtype=np.float64)
    struct = np.ones((3, 3), bool)
    for start in range(0, n, batch_size):
        tiles_in, tiles_tgt, tiles_reg, energies = [], [], [], []
        for f in range(start, min(n, start + batch_size)):
            feat = np.asarray(features[f], dtype=np.float32)
            rows, cols_ = np.nonzero(feat)
            vals = feat[rows, cols_]
            # zero-filled input with the feature, on the affected rows only (exact)
            urows = np.unique(rows)
            zc_rows = zc_clean[urows].copy()
            for r, c, v in zip(rows, cols_, vals):
                zc_rows[np.searchsorted(urows, r)] += v * resp[c]
            zf_rows = np.abs(zc_rows)
            ips[f] = float(np.sum(((zf_rows - zf_clean[urows]) * scale) ** 2)) / (h * w)
            # tile around the loss region
            rc, cc = rows.mean(), cols_.mean()
            r0, c0 = _tile_origin(rc, tile_h, h), _tile_origin(cc, tile_w, w)
            zf_tile = zf_clean[r0:r0 + tile_h, c0:c0 + tile_w].copy()
            inside = (urows >= r0) & (urows < r0 + tile_h)
            zf_tile[urows[inside] - r0] = zf_rows[inside][:, c0:c0 + tile_w]
            tiles_in.append(np.clip((zf_tile - mean) * scale, -CLAMP, CLAMP))
            tgt_img = img[r0:r0 + tile_h, c0:c0 + tile_w] + feat[r0:r0 + tile_h, c0:c0 + tile_w]
            tgt = np.clip((tgt_img - mean) * scale, -CLAMP, CLAMP)
            tiles_tgt.append(tgt)
            tiles_reg.append(ndimage.binary_dilation(feat[r0:r0 + tile_h, c0:c0 + tile_w] != 0, struct))
            # whole-target energy: the clean target's plus the change on the feature's pixels
            base = np.clip((img[rows, cols_] - mean) * scale, -CLAMP, CLAMP)
            new = np.clip((img[rows, cols_] + vals - mean) * scale, -CLAMP, CLAMP)
            energies.append(target_clean_energy + float(np.sum(new ** 2 - base ** 2)))
        x = torch.as_tensor(np.stack(tiles_in), dtype=torch.float32, device=device)[:, None]
        with _instance_norm_hooks(model, stats, record=False):
            out = model(x)[:, 0]
        t = torch.as_tensor(np.stack(tiles_tgt), dtype=torch.float32, device=device)
        reg = torch.as_tensor(np.stack(tiles_reg), device=device)
        e = torch.as_tensor(energies, dtype=torch.float32, device=device)
        losses[start:start + len(tiles_in)] = region_nmse(out, t, reg, e).cpu().numpy()
    return (losses, ips) if return_ip else losses


def screened_search_scores(model: torch.nn.Module, image: np.ndarray, features: np.ndarray, mask_cols: np.ndarray,
                           confirm: int = 3, tile: int = 64, batch_size: int = 64, **thresholds) -> list[FeatureScore]:
    """Screen all candidates, then score the ``confirm`` most damaging (by screened loss, among IP-valid ones)
    exactly. Candidates not confirmed keep their screened loss and are never reported as hits."""
    from reviewer.fnaf.forward import HIT_THRESHOLD, IP_EPSILON

    hit_t = thresholds.get("hit_threshold", HIT_THRESHOLD)
    ip_e = thresholds.get("ip_epsilon", IP_EPSILON)
    approx, ips = screen_losses(model, image, features, mask_cols, tile, batch_size, return_ip=True)
    scores = [FeatureScore(float(a), False, float(i), bool(i >= ip_e), exact=False) for a, i in zip(approx, ips)]
    valid = [n for n in np.argsort(-approx) if scores[n].ip_ok][:confirm]
    if valid:
        exact = score_features(model, image, np.asarray(features)[valid], mask_cols, len(valid), hit_t, ip_e)
        for n, sc in zip(valid, exact):
            scores[n] = sc
    return scores
