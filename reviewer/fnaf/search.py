"""Search for the worst FNAF at a place: random search, finite differences, projected gradient ascent.

All three respect the information-preservation constraint (candidates whose IP MSE is below epsilon are
discarded) and a location region (default: the official [50, 270] window of a 320x320 image, scaled to the
image size). Random search evaluates many candidates per forward pass; PGD ascends the attack loss with
respect to the feature's intensities within its support, started from the best random-search locations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from reviewer.fnaf.features import Feature, loss_region, random_walk
from reviewer.fnaf.forward import HIT_THRESHOLD, IP_EPSILON, forward, ip_mse, region_nmse, score_features
from reviewer.fnaf.screening import screened_search_scores
from reviewer.jobs import JobToken

ATTACKS = ("rs", "fd", "pgd")


@dataclass
class Candidate:
    feature: Feature
    loss: float
    ip: float
    hit: bool
    ip_ok: bool
    attack: str
    exact: bool = True  # False: screened loss (ranking only), see reviewer.fnaf.screening
    lost_fraction: float = float("nan")  # share of the feature's energy the model lost (1 = dropped entirely)

    @property
    def values(self) -> np.ndarray:
        return self.feature.values


@dataclass
class SearchSettings:
    n_steps: int = 10  # random-walk length (evaluation setting of the paper)
    tries: int = 11  # random-search candidates per slice (the paper's setting)
    region: tuple[int, int, int, int] | None = None  # (row0, row1, col0, col1) where features may start
    intensity: tuple[float, float] | None = None  # default: min..max of the image
    hit_threshold: float = HIT_THRESHOLD
    ip_epsilon: float = IP_EPSILON
    batch_size: int = 16
    fd_iterations: int = 5
    fd_step_px: int = 4
    pgd_steps: int = 10
    pgd_alpha: float = 0.1  # step as a fraction of the intensity range
    pgd_starts: int = 3
    screen: bool = True  # rank random-search candidates on tiles (fast), confirm the best exactly
    screen_tile: int = 64


def default_region(shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The official start window [50, 270] of 320x320, scaled to the image."""
    h, w = shape
    return (round(50 * h / 320), round(270 * h / 320), round(50 * w / 320), round(270 * w / 320))


def _settings_for(image: np.ndarray, s: SearchSettings) -> tuple[tuple[int, int, int, int], tuple[float, float]]:
    region = s.region or default_region(image.shape)
    intensity = s.intensity or (float(image.min()), float(image.max()))
    return region, intensity


def _candidates(image, features: list[Feature], model, mask_cols, s: SearchSettings, attack: str,
                screen_confirm: int = 0) -> list[Candidate]:
    values = np.stack([f.values for f in features])
    if screen_confirm and s.screen and len(features) > screen_confirm:
        scores = screened_search_scores(model, image, values, mask_cols, screen_confirm, s.screen_tile,
                                        max(s.batch_size, 64), hit_threshold=s.hit_threshold,
                                        ip_epsilon=s.ip_epsilon)
    else:
        scores = score_features(model, image, values, mask_cols, s.batch_size, s.hit_threshold, s.ip_epsilon)
    return [Candidate(f, sc.loss, sc.ip, sc.hit, sc.ip_ok, attack, sc.exact, sc.lost_fraction)
            for f, sc in zip(features, scores)]


def _rank(cands: list[Candidate], top: int) -> list[Candidate]:
    """IP-valid candidates, most damaging first; exactly scored ones before screened ones."""
    ok = [c for c in cands if c.ip_ok]
    return sorted(ok, key=lambda c: (not c.exact, -c.loss))[:top]


def random_search(model, image: np.ndarray, mask_cols: np.ndarray, settings: SearchSettings | None = None,
                  rng: np.random.Generator | None = None, top: int = 5, token: JobToken | None = None,
                  stats: dict | None = None) -> list[Candidate]:
    """Draw ``tries`` random walks in the region, score them in batches, return the worst IP-valid ones.

    ``stats`` (optional) receives ``drawn`` and ``ip_ok`` counts for the IP acceptance rate.
    """
    s = settings or SearchSettings()
    rng = rng or np.random.default_rng()
    (r0, r1, c0, c1), (lo, hi) = _settings_for(image, s)
    feats = [random_walk(image.shape, (int(rng.integers(r0, r1 + 1)), int(rng.integers(c0, c1 + 1))), s.n_steps,
                         lo, hi, rng) for _ in range(s.tries)]
    if token:
        token.progress(0, len(feats), "random search")
    cands = _candidates(image, feats, model, mask_cols, s, "rs", screen_confirm=max(top, 3))
    if stats is not None:
        stats["drawn"] = stats.get("drawn", 0) + len(cands)
        stats["ip_ok"] = stats.get("ip_ok", 0) + sum(c.ip_ok for c in cands)
    return _rank(cands, top)


