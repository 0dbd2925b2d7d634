"""``reviewer stress``: the paper's stress tests (tables 4-6) for FPR models."""

from __future__ import annotations

import argparse
import sys

DEFAULT_MODELS = ("demo-fpr-standard", "demo-fpr-robust")
FPR_TASK = "nodule-false-positive-reduction"


def register(sub, groups) -> None:
    p = sub.add_parser("stress", help="stress-test FPR models: synthetic nodules, noise, PGD (paper tables 4-6)")
    p.add_argument("--model", action="append", default=[],
                   help="FPR model name or card (repeat; default: demo-fpr-standard and demo-fpr-robust)")
    p.add_argument("--demo", action="store_true",
                   help="held-out demo phantoms (test seeds 300-319): nodule patches and random lung patches "
                        "(the default when --data is not given)")
    p.add_argument("--data", help="LUNA16-format folder (or demo:ct-test): nodules from annotations.csv as "
                                  "positives, random lung points as negatives")
    p.add_argument("--scans", type=int, default=20, help="at most this many scans (default 20)")
    p.add_argument("--negatives-per-scan", type=int, default=10)
    p.add_argument("--max-positives", type=int, default=64, help="at most this many positives (default 64)")
    p.add_argument("--max-negatives", type=int, default=64, help="at most this many negatives (default 64)")
    p.add_argument("--synthetic", type=int, default=32, help="synthetic nodules (default 32)")
    p.add_argument("--noise", type=int, default=32, help="uniform-noise patches (default 32)")
    p.add_argument("--eps", type=float, default=0.03, help="patch PGD L-inf radius on [0, 1] patches (default 0.03)")
    p.add_argument("--step", type=float, default=0.01, help="patch PGD step (default 0.01)")
    p.add_argument("--iters", type=int, default=10, help="patch PGD iterations (default 10)")
    p.add_argument("--transfer-from", metavar="MODEL",
                   help="score every model on the adversarial samples found against this one (default: white-box)")
    p.add_argument("--cpm-cg", metavar="CG",
                   help="also score each model's clean CPM (LUNA16 FROC) behind this candidate generator")
    p.add_argument("--cpm-data", default="demo:ct-test", help="LUNA16-format folder for --cpm-cg (default demo:ct-test)")
    p.add_argument("--cpm-scans", type=int, help="at most this many scans for --cpm-cg")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="write {'tables': {TEST: {MODEL: {'mean', 'std', 'n'}}}, ...}")
    p.add_argument("--csv", metavar="PATH", help="write one row per test and model")
    p.set_defaults(handler=_stress)


def _load_models(names):
    from reviewer.detection import fpr as fpr_mod  # registers the FPR architecture
    from reviewer.device import get_device
    from reviewer.errors import InputError
    from reviewer.models.cards import build_model, find_card

    dev = get_device()
    models, specs = {}, {}
    for n in names:
        card = find_card(n, FPR_TASK)
        if card.task != FPR_TASK:
            raise InputError(card.path, f"model {card.name!r} is a {card.task} model, not an FPR model")
        models[card.name] = build_model(card, dev)
        specs[card.name] = fpr_mod.FprSpec.from_card(card)
    first = next(iter(specs.values()))
    for name, s in specs.items():
        if s != first:
            raise InputError(None, f"models see different patches ({name}: {s}, vs {first}); stress-test models "
                                   "with the same patch size, spacing and HU window together")
    return models, first


def _luna_patches(data: str, spec, scans: int, negatives_per_scan: int, token=None):
    """Positives (annotated nodules >= 6 mm) and negatives (random lung points away from annotated and excluded
    findings) from a LUNA16-format folder."""
    import numpy as np

    from reviewer.demo.chest_ct import Nodule
    from reviewer.luna16.dataset import iter_luna16, open_luna16
    from reviewer.synthesis.patches import scan_patches

    excluded = open_luna16(data).excluded
    pos, neg = [], []

    def nod(a):  # LUNA16: a negative diameter means 10 mm
        return Nodule(center=a.center, diameter_mm=a.diameter_mm if a.diameter_mm > 0 else 10.0)

    for n, (uid, vol, anns) in enumerate(iter_luna16(data, token=token)):
        if n >= scans:
            break
        p, q, _ = scan_patches(vol, [nod(a) for a in anns], spec, negatives_per_scan, seed=n,
                               avoid=[nod(a) for a in excluded.get(uid, [])])
        pos.append(p)
        neg.append(q)
    P = spec.patch_size
    empty = np.zeros((0, P, P, P), np.float32)
    return (np.concatenate(pos) if pos else empty), (np.concatenate(neg) if neg else empty)


