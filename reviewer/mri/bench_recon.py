"""`reviewer bench recon`: U-Net slices per second, and batched vs one-at-a-time FNAF candidate evaluation.

Both measured in the same run on the same device, so the ratio (``batched_speedup``) is meaningful.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from reviewer.fnaf.features import random_walk
from reviewer.fnaf.forward import score_features
from reviewer.mri.masks import RandomMaskFunc
from reviewer.mri.unet import Unet


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


@torch.no_grad()
def run_recon_bench(chans: int = 32, candidates: int = 32, batch_size: int = 32, repeats: int = 2,
                    device=None) -> dict:
    from reviewer.device import describe_device, get_device

    device = device or get_device()
    torch.manual_seed(0)
    model = Unet(1, 1, chans, 4).to(device).eval()
    x = torch.randn(4, 1, 320, 320, device=device)
    model(x[:1])  # warm-up
    t_slices = _best_of(lambda: model(x), repeats)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:320, :320]
    image = (((xx - 160) ** 2 / 80 ** 2 + (yy - 160) ** 2 / 100 ** 2) < 1).astype(np.float32)
    feats = np.stack([random_walk((320, 320), tuple(rng.integers(50, 271, 2)), 10, 0.0, 1.0, rng).values
                      for _ in range(candidates)])
    cols = RandomMaskFunc([0.08], [4])(320, seed=1).columns
    t_batched = _best_of(lambda: score_features(model, image, feats, cols, batch_size=batch_size), repeats)
    t_single = _best_of(lambda: score_features(model, image, feats, cols, batch_size=1), 1)
    result = {
        "device": describe_device(),
        "chans": chans,
        "slices_per_s": 4 / t_slices,
        "candidates": candidates,
        "batched_candidates_per_s": candidates / t_batched,
        "single_candidates_per_s": candidates / t_single,
        "batched_speedup": t_single / t_batched,
    }
    print(f"device: {result['device']}; U-Net chans={chans}, 320x320")
    print(f"  reconstruction: {result['slices_per_s']:.2f} slices/s (batch 4)")
    print(f"  FNAF candidates: batched {result['batched_candidates_per_s']:.2f}/s vs one per pass "
          f"{result['single_candidates_per_s']:.2f}/s -> batched_speedup {result['batched_speedup']:.2f}x")
    return result
