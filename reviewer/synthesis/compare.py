"""Clean-data CPM of several FPR models behind one candidate generator (LUNA16 protocol, reviewer.luna16).

Candidates are generated once per scan and every FPR model scores the same patches, so the CPM difference between
models is due to the FPR stage alone (the paper compares its FPR variants behind one frozen CG the same way).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def compare_cpm(cg, fpr_models: dict[str, Any], spec, data: str, n: int | None = None, n_bootstrap: int = 1000,
                seed: int = 0, max_findings: int = 100, token=None) -> dict[str, Any]:
    """``{model: FrocResult}`` for ``cg`` (a ``reviewer.detection.pipeline.CandidateSource``) and FPR models; as
    ``Detector.detect``, each model keeps its ``max_findings`` most probable candidates per scan."""
    from reviewer.detection.fpr import extract_patches, score_patches
    from reviewer.luna16.dataset import open_luna16
    from reviewer.luna16.froc import evaluate_froc
    from reviewer.luna16.io import SubmissionRow

    ds = open_luna16(data)
    uids = [u for u in ds.seriesuids if u in ds.scans][: n or None]
    rows: dict[str, list] = {m: [] for m in fpr_models}
    for i, uid in enumerate(uids):
        if token is not None:
            token.progress(i, len(uids), f"scan {i + 1}/{len(uids)}")
        vol = ds.load(uid)
        cands = cg.candidates(vol)
        centers = np.asarray(cands.centers_lps, float).reshape(-1, 3)
        patches = extract_patches(vol, centers, spec)
        for name, model in fpr_models.items():
            prob, _ = score_patches(model, patches)
            keep = np.argsort(-prob, kind="stable")[:max_findings]
            rows[name] += [SubmissionRow(uid, *map(float, centers[k]), float(prob[k])) for k in keep]
    ann = {u: ds.annotations.get(u, []) for u in uids}
    exc = {u: ds.excluded.get(u, []) for u in uids}
    return {m: evaluate_froc(ann, exc, r, uids, n_bootstrap=n_bootstrap, seed=seed) for m, r in rows.items()}
