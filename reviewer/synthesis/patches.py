"""Positive and negative FPR patches from held-out demo phantoms (for ``reviewer stress --demo`` and tests).

Positives: patches centred on the phantom's nodules of at least ``min_diameter_mm`` (the paper benchmarks
nodules >= 6 mm). Negatives: as the paper's stress-test negatives, random points inside the lungs
(``reviewer.demo.chest_ct.lung_mask``) at least 10 mm plus the radius away from every nodule. Seeds 300-319 are
the demo CT test split (never used for training). Patches are cached per seed and spec.
"""

from __future__ import annotations

import hashlib
import json
from typing import Iterable

import numpy as np

DEMO_TEST_SEEDS = tuple(range(300, 320))


def _cache_file(seed: int, spec, negatives_per_scan: int, min_diameter_mm: float):
    from reviewer.demo.chest_ct import GENERATOR_VERSION
    from reviewer.resources import cache_dir

    key = json.dumps({"v": GENERATOR_VERSION, "seed": seed, "spec": [spec.patch_size, spec.spacing_mm,
                      list(spec.hu_window)], "neg": negatives_per_scan, "dmin": min_diameter_mm, "r": 1})
    return cache_dir("synthesis", "patches") / f"demo-{seed}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"


def scan_patches(volume, nodules, spec, negatives_per_scan: int = 10, min_diameter_mm: float = 6.0,
                 seed: int = 0, avoid=()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positives, negatives, negative centres LPS) for one scan with known nodules; negatives also keep away
    from the findings in ``avoid`` (e.g. LUNA16's excluded ones)."""
    from reviewer.demo.chest_ct import lung_mask
    from reviewer.detection.fpr import extract_patches

    centers = np.array([n.center for n in nodules], float).reshape(-1, 3)
    keep = np.array([n.diameter_mm >= min_diameter_mm for n in nodules], bool)
    pos = extract_patches(volume, centers[keep], spec) if keep.any() else np.zeros((0,) + (spec.patch_size,) * 3,
                                                                                 np.float32)
    far = list(nodules) + list(avoid)
    far_c = np.array([n.center for n in far], float).reshape(-1, 3)
    far_r = np.array([n.diameter_mm / 2 for n in far], float)
    mask = lung_mask(volume)
    k, j, i = np.nonzero(mask)
    rng = np.random.default_rng([int(seed), 4007])
    chosen: list[np.ndarray] = []
    for idx in rng.permutation(len(k))[: 50 * negatives_per_scan]:
        p = volume.geometry.voxel_to_world((i[idx], j[idx], k[idx]))
        if len(far_c) and np.any(np.linalg.norm(far_c - p, axis=1) < far_r + 10.0):
            continue
        chosen.append(p)
        if len(chosen) >= negatives_per_scan:
            break
    neg_c = np.array(chosen, float).reshape(-1, 3)
    neg = extract_patches(volume, neg_c, spec) if len(neg_c) else np.zeros((0,) + (spec.patch_size,) * 3, np.float32)
    return pos, neg, neg_c


def demo_patches(spec, seeds: Iterable[int] = DEMO_TEST_SEEDS, negatives_per_scan: int = 10,
                 min_diameter_mm: float = 6.0, token=None) -> tuple[np.ndarray, np.ndarray]:
    """(positives (N, P, P, P), negatives (M, P, P, P)) in [0, 1] from demo phantoms ``seeds``."""
    from reviewer.demo.chest_ct import make_chest_ct

    seeds = [int(s) for s in seeds]
    pos, neg = [], []
    for n, s in enumerate(seeds):
        if token is not None:
            token.progress(n, len(seeds), f"demo phantom {s}")
        f = _cache_file(s, spec, negatives_per_scan, min_diameter_mm)
        if f.exists():
            with np.load(f) as z:
                p, q = z["pos"], z["neg"]
        else:
            vol, nods = make_chest_ct(s)
            p, q, _ = scan_patches(vol, nods, spec, negatives_per_scan, min_diameter_mm, seed=s)
            tmp = f.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, pos=p, neg=q)
            tmp.replace(f)
        pos.append(p)
        neg.append(q)
    if token is not None:
        token.progress(len(seeds), len(seeds), "demo patches ready")
    P = spec.patch_size
    return (np.concatenate(pos) if pos else np.zeros((0, P, P, P), np.float32),
            np.concatenate(neg) if neg else np.zeros((0, P, P, P), np.float32))
