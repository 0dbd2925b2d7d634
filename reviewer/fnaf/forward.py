"""The FNAF forward model and its measurements, batched in torch so many candidates share one forward pass.

(image + feature) -> centred FFT -> column mask -> inverse FFT -> magnitude -> instance normalisation -> model.
The target is (image + feature) normalised with the input's mean and std, as fastMRI's U-Net transform does.

* attack loss: the error between the model output and the target inside the loss region (feature +
  neighbours), normalised by the energy of the whole target: sum_region (out - tgt)^2 / sum_image tgt^2.
  A feature is a hit (the model lost it) when the loss >= ``HIT_THRESHOLD``. Normalising by the whole image
  (not by the region) is what makes the published magnitudes consistent: the paper reports attack losses of
  ~1e-3 for a U-Net whose whole-image NMSE is ~3e-2, and an "MSE" of the same order as the information
  preservation MSE; a region-normalised NMSE would be of the order of the global NMSE or larger.
* information preservation (IP): the feature must survive under-sampling: the MSE between the normalised
  zero-filled inputs with and without the feature (both with the clean input's statistics) >= ``IP_EPSILON``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from reviewer.mri.fft import fft2c_torch, ifft2c_torch

HIT_THRESHOLD = 1e-3
IP_EPSILON = 1e-4
CLAMP = 6.0
EPS = 1e-11


def zero_filled_batch(images: torch.Tensor, mask_cols: torch.Tensor) -> torch.Tensor:
    """Real images (B, H, W) -> magnitude of the masked inverse FFT (B, H, W); mask (W,) or per sample (B, W)."""
    k = fft2c_torch(images.to(torch.complex64))
    if mask_cols.ndim == 2:
        mask_cols = mask_cols[:, None, :]
    return ifft2c_torch(k * mask_cols.to(k.real.dtype)).abs()


def _norm_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x.flatten(1)
    return flat.mean(1)[:, None, None], flat.std(1)[:, None, None]


@dataclass
class ForwardResult:
    output: torch.Tensor  # model output, normalised domain (B, H, W)
    target: torch.Tensor  # (image + feature) normalised with the input statistics, clamped
    zero_filled: torch.Tensor  # normalised zero-filled input (B, H, W)
    mean: torch.Tensor
    std: torch.Tensor


def forward(model: torch.nn.Module, images: torch.Tensor, mask_cols: torch.Tensor) -> ForwardResult:
    """Run the under-sampling + model pipeline on a batch of real images (B, H, W) (features already added)."""
    zf = zero_filled_batch(images, mask_cols)
    mean, std = _norm_stats(zf)
    inp = ((zf - mean) / (std + EPS)).clamp(-CLAMP, CLAMP)
    out = model(inp[:, None])[:, 0]
    target = ((images - mean) / (std + EPS)).clamp(-CLAMP, CLAMP)
    return ForwardResult(out, target, inp, mean, std)


def region_nmse(output: torch.Tensor, target: torch.Tensor, region: torch.Tensor,
                target_energy: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample attack loss: squared error inside a boolean region over the whole target's energy (B,).

    ``target_energy`` (B,) replaces sum(target^2) when ``target`` is only a tile of the image.
    """
    r = region.to(output.dtype)
    num = (((output - target) * r) ** 2).flatten(1).sum(1)
    den = (target ** 2).flatten(1).sum(1) if target_energy is None else target_energy
    return num / den.clamp_min(1e-12)


def ip_mse(clean: torch.Tensor, features: torch.Tensor, mask_cols: torch.Tensor) -> torch.Tensor:
    """Information-preservation MSE: normalised zero-filled input with vs without the feature (B,)."""
    zf_clean = zero_filled_batch(clean, mask_cols)
    zf_feat = zero_filled_batch(clean + features, mask_cols)
    mean, std = _norm_stats(zf_clean)
    return (((zf_feat - zf_clean) / (std + EPS)) ** 2).flatten(1).mean(1)


@dataclass
class FeatureScore:
    loss: float  # masked NMSE of the model against image + feature
    hit: bool  # the model lost the feature (loss >= threshold)
    ip: float  # information-preservation MSE
    ip_ok: bool  # the feature survives under-sampling
    exact: bool = True  # False: a screened (approximate) loss, used for ranking only
    lost_fraction: float = float("nan")  # loss / the loss of a model that drops the feature entirely


@torch.no_grad()
def score_features(model: torch.nn.Module, image: np.ndarray, features: np.ndarray, mask_cols: np.ndarray,
                   batch_size: int = 16, hit_threshold: float = HIT_THRESHOLD, ip_epsilon: float = IP_EPSILON,
                   device: torch.device | None = None) -> list[FeatureScore]:
    """Score N candidate features (N, H, W) on one clean image (H, W): many candidates per forward pass."""
    from scipy import ndimage

    device = device or next(model.parameters()).device
    img = torch.as_tensor(image, dtype=torch.float32, device=device)
    cols = torch.as_tensor(mask_cols, dtype=torch.float32, device=device)
    scores: list[FeatureScore] = []
    for start in range(0, len(features), batch_size):
        feats = torch.as_tensor(np.asarray(features[start:start + batch_size]), dtype=torch.float32, device=device)
        regions = np.stack([ndimage.binary_dilation(f != 0, np.ones((3, 3), bool)) for f in feats.cpu().numpy()])
        res = forward(model, img[None] + feats, cols)
        loss = region_nmse(res.output, res.target, torch.as_tensor(regions, device=device))
        ip = ip_mse(img[None].expand_as(feats), feats, cols)
        # a model that returned the clean image would score sum((f / std)^2) / sum(target^2): the reference
        # that says which fraction of the feature's energy was lost
        lost_all = ((feats / (res.std + EPS)) ** 2).flatten(1).sum(1) / (res.target ** 2).flatten(1).sum(1)
        for lo, i, la in zip(loss.tolist(), ip.tolist(), lost_all.tolist()):
            scores.append(FeatureScore(lo, lo >= hit_threshold, i, i >= ip_epsilon, lost_fraction=lo / max(la, 1e-12)))
    return scores