def _stress(args: argparse.Namespace) -> int:
    import numpy as np

    from reviewer.jobs import run_with_progress_bar
    from reviewer.synthesis.adversarial import PgdSettings
    from reviewer.synthesis.patches import DEMO_TEST_SEEDS, demo_patches
    from reviewer.synthesis.stress import run_stress

    names = args.model or list(DEFAULT_MODELS)
    models, spec = _load_models(names)
    if args.transfer_from and args.transfer_from not in models:
        print(f"error: --transfer-from {args.transfer_from} is not among the models ({', '.join(models)})",
              file=sys.stderr)
        return 2
    if args.data and not args.demo:
        pos, neg = run_with_progress_bar(_luna_patches, args.data, spec, args.scans, args.negatives_per_scan,
                                         label="patches")
        source = args.data
    else:
        seeds = DEMO_TEST_SEEDS[: max(1, args.scans)]
        pos, neg = run_with_progress_bar(demo_patches, spec, seeds, args.negatives_per_scan, label="demo patches")
        source = f"demo phantoms, seeds {seeds[0]}-{seeds[-1]} (held out)"
    rng = np.random.default_rng(args.seed)
    if len(pos) > args.max_positives:
        pos = pos[np.sort(rng.choice(len(pos), args.max_positives, replace=False))]
    if len(neg) > args.max_negatives:
        neg = neg[np.sort(rng.choice(len(neg), args.max_negatives, replace=False))]
    if len(pos) == 0 or len(neg) == 0:
        print(f"error: {source}: no positive or no negative patches", file=sys.stderr)
        return 2
    report = run_with_progress_bar(run_stress, models, spec, pos, neg, args.seed, label="stress",
                                   pgd=PgdSettings(args.eps, args.step, args.iters), n_synthetic=args.synthetic,
                                   n_noise=args.noise, transfer_from=args.transfer_from)
    report.settings["data"] = source
    print(f"{len(pos)} positive and {len(neg)} negative patches from {source}; patch PGD eps {args.eps} step "
          f"{args.step} x{args.iters}, {'transfer from ' + args.transfer_from if args.transfer_from else 'white-box'}")
    print(report.format(), end="")
    if args.cpm_cg:
        from reviewer.detection.pipeline import CG_CANDIDATES, CandidateSource
        from reviewer.synthesis.compare import compare_cpm

        cg = CandidateSource.from_card(args.cpm_cg, next(next(iter(models.values())).parameters()).device,
                                       max_candidates=CG_CANDIDATES)
        froc = run_with_progress_bar(compare_cpm, cg, models, spec, args.cpm_data, args.cpm_scans, label="CPM")
        report.cpm = {m: {"cpm": r.cpm, "cpm_ci": list(r.cpm_ci) if r.cpm_ci else None,
                          "sensitivities": {str(k): v for k, v in r.sensitivities.items()}} for m, r in froc.items()}
        report.settings["cpm"] = {"cg": args.cpm_cg, "data": args.cpm_data, "scans": args.cpm_scans}
        for m, r in froc.items():
            ci = f" (95% CI {r.cpm_ci[0]:.3f}-{r.cpm_ci[1]:.3f})" if r.cpm_ci else ""
            print(f"CPM {m}: {r.cpm:.3f}{ci} on {args.cpm_data} behind {args.cpm_cg}")
    if args.json:
        print(f"wrote {report.write_json(args.json)}")
    if args.csv:
        print(f"wrote {report.write_csv(args.csv)}")
    return 0
