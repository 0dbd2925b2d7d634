"""Stress tests of FPR models: the paper's tables 4-6 (section 5.3) for any set of models.

Each test feeds a set of patches to every model and reports the mean and standard deviation (population, ddof 0)
of its output probability:

* table 4: ``syn_random`` random synthetic nodules (prior samples, >= 6 mm visible) blended into real negatives;
  ``syn_pgd`` the same nodules after PGD over their parameters against that model (eps 0.15, step 0.05, 20 steps);
* table 5 (real positives): ``clean``; ``uniform_0.3|0.6|0.9`` uniform noise; ``poisson_x50|x5``;
  ``pgd_positive`` patch PGD towards "no nodule";
* table 6: ``noise_uniform`` pure U(0, 1) patches; ``noise_pgd`` those under patch PGD towards "nodule";
  ``negative`` real negatives; ``pgd_negative`` those under patch PGD towards "nodule".

Random draws (noise, synthetic nodules) are shared by all models. Adversarial tests attack each model itself
(white-box) unless ``transfer_from`` names the model whose adversarial samples every model is scored on (the
paper generated its stress-test adversarial negatives against its baseline).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reviewer.synthesis.adversarial import PgdSettings, noise_patches, pgd_patch, poisson_noise, uniform_noise
from reviewer.synthesis.generator import sample_params
from reviewer.synthesis.hard import EPS, ITERS, MIN_DIAMETER_MM, STEP, search_hard_nodules

TESTS: dict[str, str] = {
    "syn_random": "random synthetic nodules",
    "syn_pgd": "PGD synthetic nodules",
    "clean": "positives, no noise",
    "uniform_0.3": "positives + 0.3 uniform noise",
    "uniform_0.6": "positives + 0.6 uniform noise",
    "uniform_0.9": "positives + 0.9 uniform noise",
    "poisson_x50": "positives, x50 Poisson noise",
    "poisson_x5": "positives, x5 Poisson noise",
    "pgd_positive": "PGD-perturbed positives",
    "noise_uniform": "uniform noise patches",
    "noise_pgd": "PGD noise patches",
    "negative": "real negatives",
    "pgd_negative": "PGD negatives",
}
TABLES = {
    "table4": ["syn_random", "syn_pgd"],
    "table5": ["clean", "uniform_0.3", "uniform_0.6", "uniform_0.9", "poisson_x50", "poisson_x5", "pgd_positive"],
    "table6": ["noise_uniform", "noise_pgd", "negative", "pgd_negative"],
}


@dataclass
class StressReport:
    tables: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # test -> model -> stats
    settings: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)  # raw per-patch outputs
    cpm: dict[str, dict[str, Any]] | None = None  # optional clean CPM per model (reviewer stress --cpm-cg)

    @property
    def models(self) -> list[str]:
        names: list[str] = []
        for per in self.tables.values():
            for m in per:
                if m not in names:
                    names.append(m)
        return names

    def to_json(self) -> dict[str, Any]:
        d = {"tables": self.tables, "groups": TABLES, "labels": {k: TESTS[k] for k in self.tables},
             "settings": self.settings}
        if self.cpm is not None:
            d["cpm"] = self.cpm
        return d

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path

    def write_csv(self, path: str | Path) -> Path:
        path = Path(path)
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["table", "test", "description", "model", "mean", "std", "n"])
            for table, tests in TABLES.items():
                for t in tests:
                    for m, s in self.tables.get(t, {}).items():
                        w.writerow([table, t, TESTS[t], m, f"{s['mean']:.4f}", f"{s['std']:.4f}", s["n"]])
        return path

    def format(self) -> str:
        models = self.models
        wt = max(len(TESTS[t]) for t in TESTS) + 2
        wm = max([len(m) for m in models] + [13]) + 2
        lines = []
        for table, tests in TABLES.items():
            lines.append(f"{table}: mean +- std of the FPR output")
            lines.append(" " * wt + "".join(m.rjust(wm) for m in models))
            for t in tests:
                if t not in self.tables:
                    continue
                row = TESTS[t].ljust(wt)
                for m in models:
                    s = self.tables[t].get(m)
                    row += (f"{s['mean']:.2f} +- {s['std']:.2f}" if s and s["n"] else "-").rjust(wm)
                lines.append(row)
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"


def _stats(v: np.ndarray) -> dict[str, float]:
    v = np.asarray(v, dtype=np.float64)
    if v.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std()), "n": int(v.size)}


@torch.no_grad()
def _score(model, patches: Any, batch_size: int = 32) -> np.ndarray:
    from reviewer.detection.fpr import fpr_outputs

    dev = next(model.parameters()).device
    x = patches if isinstance(patches, torch.Tensor) else torch.as_tensor(np.ascontiguousarray(patches))
    out = []
    was = model.training
    model.eval()
    try:
        for s in range(0, len(x), batch_size):
            p, _ = fpr_outputs(model, x[s:s + batch_size].to(dev, torch.float32)[:, None])
            out.append(p.float().cpu().numpy())
    finally:
        model.train(was)
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _pgd_batched(model, x: np.ndarray, target: float, pgd: PgdSettings, seed: int, batch_size: int = 16,
                 token=None) -> np.ndarray:
    out = []
    for s in range(0, len(x), batch_size):
        if token is not None:
            token.check()
        out.append(pgd_patch(model, x[s:s + batch_size], target, pgd.eps, pgd.step, pgd.iters,
                             seed=seed + s).cpu().numpy())
    return np.concatenate(out) if out else x[:0]


def run_stress(models: dict[str, torch.nn.Module], spec, positives: Any, negatives: Any, seed: int = 0,
               token=None, pgd: PgdSettings | None = None, n_synthetic: int = 32, n_noise: int = 32,
               nodule_eps: float = EPS, nodule_step: float = STEP, nodule_iters: int = ITERS,
               min_diameter_mm: float = MIN_DIAMETER_MM, transfer_from: str | None = None,
               tests: list[str] | None = None) -> StressReport:
    """The stress tests of the module docstring over ``positives`` and ``negatives`` ((N, P, P, P) in [0, 1])."""
    pgd = pgd or PgdSettings()
    pos = np.asarray(positives, dtype=np.float32)
    neg = np.asarray(negatives, dtype=np.float32)
    if pos.ndim != 4 or neg.ndim != 4:
        raise ValueError("positives and negatives must be (N, P, P, P) patch stacks")
    if transfer_from is not None and transfer_from not in models:
        raise ValueError(f"transfer_from {transfer_from!r} is not one of the models ({', '.join(models)})")
    run = [t for t in TESTS if tests is None or t in tests]
    rng = np.random.default_rng([int(seed), 4008])
    P = spec.patch_size
    noisy = {
        "clean": pos,
        "uniform_0.3": uniform_noise(pos, 0.3, rng),
        "uniform_0.6": uniform_noise(pos, 0.6, rng),
        "uniform_0.9": uniform_noise(pos, 0.9, rng),
        "poisson_x50": poisson_noise(pos, 50, rng),
        "poisson_x5": poisson_noise(pos, 5, rng),
    }
    noise = noise_patches(n_noise, P, rng)
    n_syn = min(int(n_synthetic), len(neg))
    bg = neg[rng.choice(len(neg), n_syn, replace=False)] if n_syn else neg[:0]
    starts = [sample_params(rng, min_diameter_mm) for _ in range(n_syn)]
    report = StressReport(settings={
        "seed": int(seed), "n_positives": int(len(pos)), "n_negatives": int(len(neg)), "n_noise": int(n_noise),
        "n_synthetic": n_syn, "patch_pgd": pgd.to_json(), "white_box": transfer_from is None,
        "transfer_from": transfer_from, "min_diameter_mm": min_diameter_mm,
        "nodule_pgd": {"eps": nodule_eps, "step": nodule_step, "iters": nodule_iters},
        "spec": {"patch_size": P, "spacing_mm": spec.spacing_mm, "hu_window": list(spec.hu_window)},
        "uniform_noise": "clip(x + U(-a/2, a/2), 0, 1)", "poisson_noise": "clip(Poisson(S x) / S, 0, 1)"})

    names = list(models)
    n_stages = 2 * len(names) + (1 if transfer_from else 0)
    stage = [0]

    def sub(message: str):
        s = stage[0]
        stage[0] += 1
        if token is None:
            return None
        tok = token.sub(s, s + 1, n_stages)
        tok.progress(0, 1, message)
        return tok

    def adversarial_sets(model, name):
        """PGD sets against one model: positives, noise, negatives, synthetic nodules."""
        tok = sub(f"{name}: PGD attacks")
        out = {}
        if "pgd_positive" in run:
            out["pgd_positive"] = _pgd_batched(model, pos, 0.0, pgd, seed + 11, token=tok)
        if tok is not None:
            tok.progress(0.25, 1, f"{name}: PGD noise patches")
        if "noise_pgd" in run:
            out["noise_pgd"] = _pgd_batched(model, noise, 1.0, pgd, seed + 12, token=tok)
        if tok is not None:
            tok.progress(0.4, 1, f"{name}: PGD negatives")
        if "pgd_negative" in run:
            out["pgd_negative"] = _pgd_batched(model, neg, 1.0, pgd, seed + 13, token=tok)
        if ("syn_random" in run or "syn_pgd" in run) and n_syn:
            out["_syn"] = search_hard_nodules(model, spec, bg, nodule_eps, nodule_step, nodule_iters,
                                              min_diameter_mm, seed=seed + 14, starts=starts,
                                              token=None if tok is None else tok.sub(0.6, 1.0, 1.0))
        return out

    shared = adversarial_sets(models[transfer_from], transfer_from) if transfer_from is not None else None
    raw: dict[str, dict[str, np.ndarray]] = {t: {} for t in run}
    for name in names:
        model = models[name]
        sub(f"{name}: clean and noisy patches")
        for t in ("clean", "uniform_0.3", "uniform_0.6", "uniform_0.9", "poisson_x50", "poisson_x5"):
            if t in run:
                raw[t][name] = _score(model, noisy[t])
        if "noise_uniform" in run:
            raw["noise_uniform"][name] = _score(model, noise)
        if "negative" in run:
            raw["negative"][name] = _score(model, neg)
        adv = shared if shared is not None else adversarial_sets(model, name)
        for t in ("pgd_positive", "noise_pgd", "pgd_negative"):
            if t in adv:
                raw[t][name] = _score(model, adv[t])
        if "_syn" in adv:
            res = adv["_syn"]
            if "syn_random" in run:
                start_ok = [r.start_patch for r in res if r.start_measured_diameter_mm >= min_diameter_mm]
                raw["syn_random"][name] = _score(model, np.array(start_ok).reshape(-1, P, P, P))
            if "syn_pgd" in run:
                kept = [r.patch for r in res if not r.discarded]
                raw["syn_pgd"][name] = _score(model, np.array(kept).reshape(-1, P, P, P))
    if token is not None:
        token.progress(n_stages, n_stages, "stress tests done")
    report.outputs = raw
    report.tables = {t: {m: _stats(v) for m, v in per.items()} for t, per in raw.items() if per}
    return report
