"""Losses for the candidate generator's heat map and the FPR classifier, and annotation censoring.

* ``ce``: (soft-target) binary cross-entropy; on a Beta head it is applied to p = alpha / (alpha + beta).
* ``beta``: the evidential loss in MSE form (Sensoy et al. 2018, two classes; REFERENCES section 3):
  ``(y - p)^2 + p (1 - p) / (S + 1)`` with S = alpha + beta, plus ``kl_weight * KL(Beta(a~, b~) || Beta(1, 1))``
  where the evidence of the true class is removed (a~ = y + (1 - y) alpha, b~ = (1 - y) + y beta); the caller
  anneals ``kl_weight`` (``min(1, epoch / 10)`` in training).
* ``lopsided``: the lopsided bootstrap loss (REFERENCES section 4): cross-entropy where the label is positive, soft
  bootstrapping (Reed et al. 2015) where it is negative:
  ``-beta log(1 - p) + (1 - beta) H(p)``, H the binary entropy. Minimising H makes the model *confident* on
  voxels labelled negative instead of forcing them to 0, so an unannotated nodule the model is sure about is not
  unlearned. (REFERENCES writes the bracket as ``-[beta log(1-p) + (1-beta) H(p)]``, which would *maximise*
  entropy; we follow Reed's soft bootstrap, ``-sum_k (beta t_k + (1 - beta) q_k) log q_k``, which expands to the
  form above and matches the stated intent.) Gradient w.r.t. the logit z on a negative:
  ``beta p - (1 - beta) z p (1 - p)``.

Heat-map losses are class-balanced: the mean over voxels with target > 0 plus the mean over the others.
"""

from __future__ import annotations

import math
import numpy as np
import torch
from torch.nn import functional as F

from reviewer.detection.fpr import beta_parameters

LOSSES = ("ce", "beta", "lopsided")
DEFAULT_BOOTSTRAP_BETA = 0.3


