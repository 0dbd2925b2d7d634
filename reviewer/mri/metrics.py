"""Reconstruction metrics identical to ``fastmri.evaluate``: per volume, data_range = the volume's maximum."""

from __future__ import annotations

import numpy as np


def nmse(gt: np.ndarray, pred: np.ndarray) -> float:
    """||gt - pred||^2 / ||gt||^2."""
    gt = np.asarray(gt, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    return float(np.linalg.norm(gt - pred) ** 2 / np.linalg.norm(gt) ** 2)


def psnr(gt: np.ndarray, pred: np.ndarray, maxval: float | None = None) -> float:
    """Peak SNR with data_range = gt.max() unless given."""
    from skimage.metrics import peak_signal_noise_ratio

    maxval = float(gt.max()) if maxval is None else maxval
    return float(peak_signal_noise_ratio(gt, pred, data_range=maxval))


def ssim(gt: np.ndarray, pred: np.ndarray, maxval: float | None = None) -> float:
    """Mean over slices of scikit-image SSIM with data_range = the volume maximum (gt: (slices, H, W))."""
    from skimage.metrics import structural_similarity

    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.ndim == 2:
        gt, pred = gt[None], pred[None]
    if gt.ndim != 3:
        raise ValueError("SSIM expects (slices, H, W) or (H, W)")
    maxval = float(gt.max()) if maxval is None else maxval
    return float(np.mean([structural_similarity(g, p, data_range=maxval) for g, p in zip(gt, pred)]))


def all_metrics(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {"nmse": nmse(gt, pred), "psnr": psnr(gt, pred), "ssim": ssim(gt, pred)}
