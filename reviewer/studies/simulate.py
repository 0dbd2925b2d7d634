"""Simulated readers: read a study through the same store API as people, for piloting and sizing a study.

Model (per reader, per case): each true lesion is marked with probability = sensitivity (of the case's condition),
at a point uniformly distributed within half the acceptance radius of its centre, with a latent confidence
~ N(separation, 1); the number of false marks is Poisson(false_marks_per_case), placed uniformly over the image
with a latent ~ N(0, 1). Latents map to the rating scale: 1-5 by the cut points -0.5, 0.5, 1.5, 2.5; 0-100 by
100 * Phi(latent - separation / 2). The ROC case rating (roc/both paradigms) is the highest mark latent, or a
latent ~ N(0, 1) - 1 on an unmarked case. Reading time per case ~ lognormal around 20 s on a simulated clock.
The simulator looks up each case's truth through the store's unblinded order; it never changes the reading API.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reviewer.jobs import JobToken
from reviewer.studies.store import StudyStore


@dataclass
class SimSettings:
    sensitivity: dict[str, float] | float = 0.7  # per condition label, or one value for all
    false_marks_per_case: dict[str, float] | float = 0.3
    separation: float = 2.0  # mean latent of a true mark (false marks: 0), in SD units
    mean_read_s: float = 20.0


def _per_condition(v: dict[str, float] | float, cond: str, what: str) -> float:
    if isinstance(v, dict):
        if cond in v:
            return float(v[cond])
        if "*" in v:
            return float(v["*"])
        raise ValueError(f"no {what} given for condition {cond!r}")
    return float(v)


def latent_to_rating(latent: float, scale: str, separation: float) -> float:
    if scale == "1-5":
        return float(1 + sum(latent > c for c in (-0.5, 0.5, 1.5, 2.5)))
    p = 0.5 * (1 + math.erf((latent - separation / 2) / math.sqrt(2)))
    return float(min(100, max(0, round(100 * p))))


class _SimClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def simulate_readers(store: StudyStore, n_readers: int, seed: int = 0, settings: SimSettings | None = None,
                     prefix: str = "sim", token: JobToken | None = None) -> list[str]:
    """Add ``n_readers`` simulated readers (``sim-01``...) and let each read the whole study; returns their ids.

    A reader id that already exists is resumed (reading continues where it stopped)."""
    s = settings or SimSettings()
    d = store.definition
    scale = d.rating_scale
    ids = []
    total = n_readers * len(d.items())
    done = 0
    for r in range(n_readers):
        rid = f"{prefix}-{r + 1:02d}"
        ids.append(rid)
        store.add_reader(rid, name=f"simulated reader {r + 1}", simulated=True, seed=seed * 1000 + r)
        rng = np.random.default_rng([seed, r, 99])
        clock = _SimClock()
        sess = store.start_session(rid, clock=clock)
        order = store.reading_order(rid)
        while (view := sess.current()) is not None:
            if token:
                token.progress(done, total, f"{rid}: case {view.index + 1}/{view.n_cases}")
            done += 1
            slot = order[view.index]
            case = d.case(slot.case_id)
            sens = _per_condition(s.sensitivity, slot.condition, "sensitivity")
            lam = _per_condition(s.false_marks_per_case, slot.condition, "false-mark rate")
            for m in view.marks:  # a resumed case: start it afresh
                sess.delete_mark(m.mark_id)
            latents = []
            geom = sess.load_image().geometry if d.uses_marks or lam > 0 else None
            for les in case.truth.lesions:
                if rng.random() < sens:
                    u = rng.normal(size=3)
                    u /= np.linalg.norm(u) or 1.0
                    off = u * d.acceptance_radius_mm * 0.5 * rng.random() ** (1 / 3)
                    pos = np.asarray(les.center_lps) + off
                    if geom is not None and geom.shape[0] == 1:  # 2D image: stay in the slice plane
                        ijk = geom.world_to_voxel(pos)
                        ijk[2] = 0.0
                        pos = geom.voxel_to_world(ijk)
                    latents.append((tuple(float(v) for v in pos), rng.normal(s.separation, 1.0)))
            for _ in range(rng.poisson(lam)):
                i, j, k = (rng.uniform(-0.5, n - 0.5) for n in geom.size_ijk)
                k = 0.0 if geom.shape[0] == 1 else k  # a 2D image: marks lie in its plane
                latents.append((tuple(float(v) for v in geom.voxel_to_world((i, j, k))), rng.normal(0.0, 1.0)))
            clock.t += float(rng.lognormal(math.log(s.mean_read_s), 0.4))
            if d.uses_marks:
                for pos, lat in latents:
                    sess.add_mark(world_lps=pos, rating=latent_to_rating(lat, scale, s.separation))
            if d.uses_case_rating:
                top = max((lat for _, lat in latents), default=rng.normal(0.0, 1.0) - 1.0)
                sess.set_case_rating(latent_to_rating(top, scale, s.separation))
            sess.submit_case()
    if token:
        token.progress(total, total, "done")
    return ids


def estimate_power(definition, study_dir, n_readers: int, n_trials: int, seed: int = 0,
                   settings: SimSettings | None = None, n_bootstrap: int = 200, alpha: float = 0.05,
                   fom: str = "wafroc", token: JobToken | None = None) -> dict:
    """Sizing: ``n_trials`` replicate studies of ``n_readers`` simulated readers on this case set (each in its own
    temporary SQLite store, read through the store API), analysed like a real study; the power is the share of
    replicates whose paired comparison has p < ``alpha`` (two-sided bootstrap p of the ``fom`` difference)."""
    import tempfile
    from pathlib import Path

    from reviewer.studies.analysis import analyze_study
    from reviewer.studies.store import open_store

    if definition.compared_conditions() is None:
        raise ValueError("power needs two conditions to compare")
    if fom not in ("wafroc", "afroc", "roc_auc"):
        raise ValueError(f"unknown figure of merit {fom!r}")
    diffs, pvals = [], []
    with tempfile.TemporaryDirectory(prefix="reviewer-power-") as tmp:
        for t in range(n_trials):
            if token:
                token.progress(t, n_trials, f"replicate {t + 1}/{n_trials}")
            store = open_store(Path(tmp) / f"replicate{t}.db", study=definition, study_dir=study_dir, durable=False)
            try:
                simulate_readers(store, n_readers, seed=seed * 100003 + t, settings=settings)
                a = analyze_study(definition, store.results(include_simulated=True), n_bootstrap=n_bootstrap,
                                  seed=seed + t)
            finally:
                store.close()
            c = a["comparison"][fom]
            diffs.append(c["difference"])
            pvals.append(c["p_value"])
    if token:
        token.progress(n_trials, n_trials, "done")
    p = np.asarray(pvals, float)
    a_, b_ = definition.compared_conditions()
    return {"fom": fom, "a": a_, "b": b_, "n_readers": n_readers, "n_trials": n_trials, "alpha": alpha,
            "n_bootstrap": n_bootstrap, "power": float(np.mean(p < alpha)),
            "mean_difference": float(np.nanmean(diffs)), "differences": [float(x) for x in diffs],
            "p_values": [float(x) for x in p]}
