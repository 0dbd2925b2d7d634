"""Training data for the nodule detector, prepared once from a LUNA16-format folder (or ``demo:ct-*``).

* CG: every scan resampled to the CG spacing, cropped to its lung mask's bounding box, windowed to [0, 1]
  (float16), with the *kept* (possibly censored) nodules in voxel coordinates of the crop.
* FPR: positives = patches at kept nodules (the centre plus jittered copies, since candidates are never exactly
  centred); negatives = patches at (a) dense spots inside the lungs (vessels, airway walls: what a candidate
  generator proposes), (b) random lung positions, (c) censored nodules (an unannotated nodule *is* labelled
  negative, that is what censoring simulates), (d) optionally the false candidates of a trained CG.

Everything is stored as one ``.npz`` per stage and settings in the cache (``reviewer.resources.cache_dir``), reused
when the settings match; the model folder stays small.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from reviewer.detection import fpr as fpr_mod
from reviewer.detection.losses import censor_annotations
from reviewer.detection.preprocess import lung_mask, mask_bbox, resample, window01
from reviewer.jobs import JobToken

PREP_VERSION = "1"


def _key(d: dict) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _annotation_dicts(anns) -> list[dict]:
    return [{"center": list(a.center), "diameter_mm": float(a.diameter_mm)} for a in anns]


def load_cases(data: str, censor: str | None, seed: int, token: JobToken | None = None):
    """Yield (uid, volume, kept annotations, censored annotations) for every scan of a LUNA16 folder."""
    from reviewer.luna16.dataset import iter_luna16, open_luna16

    ds = open_luna16(data)
    all_ann = {u: _annotation_dicts(ds.annotations.get(u, [])) for u in ds.seriesuids}
    kept = censor_annotations(all_ann, censor, seed)
    for uid, vol, _ in iter_luna16(data, token=token):
        k = kept.get(uid, [])
        kc = {(tuple(a["center"]), a["diameter_mm"]) for a in k}
        gone = [a for a in all_ann.get(uid, []) if (tuple(a["center"]), a["diameter_mm"]) not in kc]
        yield uid, vol, k, gone


def prepare_cg(data: str, out: Path | None, spacing_mm: float, hu_window, censor: str | None, seed: int,
               token: JobToken | None = None) -> dict[str, Any]:
    settings = {"v": PREP_VERSION, "stage": "cg", "data": str(data), "spacing": spacing_mm, "window": list(hu_window),
                "censor": censor or "", "seed": seed}
    path = _cache(out) / f"prepared-cg-{_key(settings)}.npz"
    if path.exists():
        return _load(path)
    images, nodules, n_all = [], [], 0
    for uid, vol, kept, gone in load_cases(data, censor, seed, token):
        r = resample(vol, spacing_mm)
        mask = lung_mask(r)
        sl = mask_bbox(mask, margin=6)
        img = window01(r.array[sl], hu_window).astype(np.float16)
        off = np.array([sl[2].start, sl[1].start, sl[0].start], float)
        nod = np.array([[*(r.world_to_voxel(a["center"]) - off), a["diameter_mm"]] for a in kept], float).reshape(-1, 4)
        images.append(img)
        nodules.append(nod)
        n_all += len(kept) + len(gone)
    arrays = {f"img{i}": a for i, a in enumerate(images)} | {f"nod{i}": n for i, n in enumerate(nodules)}
    np.savez(path, stage="cg", n=len(images), n_annotations=n_all, **arrays)
    return _load(path)


def _cache(out: Path | None) -> Path:
    if out is not None:
        return Path(out)
    from reviewer.resources import cache_dir

    return cache_dir("detect-train")


def _load(path: Path) -> dict[str, Any]:
    z = np.load(path)
    n = int(z["n"])
    if str(z["stage"]) == "cg":
        return {"images": [z[f"img{i}"] for i in range(n)], "nodules": [z[f"nod{i}"] for i in range(n)],
                "n_annotations": int(z["n_annotations"]), "path": str(path)}
    return {k: z[k] for k in z.files} | {"path": str(path)}


def prepare_fpr(data: str, out: Path | None, spec: "fpr_mod.FprSpec", censor: str | None, seed: int, jitters: int = 6,
                neg_dense: int = 40, neg_random: int = 20, cg_detector=None, token: JobToken | None = None) -> dict:
    settings = {"v": PREP_VERSION, "stage": "fpr", "data": str(data), "spec": spec.to_json(), "censor": censor or "",
                "seed": seed, "jitters": jitters, "neg": [neg_dense, neg_random],
                "cg": getattr(cg_detector, "cg_name", None)}
    path = _cache(out) / f"prepared-fpr-{_key(settings)}.npz"
    if path.exists():
        return _load(path)
    rng = np.random.default_rng(seed + 17)
    pos, neg, neg_kind, pos_diam = [], [], [], []
    n_scans = 0
    for uid, vol, kept, gone in load_cases(data, censor, seed, token):
        n_scans += 1
        centres = []
        for a in kept:
            c = np.asarray(a["center"], float)
            d = a["diameter_mm"]
            jit = min(0.25 * d, 3.0)
            offs = [np.zeros(3)] + [rng.uniform(-1, 1, 3) * jit for _ in range(jitters - 1)]
            centres += [c + o for o in offs]
            pos_diam += [d] * len(offs)
        if centres:
            pos.append(_u8(fpr_mod.extract_patches(vol, centres, spec)))
        everything = [(np.asarray(a["center"], float), a["diameter_mm"]) for a in kept + gone]
        cand = _negative_centres(vol, everything, neg_dense, neg_random, rng)
        kinds = ["dense"] * cand[1] + ["random"] * (len(cand[0]) - cand[1])
        cen = list(cand[0])
        for a in gone:  # censored nodules: labelled negative, exactly as a reader's miss would be
            cen.append(np.asarray(a["center"], float))
            kinds.append("censored")
        if cg_detector is not None:
            for c in cg_detector.false_candidates(vol, everything):
                cen.append(c)
                kinds.append("cg")
        if cen:
            neg.append(_u8(fpr_mod.extract_patches(vol, np.asarray(cen), spec)))
            neg_kind += kinds
    P = spec.patch_size
    arrays = {
        "stage": "fpr", "n": n_scans, "pos": np.concatenate(pos) if pos else np.zeros((0, P, P, P), np.uint8),
        "neg": np.concatenate(neg) if neg else np.zeros((0, P, P, P), np.uint8),
        "neg_kind": np.asarray(neg_kind), "pos_diameter": np.asarray(pos_diam, np.float32),
    }
    np.savez(path, **arrays)
    return _load(path)


def _u8(p: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(p * 255.0), 0, 255).astype(np.uint8)


def _negative_centres(vol, nodules, n_dense: int, n_random: int, rng) -> tuple[np.ndarray, int]:
    """World centres of negatives: dense in-lung voxels and random lung voxels, away from every nodule."""
    r = resample(vol, 2.0)
    mask = lung_mask(r, dilate_mm=0.0)
    dense = mask & (r.array > -500.0)
    out = []
    n_dense_got = 0
    for sel, n in ((dense, n_dense), (mask, n_random)):
        k, j, i = np.nonzero(sel)
        if len(k) == 0 or n == 0:
            continue
        pick = rng.choice(len(k), size=min(len(k), 4 * n), replace=False)
        world = r.voxel_to_world(np.stack([i[pick], j[pick], k[pick]], 1).astype(float))
        ok = np.ones(len(world), bool)
        for c, d in nodules:
            ok &= np.linalg.norm(world - c, axis=1) > d / 2 + 5.0
        world = world[ok][:n]
        out.append(world)
        if sel is dense:
            n_dense_got = len(world)
    return (np.concatenate(out) if out else np.zeros((0, 3))), n_dense_got
