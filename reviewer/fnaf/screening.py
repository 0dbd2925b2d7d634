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

from reviewer.fnaf.forward import CLAMP, EPS, FeatureScore, region_nmse, score_features, zero_filled_batch

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


@torch.no_grad()
def screen_losses(model: torch.nn.Module, image: np.ndarray, features: np.ndarray, mask_cols: np.ndarray,
                  tile: int = 64, batch_size: int = 64) -> np.ndarray:
    """Approximate attack losses of N candidate features (N, H, W) on one image, one tile per candidate."""
    device = next(model.parameters()).device
    img = torch.as_tensor(image, dtype=torch.float32, device=device)
    cols = torch.as_tensor(mask_cols, dtype=torch.float32, device=device)
    h, w = img.shape
    tile_h, tile_w = min(tile, h), min(tile, w)
    # clean pass: input statistics and every InstanceNorm layer's statistics
    zf_clean = zero_filled_batch(img[None], cols)
    mean, std = zf_clean.mean(), zf_clean.std()
    stats: dict = {}
    with _instance_norm_hooks(model, stats, record=True):
        model(((zf_clean - mean) / (std + EPS)).clamp(-CLAMP, CLAMP)[:, None])
    losses = np.empty(len(features), dtype=np.float64)
    k_clean = torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(img.to(torch.complex64)), norm="ortho"))
    for start in range(0, len(features), batch_size):
        feats = torch.as_tensor(np.asarray(features[start:start + batch_size]), dtype=torch.float32, device=device)
        # zero-filled of image + feature by linearity: shared clean k-space plus each feature's k-space
        k_feat = torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(feats.to(torch.complex64), dim=(-2, -1)),
                                                   dim=(-2, -1), norm="ortho"), dim=(-2, -1))
        k = (k_clean[None] + k_feat) * cols
        zf = torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(k, dim=(-2, -1)), dim=(-2, -1), norm="ortho"),
                                dim=(-2, -1)).abs()
        inp = ((zf - mean) / (std + EPS)).clamp(-CLAMP, CLAMP)
        target = ((img[None] + feats - mean) / (std + EPS)).clamp(-CLAMP, CLAMP)
        supports = (feats != 0).cpu().numpy()
        tiles_in, tiles_tgt, tiles_reg = [], [], []
        for f, sup in enumerate(supports):
            region = ndimage.binary_dilation(sup, np.ones((3, 3), bool))
            rows, cols_ = np.nonzero(region)
            r0 = _tile_origin(rows.mean(), tile_h, h)
            c0 = _tile_origin(cols_.mean(), tile_w, w)
            tiles_in.append(inp[f, r0:r0 + tile_h, c0:c0 + tile_w])
            tiles_tgt.append(target[f, r0:r0 + tile_h, c0:c0 + tile_w])
            tiles_reg.append(torch.as_tensor(region[r0:r0 + tile_h, c0:c0 + tile_w], device=device))
        x = torch.stack(tiles_in)[:, None]
        with _instance_norm_hooks(model, stats, record=False):
            out = model(x)[:, 0]
        energy = (target ** 2).flatten(1).sum(1)
        losses[start:start + len(supports)] = region_nmse(out, torch.stack(tiles_tgt), torch.stack(tiles_reg),
                                                          energy).cpu().numpy()
    return losses


def screened_search_scores(model: torch.nn.Module, image: np.ndarray, features: np.ndarray, mask_cols: np.ndarray,
                           confirm: int = 3, tile: int = 64, batch_size: int = 64, **thresholds) -> list[FeatureScore]:
    """Screen all candidates, then score the ``confirm`` most damaging (by screened loss, among IP-valid ones)
    exactly. Candidates not confirmed keep their screened loss and are never reported as hits."""
    from reviewer.fnaf.forward import HIT_THRESHOLD, IP_EPSILON, ip_mse

    hit_t = thresholds.get("hit_threshold", HIT_THRESHOLD)
    ip_e = thresholds.get("ip_epsilon", IP_EPSILON)
    approx = screen_losses(model, image, features, mask_cols, tile, batch_size)
    t = torch.as_tensor
    ips = ip_mse(t(image, dtype=torch.float32)[None].expand(len(features), *image.shape),
                 t(np.asarray(features), dtype=torch.float32), t(mask_cols, dtype=torch.float32)).numpy()
    scores = [FeatureScore(float(a), False, float(i), bool(i >= ip_e), exact=False) for a, i in zip(approx, ips)]
    valid = [n for n in np.argsort(-approx) if scores[n].ip_ok][:confirm]
    if valid:
        exact = score_features(model, image, np.asarray(features)[valid], mask_cols, len(valid), hit_t, ip_e)
        for n, sc in zip(valid, exact):
            scores[n] = sc
    return scores
