"""`reviewer bench detect`: end-to-end and per-stage detection time for a 512x512x300 chest CT.

The CT is the demo phantom rendered on a 512 x 512 x ``slices`` grid (0.7 x 0.7 x 1.2 mm at 300 slices: a typical
screening CT's voxel count), so every stage does the work it does on a real scan. Goals (issue 4): 60 s on the
2-core CPU, 3 s on an H100; the ratio printed is time / goal.
"""

from __future__ import annotations

import time

GOAL_CPU_S = 60.0
GOAL_GPU_S = 3.0


def bench_volume(slices: int = 300):
    from reviewer.demo.chest_ct import make_chest_ct

    spacing = (0.703125, 0.703125, 360.0 / slices)
    vol, nodules = make_chest_ct(seed=7, shape=(slices, 512, 512), spacing=spacing)
    return vol, nodules


def run_detect_bench(cg: str, fpr: str, slices: int = 300, devices: list[str] | None = None) -> dict:
    import torch

    from reviewer.detection.pipeline import Detector

    t0 = time.perf_counter()
    vol, nodules = bench_volume(slices)
    gen_s = time.perf_counter() - t0
    devs = devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    res = {"shape": list(vol.shape), "spacing": list(vol.spacing), "phantom_s": round(gen_s, 2), "devices": {},
           "goals_s": {"cpu": GOAL_CPU_S, "cuda": GOAL_GPU_S}, "threads": torch.get_num_threads()}
    for d in devs:
        det = Detector.from_cards(cg, fpr, torch.device(d))
        if d == "cuda":  # warm-up (kernel selection), not timed
            det.detect(vol)
            torch.cuda.synchronize()
        t = time.perf_counter()
        r = det.detect(vol)
        total = time.perf_counter() - t
        hits = sum(any(sum((f.center_lps[a] - n.center[a]) ** 2 for a in range(3)) < (n.diameter_mm / 2) ** 2
                       for f in r.findings) for n in nodules)
        goal = GOAL_CPU_S if d == "cpu" else GOAL_GPU_S
        res["devices"][d] = {"total_s": round(total, 3), "timings": {k: round(v, 3) for k, v in r.timings.items()
                                                                      if k != "total"},
                             "candidates": len(r.findings), "nodules": len(nodules), "nodules_hit": int(hits),
                             "ratio_to_goal": round(total / goal, 3)}
    return res
