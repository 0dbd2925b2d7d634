"""The paper's sampling ratios for FPR fine-tuning (``reviewer train fpr --augment syn,perturb,poisson``).

Given a batch of real positive and negative patches, each positive slot becomes (paper, section 3.3):

* 50 % the real positive,
* 25 % a synthetic nodule (``syn``): PGD-searched against the current model (:mod:`reviewer.synthesis.hard`)
  and blended into a real negative of the batch as background,
* 25 % an adversarial positive (``perturb``): the real positive under patch PGD towards "no nodule";

and each negative slot

* 50 % the real negative,
* 50 % an adversarial negative (``perturb``): patch PGD towards "nodule", from the real negative or (half of
  the time) from a uniform-noise patch (the paper's pure adversarial noise patches).

``poisson``: the paper "used the same ratio to sample the Poisson noise injected patches as used for the
adversarial noise patches", so Poisson-noised copies of the real patch (scale drawn log-uniformly in [5, 50],
i.e. between the stress tests' x5 and x50) take the adversarial share: 25 % of positives, 50 % of negatives.
With both ``perturb`` and ``poisson`` the share is split evenly (12.5 % / 12.5 % and 25 % / 25 %). A kind that
is not enabled gives its share back to the real patches (``syn`` alone: positives 75 % real, 25 % synthetic).

Slots are drawn independently per batch (multinomial), so the ratios hold in expectation. Adversarial samples are
searched online against the model being trained (as Madry et al.'s PGD training; the paper pre-computed a pool
against its baseline once). For cost on a CPU, training uses 5 PGD steps (patches: eps 0.03, step 0.01;
nodules: eps 0.15, step 0.05), the stress tests use 10 and 20.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

import numpy as np
import torch

from reviewer.synthesis.adversarial import PGD_EPS, noise_patches, pgd_patch, poisson_noise
from reviewer.synthesis.hard import EPS, MIN_DIAMETER_MM, search_hard_nodules

KINDS = ("syn", "perturb", "poisson")


def parse_kinds(kinds: Any) -> set[str]:
    """``"syn,perturb"`` or an iterable of names -> a validated set."""
    items = [k.strip() for k in kinds.split(",")] if isinstance(kinds, str) else list(kinds)
    out = {k for k in items if k}
    bad = sorted(out - set(KINDS))
    if bad:
        raise ValueError(f"unknown augmentation {', '.join(bad)} (choose from {', '.join(KINDS)})")
    return out


def sampling_ratios(kinds: Iterable[str]) -> tuple[dict[str, float], dict[str, float]]:
    """(positive shares, negative shares) by source for the enabled ``kinds``."""
    k = parse_kinds(kinds)
    noise = [n for n in ("adversarial", "poisson") if ("perturb" if n == "adversarial" else n) in k]
    pos = {"real": 0.5, "synthetic": 0.25 if "syn" in k else 0.0}
    neg = {"real": 0.5}
    for n in noise:
        pos[n] = 0.25 / len(noise)
        neg[n] = 0.5 / len(noise)
    pos["real"] += 1.0 - sum(pos.values())
    neg["real"] += 1.0 - sum(neg.values())
    return ({s: v for s, v in pos.items() if v > 0}, {s: v for s, v in neg.items() if v > 0})


class FprAugmenter:
    """Turns a real batch into an augmented one with the paper's ratios; see the module docstring."""

    def __init__(self, kinds: Any, spec: Any, seed: int = 0, patch_eps: float = PGD_EPS, patch_step: float = 0.01,
                 patch_iters: int = 5, nodule_eps: float = EPS, nodule_step: float = 0.05, nodule_iters: int = 5,
                 min_diameter_mm: float = MIN_DIAMETER_MM, noise_share: float = 0.5):
        self.kinds = parse_kinds(kinds)
        self.spec = spec
        self.rng = np.random.default_rng([int(seed), 4006])
        self.seed = int(seed)
        self.patch = (float(patch_eps), float(patch_step), int(patch_iters))
        self.nodule = (float(nodule_eps), float(nodule_step), int(nodule_iters))
        self.min_diameter_mm = float(min_diameter_mm)
        self.noise_share = float(noise_share)
        self.pos_ratios, self.neg_ratios = sampling_ratios(self.kinds)
        self.counts: Counter = Counter()  # actual sources over all batches, e.g. ('pos', 'synthetic')
        self.last_sources: list[tuple[str, str]] = []
        self._calls = 0

    def plan(self, n_pos: int, n_neg: int) -> tuple[list[str], list[str]]:
        """Draw a source for every slot (independently, with the configured shares)."""
        def draw(ratios, n):
            names = list(ratios)
            return list(self.rng.choice(names, size=n, p=[ratios[k] for k in names])) if n else []
        return [str(s) for s in draw(self.pos_ratios, n_pos)], [str(s) for s in draw(self.neg_ratios, n_neg)]

    def batch(self, model, pos: Any, neg: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x (B, 1, P, P, P), y (B,))`` on the model's device, positives first."""
        dev = _device(model)
        xp = _as_patches(pos, dev)
        xn = _as_patches(neg, dev)
        plan_p, plan_n = self.plan(len(xp), len(xn))
        self._calls += 1
        call_seed = self.seed * 100003 + self._calls
        xp_out, xn_out = xp.clone(), xn.clone()
        src_p, src_n = list(plan_p), list(plan_n)

        # synthetic nodules, PGD-searched, in real negatives as backgrounds
        syn = [i for i, s in enumerate(plan_p) if s == "synthetic"]
        if syn:
            if len(xn) == 0:
                for i in syn:
                    src_p[i] = "real"
            else:
                bg_idx = self.rng.integers(0, len(xn), len(syn))
                eps, step, iters = self.nodule
                res = search_hard_nodules(model, self.spec, xn[bg_idx].cpu().numpy(), eps, step, iters,
                                          self.min_diameter_mm, seed=call_seed)
                for i, r in zip(syn, res):
                    if r.discarded:  # too small once cut by the lung boundary: keep the real positive
                        src_p[i] = "real"
                    else:
                        xp_out[i] = torch.as_tensor(r.patch, device=dev)

        eps, step, iters = self.patch
        adv_p = [i for i, s in enumerate(plan_p) if s == "adversarial"]
        if adv_p:
            xp_out[adv_p] = pgd_patch(model, xp[adv_p], 0.0, eps, step, iters, seed=call_seed + 1)
        adv_n = [i for i, s in enumerate(plan_n) if s == "adversarial"]
        if adv_n:
            start = xn[adv_n].clone()
            from_noise = self.rng.random(len(adv_n)) < self.noise_share
            if from_noise.any():
                start[torch.as_tensor(from_noise)] = torch.as_tensor(
                    noise_patches(int(from_noise.sum()), start.shape[-1], self.rng), device=dev)
            xn_out[adv_n] = pgd_patch(model, start, 1.0, eps, step, iters, seed=call_seed + 2)
            for j, i in enumerate(adv_n):
                if from_noise[j]:
                    src_n[i] = "adversarial-noise"
        for plan, x_in, x_out in ((plan_p, xp, xp_out), (plan_n, xn, xn_out)):
            for i, s in enumerate(plan):
                if s == "poisson":
                    scale = float(np.exp(self.rng.uniform(np.log(5.0), np.log(50.0))))
                    x_out[i] = torch.as_tensor(poisson_noise(x_in[i].cpu().numpy(), scale, self.rng), device=dev)

        self.last_sources = [("pos", s) for s in src_p] + [("neg", s) for s in src_n]
        self.counts.update(self.last_sources)
        x = torch.cat([xp_out, xn_out])[:, None]
        y = torch.cat([torch.ones(len(xp_out)), torch.zeros(len(xn_out))]).to(dev)
        return x.detach(), y


def _device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _as_patches(x: Any, dev) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.ascontiguousarray(x))
    t = t.detach().to(device=dev, dtype=torch.float32)
    if t.dim() == 5:
        t = t[:, 0]
    if t.dim() != 4:
        raise ValueError(f"patches must be (B, P, P, P) or (B, 1, P, P, P), got {tuple(t.shape)}")
    return t