def binary_entropy_from_logits(z: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(z)
    # H = -p log p - (1-p) log(1-p), with log p = -softplus(-z), log(1-p) = -softplus(z)
    return p * F.softplus(-z) + (1 - p) * F.softplus(z)


def lopsided_bootstrap_loss(logits: torch.Tensor, targets: torch.Tensor, beta: float = DEFAULT_BOOTSTRAP_BETA,
                            reduction: str = "none") -> torch.Tensor:
    """Per-element lopsided loss on logits: BCE(target) where target > 0, soft bootstrap where target == 0."""
    z = logits.float()
    t = targets.float()
    bce = F.binary_cross_entropy_with_logits(z, t, reduction="none")
    neg = beta * F.softplus(z) + (1.0 - beta) * binary_entropy_from_logits(z)
    out = torch.where(t > 0, bce, neg)
    return _reduce(out, reduction)


def _reduce(x: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return x
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    raise ValueError(f"unknown reduction {reduction!r}")


def kl_beta_uniform(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """KL(Beta(a, b) || Beta(1, 1)) elementwise."""
    s = a + b
    return (torch.lgamma(s) - torch.lgamma(a) - torch.lgamma(b)
            + (a - 1) * (torch.digamma(a) - torch.digamma(s)) + (b - 1) * (torch.digamma(b) - torch.digamma(s)))


def evidential_beta_loss(raw: torch.Tensor, y: torch.Tensor, kl_weight: float = 1.0) -> torch.Tensor:
    """Per-sample MSE-form evidential loss + kl_weight * KL of the misleading evidence (see module docstring)."""
    a, b = beta_parameters(raw)
    y = y.float().reshape(-1)
    s = a + b
    p = a / s
    mse = (y - p) ** 2 + p * (1 - p) / (s + 1)
    a_t = y + (1 - y) * a
    b_t = (1 - y) + y * b
    return mse + kl_weight * kl_beta_uniform(a_t, b_t)


def fpr_loss(outputs: torch.Tensor, labels: torch.Tensor, kind: str = "ce", kl_weight: float = 1.0,
             bootstrap_beta: float = DEFAULT_BOOTSTRAP_BETA) -> torch.Tensor:
    """Mean loss of raw FPR head outputs ((B, 1) sigmoid logits or (B, 2) Beta evidence) against labels (B,)."""
    y = labels.float().reshape(-1)
    two = outputs.ndim == 2 and outputs.shape[1] == 2
    if kind == "beta":
        if not two:
            raise ValueError("the 'beta' loss needs a Beta head (two evidence outputs)")
        return evidential_beta_loss(outputs, y, kl_weight).mean()
    if two:  # CE / lopsided on the Beta head's probability, expressed as a logit log(alpha / beta)
        a, b = beta_parameters(outputs)
        z = torch.log(a) - torch.log(b)
    else:
        z = outputs.float().reshape(-1)
    if kind == "ce":
        return F.binary_cross_entropy_with_logits(z, y)
    if kind == "lopsided":
        return lopsided_bootstrap_loss(z, y, bootstrap_beta, reduction="mean")
    raise ValueError(f"unknown loss {kind!r} (known: {', '.join(LOSSES)})")


def heatmap_loss(logits: torch.Tensor, target: torch.Tensor, kind: str = "ce",
                 bootstrap_beta: float = DEFAULT_BOOTSTRAP_BETA) -> torch.Tensor:
    """Class-balanced heat-map loss: mean over voxels with target > 0 plus mean over the rest."""
    z = logits.float()
    t = target.float()
    if kind == "ce":
        per = F.binary_cross_entropy_with_logits(z, t, reduction="none")
    elif kind == "lopsided":
        per = lopsided_bootstrap_loss(z, t, bootstrap_beta)
    else:
        raise ValueError(f"heat-map loss must be 'ce' or 'lopsided', got {kind!r}")
    pos = t > 0
    n_pos = pos.sum().clamp_min(1)
    n_neg = (~pos).sum().clamp_min(1)
    return (per * pos).sum() / n_pos + (per * ~pos).sum() / n_neg


# -- censoring (applied to the training labels only) -----------------------------------------------------------
def parse_censor(spec: str | None) -> tuple[str, float] | None:
    """'random:0.5' / 'size:0.3' -> (mode, fraction); None or '' -> None."""
    if not spec:
        return None
    mode, _, frac = spec.partition(":")
    try:
        f = float(frac)
    except ValueError:
        raise ValueError(f"--censor must be random:F or size:F with F in [0, 1], got {spec!r}") from None
    if mode not in ("random", "size") or not 0.0 <= f <= 1.0:
        raise ValueError(f"--censor must be random:F or size:F with F in [0, 1], got {spec!r}")
    return mode, f


def censor_annotations(annotations: dict, spec: str | None, seed: int = 0) -> dict:
    """Drop a fraction of all annotations (pooled over scans): at random, or the smallest diameters first.

    ``annotations``: {uid: [annotation with .diameter_mm or dict with 'diameter_mm', ...]}; returns a new dict.
    """
    parsed = parse_censor(spec)
    if parsed is None:
        return {k: list(v) for k, v in annotations.items()}
    mode, frac = parsed
    items = [(uid, i, _diam(a)) for uid, lst in annotations.items() for i, a in enumerate(lst)]
    n_drop = int(math.floor(frac * len(items) + 0.5))
    if mode == "random":
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(items))
    else:
        order = np.argsort([d for _, _, d in items], kind="stable")
    drop = {(items[o][0], items[o][1]) for o in order[:n_drop]}
    return {uid: [a for i, a in enumerate(lst) if (uid, i) not in drop] for uid, lst in annotations.items()}


def _diam(a) -> float:
    return float(a["diameter_mm"] if isinstance(a, dict) else a.diameter_mm)


def count(annotations: dict) -> int:
    return sum(len(v) for v in annotations.values())
