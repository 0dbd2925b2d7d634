"""`reviewer bench recon`: U-Net slices per second, and batched vs one-at-a-time FNAF candidate evaluation.

Both measured in the same run on the same device, so the ratio (``batched_speedup``) is meaningful. "Batched"
is how random search runs: all candidates screened on pooling-aligned tiles in one batch, the best few confirmed
with the exact full-image forward pass (reviewer.fnaf.screening). "Single" is one exact full-image forward pass
per candidate. The agreement of the two rankings is reported beside the speed-up.
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
def _bench_model(model_name: str | None, chans: int, device):
    """The named (or shipped demo standard) model; a randomly initialised U-Net when none is available."""
    from reviewer.errors import InputError
    from reviewer.models.cards import build_model, find_card

    for name in ([model_name] if model_name else ["demo-unet-standard"]):
        try:
            card = find_card(name, task="mri-reconstruction")
            return build_model(card, device), card.name
        except InputError:
            if model_name:
                raise
    return Unet(1, 1, chans, 4).to(device).eval(), f"random U-Net chans={chans}"


def _bench_image() -> np.ndarray:
    """A held-out demo knee slice when the demo dataset exists, else a synthetic ellipse."""
    from reviewer.resources import cache_dir

    files = sorted((cache_dir("demo", "mri-dataset-v1") / "test").glob("*.h5"))
    if files:
        import h5py

        with h5py.File(files[0], "r") as f:
            ref = f["reconstruction_esc"]
            return ref[ref.shape[0] // 2].astype(np.float32)
    yy, xx = np.mgrid[:320, :320]
    return (((xx - 160) ** 2 / 80 ** 2 + (yy - 160) ** 2 / 100 ** 2) < 1).astype(np.float32)


def run_recon_bench(chans: int = 32, candidates: int = 128, batch_size: int = 64, repeats: int = 2,
                    device=None, model_name: str | None = None) -> dict:
    from reviewer.device import describe_device, get_device

    device = device or get_device()
    torch.manual_seed(0)
    model, label = _bench_model(model_name, chans, device)
    x = torch.randn(4, 1, 320, 320, device=device)
    model(x[:1])  # warm-up
    t_slices = _best_of(lambda: model(x), repeats)
    rng = np.random.default_rng(0)
    image = _bench_image()
    lo, hi = float(image.min()), float(image.max())
    feats = np.stack([random_walk((320, 320), tuple(rng.integers(50, 271, 2)), 10, lo, hi, rng).values
                      for _ in range(candidates)])
    cols = RandomMaskFunc([0.08], [4])(320, seed=1).columns
    from scipy.stats import spearmanr

    from reviewer.fnaf.screening import screen_losses, screened_search_scores

    t_batched = _best_of(lambda: screened_search_scores(model, image, feats, cols, confirm=3,
                                                        batch_size=batch_size), repeats)
    single: list = []
    t_single = _best_of(lambda: single.append(score_features(model, image, feats, cols, batch_size=1)), 1)
    exact = np.array([s.loss for s in single[-1]])
    approx = screen_losses(model, image, feats, cols, batch_size=batch_size)
    result = {
        "device": describe_device(),
        "model": label,
        "slices_per_s": 4 / t_slices,
        "candidates": candidates,
        "batched_candidates_per_s": candidates / t_batched,
        "single_candidates_per_s": candidates / t_single,
        "batched_speedup": t_single / t_batched,
        "screening_rank_correlation": float(spearmanr(approx, exact)[0]),
        "screening_median_rel_error": float(np.median(np.abs(approx - exact) / np.maximum(exact, 1e-12))),
        # what the search needs: the truly worst candidate is among those confirmed exactly
        "worst_candidate_confirmed": bool(int(np.argmax(exact)) in set(np.argsort(-approx)[:3].tolist())),
    }
    print(f"device: {result['device']}; {label}, 320x320")
    print(f"  reconstruction: {result['slices_per_s']:.2f} slices/s (batch 4)")
    print(f"  FNAF candidates: batched {result['batched_candidates_per_s']:.2f}/s vs one per pass "
          f"{result['single_candidates_per_s']:.2f}/s -> batched_speedup {result['batched_speedup']:.2f}x")
    print(f"  screening vs exact: rank correlation {result['screening_rank_correlation']:.3f}, median relative "
          f"error {result['screening_median_rel_error']:.3f}, truly worst candidate among the 3 confirmed: "
          f"{result['worst_candidate_confirmed']}")
    return result
