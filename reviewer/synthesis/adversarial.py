"""Perturbations of FPR patches (values in [0, 1]): PGD, uniform noise, Poisson noise, noise patches.

``pgd_patch`` is the paper's eq. (10)-(11): L-inf PGD on the patch itself, from a random start inside the ball,
``x += step * sign(grad)``, projected onto ``|x - x0| <= eps`` and [0, 1]. ``target`` is the output the attack
drives the model towards: 0 makes a nodule vanish (a real positive), 1 makes a patch fire (a real negative or
noise). It maximises the FPR cross-entropy against the true label, i.e. minimises it against ``target``.

Defaults (the paper gives none for patch attacks): eps 0.03 (42 HU in the default [-1000, 400] HU window, about
twice the demo scans' noise), step 0.01, 10 iterations. Noise patches start from U(0, 1) and use the same ball.

Uniform noise of magnitude a: ``clip(x + U(-a/2, a/2), 0, 1)`` (a = the noise's full range, zero mean).
Poisson "xS": ``clip(Poisson(S * x) / S, 0, 1)``, i.e. the patch rescaled to [0, S] photon counts (x50 mild, x5
strong).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

PGD_EPS = 0.03
PGD_STEP = 0.01
PGD_ITERS = 10


@dataclass(frozen=True)
class PgdSettings:
    eps: float = PGD_EPS
    step: float = PGD_STEP
    iters: int = PGD_ITERS

    def to_json(self) -> dict:
        return {"eps": self.eps, "step": self.step, "iters": self.iters}


def _as_batch(x: Any, device) -> tuple[torch.Tensor, tuple[int, ...]]:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.ascontiguousarray(x))
    shape = tuple(t.shape)
    if t.dim() == 3:
        t = t[None, None]
    elif t.dim() == 4:
        t = t[:, None]
    elif t.dim() != 5:
        raise ValueError(f"patches must be (P,P,P), (B,P,P,P) or (B,1,P,P,P); got {shape}")
    return t.to(device=device, dtype=torch.float32), shape


def _device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def pgd_patch(model, x: Any, target: Any, eps: float = PGD_EPS, step: float = PGD_STEP, iters: int = PGD_ITERS,
              seed: int = 0, random_start: bool = True, token=None) -> torch.Tensor:
    """Adversarial patches (same shape as ``x``, detached, on the model's device). ``target``: 0/1 or (B,)."""
    from reviewer.detection.fpr import fpr_log_probabilities

    dev = _device(model)
    x0, shape = _as_batch(x, dev)
    B = x0.shape[0]
    tgt = torch.as_tensor(target, dtype=torch.float32, device=dev).reshape(-1)
    tgt = tgt.expand(B) if tgt.numel() == 1 else tgt
    if tgt.numel() != B:
        raise ValueError(f"{B} patches but {tgt.numel()} targets")
    gen = torch.Generator().manual_seed(int(seed))
    xa = x0.clone()
    if random_start and eps > 0:
        xa = (x0 + ((torch.rand(x0.shape, generator=gen) * 2 - 1) * eps).to(dev)).clamp(0.0, 1.0)
    was_training = model.training
    model.eval()
    try:
        for it in range(int(iters)):
            if token is not None:
                token.progress(it, iters, "PGD on patches")
            xa.requires_grad_(True)
            logp, log1mp = fpr_log_probabilities(model, xa)
            # BCE against the target from the logits: no vanishing gradient where p saturates at 0 or 1
            loss = -(tgt * logp + (1 - tgt) * log1mp).sum()
            (grad,) = torch.autograd.grad(loss, xa)
            with torch.no_grad():
                xa = xa - step * grad.sign()
                xa = torch.minimum(torch.maximum(xa, x0 - eps), x0 + eps).clamp(0.0, 1.0)
    finally:
        model.train(was_training)
    return xa.detach().reshape(shape)


def uniform_noise(x: Any, magnitude: float, rng: np.random.Generator) -> np.ndarray:
    """``clip(x + U(-magnitude/2, magnitude/2), 0, 1)``."""
    x = np.asarray(x, dtype=np.float32)
    n = rng.uniform(-magnitude / 2, magnitude / 2, x.shape).astype(np.float32)
    return np.clip(x + n, 0.0, 1.0)


def poisson_noise(x: Any, scale: float, rng: np.random.Generator) -> np.ndarray:
    """``clip(Poisson(scale * x) / scale, 0, 1)``: scale 50 ("x50") or 5 ("x5") in the paper."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return np.clip(rng.poisson(x * scale) / float(scale), 0.0, 1.0).astype(np.float32)


def noise_patches(n: int, patch_size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` pure uniform-noise patches U(0, 1)."""
    return rng.uniform(0.0, 1.0, (int(n),) + (int(patch_size),) * 3).astype(np.float32)
