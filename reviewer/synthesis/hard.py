"""Hard synthetic nodules: PGD over the generator's normalised parameters to minimise an FPR model's response.

As the paper (section 3.2): start from a random nodule ``theta0`` (here drawn from :func:`sample_params`, or
given) plus a random ``delta`` in the L-inf ball, then 20 steps ``delta += step * sign(grad L_FPR(e, 1))`` with
projection onto ``|delta| <= eps`` (eps 0.15, step 0.05 in normalised units). We minimise the log-probability
of "nodule" (equivalently maximise the FPR cross-entropy for label 1). The diameter is also kept at or above the
size floor during the search, and a result whose visible size (effective mask, after the HU-aware lung rule)
falls under the floor is discarded, as the paper filters synthetic nodules under 6 mm.

The lowest response among the iterates is kept (PGD's last iterate is not always its best).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from reviewer.synthesis.generator import (N_PARAMS, NoduleParams, equivalent_diameter_mm, normalise_diameter,
                                          sample_params)
from reviewer.synthesis.insert import PatchContext, compose_batch

EPS = 0.15
STEP = 0.05
ITERS = 20
MIN_DIAMETER_MM = 6.0


@dataclass
class HardNoduleResult:
    """One search. ``before``: response to the starting (random) nodule; ``after``: to the PGD-searched one."""

    before: float
    after: float
    params: NoduleParams  # the searched nodule
    discarded_reason: str | None = None  # set when the result is unusable (e.g. visible size under the floor)
    start_params: NoduleParams | None = None
    patch: np.ndarray | None = field(default=None, repr=False)  # (P, P, P) in [0, 1] with the searched nodule
    start_patch: np.ndarray | None = field(default=None, repr=False)
    mask: np.ndarray | None = field(default=None, repr=False)  # effective mask of the searched nodule
    measured_diameter_mm: float = 0.0
    start_measured_diameter_mm: float = 0.0
    uncertainty_before: float | None = None
    uncertainty_after: float | None = None
    seed: int = 0
    history: list[float] = field(default_factory=list)  # response per iteration

    @property
    def discarded(self) -> bool:
        return self.discarded_reason is not None

    def to_json(self) -> dict[str, Any]:
        return {"before": self.before, "after": self.after, "params": self.params.to_json(),
                "start_params": self.start_params.to_json() if self.start_params else None,
                "discarded_reason": self.discarded_reason, "measured_diameter_mm": self.measured_diameter_mm,
                "start_measured_diameter_mm": self.start_measured_diameter_mm,
                "uncertainty_before": self.uncertainty_before, "uncertainty_after": self.uncertainty_after,
                "seed": self.seed, "history": self.history}


def _outputs(model, x: torch.Tensor):
    from reviewer.detection.fpr import fpr_outputs

    return fpr_outputs(model, x)


def fpr_log_probabilities(model, x: torch.Tensor):
    from reviewer.detection.fpr import fpr_log_probabilities as f

    return f(model, x)


def _model_device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def search_hard_nodules(fpr_model, spec, backgrounds: Any, eps: float = EPS, step: float = STEP, iters: int = ITERS,
                        min_diameter_mm: float = MIN_DIAMETER_MM, seed: int = 0, starts: list[NoduleParams] | None = None,
                        random_start: bool = True, token=None) -> list[HardNoduleResult]:
    """Batched search, one nodule per background patch ((B, P, P, P) in [0, 1]); see the module docstring."""
    bgs = np.asarray(backgrounds.detach().cpu().numpy() if isinstance(backgrounds, torch.Tensor) else backgrounds,
                     dtype=np.float32)
    if bgs.ndim == 3:
        bgs = bgs[None]
    B = len(bgs)
    rng = np.random.default_rng([int(seed), 4005])
    if starts is None:
        starts = [sample_params(rng, min_diameter_mm) for _ in range(B)]
    if len(starts) != B:
        raise ValueError(f"{B} backgrounds but {len(starts)} start nodules")
    seeds = [int(seed) * 1000 + b for b in range(B)]
    dev = _model_device(fpr_model)
    ctxs = [PatchContext.from_patch(b, spec) for b in bgs]
    for c in ctxs:
        for name in ("background01", "smooth_hu", "detail_hu", "lung"):
            setattr(c, name, getattr(c, name).to(dev))
    theta0 = torch.as_tensor(np.stack([p.to_vector() for p in starts]), dtype=torch.float32, device=dev)
    lo = torch.zeros(N_PARAMS, device=dev)
    lo[0] = normalise_diameter(min_diameter_mm)
    theta0 = torch.maximum(theta0, lo)
    gen = torch.Generator().manual_seed(int(seed))
    delta = ((torch.rand(theta0.shape, generator=gen) * 2 - 1) * eps).to(dev) if random_start \
        else torch.zeros_like(theta0)

    def project(th):
        d = (th - theta0).clamp(-eps, eps)
        return torch.minimum(torch.maximum(theta0 + d, lo), torch.ones_like(th))

    was_training = fpr_model.training
    fpr_model.eval()
    try:
        with torch.no_grad():
            x0, m0 = compose_batch(ctxs, theta0, seeds)
            p0, u0 = _outputs(fpr_model, x0[:, None])
        theta = project(theta0 + delta).detach()
        best = torch.full((B,), float("inf"), device=dev)
        best_theta = theta.clone()
        history: list[list[float]] = []
        for it in range(iters + 1):
            if token is not None:
                token.progress(it, iters + 1, "PGD over nodule parameters")
            theta.requires_grad_(True)
            x, _ = compose_batch(ctxs, theta, seeds)
            logp, _ = fpr_log_probabilities(fpr_model, x[:, None])
            prob = logp.exp()
            with torch.no_grad():
                better = prob < best
                best = torch.where(better, prob.detach(), best)
                best_theta[better] = theta.detach()[better]
                history.append(prob.detach().cpu().tolist())
            if it == iters:
                break
            loss = logp.sum()  # minimise log p(nodule), from the logits: no vanishing gradient at p ~ 1
            (grad,) = torch.autograd.grad(loss, theta)
            theta = project(theta.detach() - step * grad.sign()).detach()
        with torch.no_grad():
            xb, mb = compose_batch(ctxs, best_theta, seeds)
            pb, ub = _outputs(fpr_model, xb[:, None])
    finally:
        fpr_model.train(was_training)

    vox = float(spec.spacing_mm) ** 3
    out = []
    for b in range(B):
        params = NoduleParams.from_vector(best_theta[b].cpu().numpy())
        measured = equivalent_diameter_mm(mb[b].cpu().numpy(), vox)
        reason = None
        if measured < min_diameter_mm:
            reason = (f"visible nodule {measured:.1f} mm is under the {min_diameter_mm:g} mm floor "
                      "(cut by the lung boundary or the HU rule)")
        out.append(HardNoduleResult(
            before=float(p0[b]), after=float(pb[b]), params=params, discarded_reason=reason, start_params=starts[b],
            patch=xb[b].detach().cpu().numpy(), start_patch=x0[b].detach().cpu().numpy(),
            mask=mb[b].detach().cpu().numpy(), measured_diameter_mm=round(measured, 2),
            start_measured_diameter_mm=round(equivalent_diameter_mm(m0[b].cpu().numpy(), vox), 2),
            uncertainty_before=None if u0 is None else float(u0[b]),
            uncertainty_after=None if ub is None else float(ub[b]), seed=seeds[b],
            history=[h[b] for h in history]))
    return out


def find_missed_nodule(fpr_model, spec, background_patch: Any, eps: float = EPS, step: float = STEP,
                       iters: int = ITERS, min_diameter_mm: float = MIN_DIAMETER_MM, seed: int = 0,
                       token=None, start: NoduleParams | None = None) -> HardNoduleResult:
    """"Find a nodule the detector misses here": one PGD search on one background patch ((P, P, P) in [0, 1])."""
    return search_hard_nodules(fpr_model, spec, np.asarray(background_patch)[None], eps, step, iters,
                               min_diameter_mm, seed, None if start is None else [start], token=token)[0]


def find_missed_nodule_in_volume(fpr_model, spec, volume, center_lps: Any, seed: int = 0, token=None, **kw):
    """For the GUI: search at a world point of a scan and insert the result there.

    Returns ``(result, new_volume | None, finding | None)``; the volume and finding are None when discarded.
    """
    from reviewer.detection.fpr import extract_patches
    from reviewer.synthesis.insert import insert_nodule

    patch = extract_patches(volume, np.asarray(center_lps, float)[None], spec)[0]
    res = find_missed_nodule(fpr_model, spec, patch, seed=seed, token=token, **kw)
    if res.discarded:
        return res, None, None
    new, finding = insert_nodule(volume, center_lps, res.params, seed=res.seed)
    finding.score = res.after
    finding.score_kind = "probability"
    finding.extra.update({"fpr_response_before": res.before, "fpr_response_after": res.after, "search": "pgd"})
    return res, new, finding