def _shift(feature: Feature, dr: int, dc: int) -> Feature:
    vals = np.roll(feature.values, (dr, dc), axis=(0, 1))
    r, c = feature.center
    return Feature(vals, (r + dr, c + dc), feature.shape, dict(feature.params))


def finite_difference_search(model, image: np.ndarray, mask_cols: np.ndarray, start: Feature,
                             settings: SearchSettings | None = None, token: JobToken | None = None) -> Candidate:
    """Coordinate ascent on (row, col) with central differences, plus an intensity scale, inside the region."""
    s = settings or SearchSettings()
    (r0, r1, c0, c1), (lo, hi) = _settings_for(image, s)
    best = _candidates(image, [start], model, mask_cols, s, "fd")[0]
    step = s.fd_step_px
    for it in range(s.fd_iterations):
        if token:
            token.progress(it, s.fd_iterations, "finite differences")
        f = best.feature
        probes = []
        for dr, dc in ((step, 0), (-step, 0), (0, step), (0, -step)):
            r, c = f.center[0] + dr, f.center[1] + dc
            if r0 <= r <= r1 and c0 <= c <= c1:
                probes.append(_shift(f, dr, dc))
        for scale in (0.8, 1.25):  # intensity direction, clipped to the allowed range
            v = np.where(f.support, np.clip(f.values * scale, lo, hi), 0).astype(np.float32)
            probes.append(Feature(v, f.center, f.shape, dict(f.params)))
        cands = [c for c in _candidates(image, probes, model, mask_cols, s, "fd") if c.ip_ok]
        top = max(cands, key=lambda c: c.loss, default=None)
        if top is not None and top.loss > best.loss:
            best = top
        else:
            step = max(1, step // 2)
    return best


def pgd_attack(model, image: np.ndarray, mask_cols: np.ndarray, start: Feature,
               settings: SearchSettings | None = None) -> Candidate:
    """Projected gradient ascent of the attack loss on the feature intensities within its support."""
    s = settings or SearchSettings()
    _, (lo, hi) = _settings_for(image, s)
    device = next(model.parameters()).device
    img = torch.as_tensor(image, dtype=torch.float32, device=device)[None]
    cols = torch.as_tensor(mask_cols, dtype=torch.float32, device=device)
    support = torch.as_tensor(start.support, device=device)[None]
    region = torch.as_tensor(loss_region(start.support), device=device)[None]
    vals = torch.as_tensor(start.values, dtype=torch.float32, device=device)[None].clone().requires_grad_(True)
    alpha = s.pgd_alpha * (hi - lo)
    was_training = model.training
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for _ in range(s.pgd_steps):
            feat = vals * support
            res = forward(model, img + feat, cols)
            loss = region_nmse(res.output, res.target, region).sum()
            (grad,) = torch.autograd.grad(loss, vals)
            with torch.no_grad():
                vals += alpha * grad.sign()
                vals.clamp_(lo, hi)
                vals *= support
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
        model.train(was_training)
    final = Feature(vals.detach().cpu().numpy()[0].astype(np.float32), start.center, start.shape,
                    {**start.params, "pgd_steps": s.pgd_steps})
    return _candidates(image, [final], model, mask_cols, s, "pgd")[0]


def search(model, image: np.ndarray, mask_cols: np.ndarray, attack: str = "rs",
           settings: SearchSettings | None = None, rng: np.random.Generator | None = None, top: int = 5,
           token: JobToken | None = None, stats: dict | None = None) -> list[Candidate]:
    """Find the worst features on one image: ``rs`` alone, or ``fd`` / ``pgd`` refining the best RS starts."""
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; choose one of {', '.join(ATTACKS)}")
    s = settings or SearchSettings()
    starts = random_search(model, image, mask_cols, s, rng, top=max(top, s.pgd_starts), token=token, stats=stats)
    if attack == "rs" or not starts:
        return starts[:top]
    refine: Callable[[Feature], Candidate]
    if attack == "fd":
        def refine(f):
            return finite_difference_search(model, image, mask_cols, f, s)
    else:
        def refine(f):
            return pgd_attack(model, image, mask_cols, f, s)
    refined = [refine(c.feature) for c in starts[: s.pgd_starts]]
    return _rank(refined + starts, top)


def ip_of(image: np.ndarray, feature: np.ndarray, mask_cols: np.ndarray) -> float:
    t = torch.as_tensor
    return float(ip_mse(t(image, dtype=torch.float32)[None], t(feature, dtype=torch.float32)[None],
                        t(mask_cols, dtype=torch.float32))[0])
