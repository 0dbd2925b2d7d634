"""CLI of the detection lab: `reviewer detect`, `reviewer train cg|fpr`, `reviewer bench detect`."""

from __future__ import annotations

import argparse
import sys

DEFAULT_FPR = "demo-fpr-standard"
DEFAULT_CG = "demo-cg"


def register(sub, groups) -> None:
    p = sub.add_parser("detect", help="lung nodule detection on CT (DICOM folders or .mhd): LUNA16 submission CSV")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="DICOM folders, .mhd/.nii files, or demo:ct-test (every scan of a demo LUNA16 split)")
    p.add_argument("--model", default=DEFAULT_FPR, help=f"FPR model name or card (default {DEFAULT_FPR})")
    p.add_argument("--cg", default=DEFAULT_CG, help=f"candidate generator name or card (default {DEFAULT_CG})")
    p.add_argument("--output", required=True, metavar="CSV", help="LUNA16 submission CSV to write")
    p.add_argument("--max-candidates", type=int, default=100, help="findings per scan (LUNA16 scores 100)")
    p.add_argument("--cg-candidates", type=int, default=300, help="CG peaks (after NMS) handed to the FPR")
    p.add_argument("--json", metavar="PATH", help="also write findings, timings and warnings as JSON")
    p.set_defaults(handler=_detect)

    for stage, help_ in (("cg", "train the nodule candidate generator (3D residual U-Net heat map)"),
                         ("fpr", "train the false-positive reduction classifier (sigmoid or Beta head)")):
        t = groups["train"].add_parser(stage, help=help_)
        t.add_argument("--data", required=True, help="LUNA16-format folder (mhd + annotations.csv) or demo:ct-train")
        t.add_argument("--out", required=True, help="output folder: checkpoints (safetensors), config, model card")
        t.add_argument("--name", help="model name written in the card (default: the output folder's name)")
        t.add_argument("--loss", choices=("ce", "beta", "lopsided") if stage == "fpr" else ("ce", "lopsided"),
                       default="ce")
        t.add_argument("--censor", metavar="random:F|size:F",
                       help="drop a fraction F of the training annotations, at random or smallest first")
        t.add_argument("--epochs", type=int, default=10)
        t.add_argument("--steps-per-epoch", type=int, default=100)
        t.add_argument("--batch-size", type=int, default=0, help="default: 2 crops (cg) / 32 patches (fpr)")
        t.add_argument("--lr", type=float, default=1e-3)
        t.add_argument("--seed", type=int, default=0)
        t.add_argument("--init-from", metavar="W", help="start from these weights (card name, card or .safetensors)")
        t.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
        t.add_argument("--threads", type=int, default=0,
                       help="CPU threads for torch (default: torch's choice; 1 is fastest on a busy shared CPU)")
        t.add_argument("--channels", type=int, nargs="+", help="network widths (default: 4 8 16 32 / 16 32 64)")
        t.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
        t.add_argument("--no-resume", action="store_true", help="start afresh even when a checkpoint exists")
        if stage == "fpr":
            t.add_argument("--head", choices=("sigmoid", "beta"), help="default: beta for --loss beta, else sigmoid")
            t.add_argument("--augment", default="", metavar="syn,perturb,poisson",
                           help="fine-tune with synthetic nodules / adversarial perturbations / Poisson noise "
                                "(the paper's sampling ratios; needs the synthesis lab)")
            t.add_argument("--cg", metavar="NAME", help="also take negatives from this candidate generator's false "
                                                        "candidates")
        t.set_defaults(handler=_train, stage=stage)

    b = groups["bench"].add_parser("detect", help="end-to-end and per-stage detection time on a 512x512x300 CT")
    b.add_argument("--model", default=DEFAULT_FPR)
    b.add_argument("--cg", default=DEFAULT_CG)
    b.add_argument("--slices", type=int, default=300)
    b.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    b.set_defaults(handler=_bench)


def _train(args: argparse.Namespace) -> int:
    import time

    from reviewer.jobs import run_with_progress_bar
    from reviewer.training.detect_train import DetectTrainConfig, command_line, train_detector, write_card

    try:
        cfg = DetectTrainConfig(
            stage=args.stage, data=args.data, out=args.out, name=args.name or "", loss=args.loss,
            head=getattr(args, "head", None) or "", censor=args.censor,
            augment=[a for a in getattr(args, "augment", "").split(",") if a], init_from=args.init_from,
            cg=getattr(args, "cg", None), epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
            batch_size=args.batch_size, lr=args.lr, seed=args.seed, amp=not args.no_amp, max_steps=args.max_steps,
            threads=args.threads, channels=list(args.channels or []),
            command=command_line(args.argv))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        summary = run_with_progress_bar(train_detector, cfg, resume=not args.no_resume, label=f"training {args.stage}")
    except RuntimeError as exc:
        if "--augment" in str(exc):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
    minutes = (time.perf_counter() - t0) / 60
    card = write_card(cfg, summary, minutes=minutes)
    print(f"trained {cfg.stage} {cfg.name} in {minutes:.1f} min ({summary['steps']} steps; data {summary['data']}); "
          f"card {card}")
    return 0


def _detect(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from reviewer.detection.pipeline import Detector
    from reviewer.device import get_device
    from reviewer.findings import findings_to_json
    from reviewer.io.loader import load_volume
    from reviewer.jobs import run_with_progress_bar
    from reviewer.luna16.io import write_submission

    out = Path(args.output)
    detector = Detector.from_cards(args.cg, args.model, get_device(), max_candidates=args.max_candidates,
                                   cg_candidates=args.cg_candidates)
    rows, report = [], []
    for path in _expand(args.paths):
        volume = run_with_progress_bar(load_volume, path, label="loading")
        uid = volume.metadata.get("series_uid") or Path(path).name
        if str(path).endswith(".mhd"):
            uid = Path(path).name[: -len(".mhd")]  # LUNA16: the file name is the series UID
        result = run_with_progress_bar(detector.detect, volume, label=f"detecting {Path(path).name}")
        for w in result.warnings:
            print(f"WARNING {path}: {w}", file=sys.stderr)
        for f in result.findings:
            rows.append((uid, *f.center_lps, f.score))
        top = result.findings[0].score if result.findings else float("nan")
        print(f"{path}: {len(result.findings)} candidates (top probability {top:.3f}); "
              + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()))
        report.append({"path": str(path), "seriesuid": uid, "findings": findings_to_json(result.findings),
                       "timings": result.timings, "warnings": result.warnings})
    write_submission(out, rows)
    print(f"wrote {len(rows)} marks to {out}")
    if args.json:
        Path(args.json).write_text(json.dumps({"cases": report}, indent=1))
    return 0


def _expand(paths: list[str]) -> list[str]:
    """``demo:ct-SPLIT`` -> the split's .mhd files (exported to the cache on first use), in seriesuids order."""
    out = []
    for p in paths:
        if str(p).startswith("demo:"):
            from reviewer.luna16.dataset import open_luna16

            ds = open_luna16(p)
            out += [str(ds.scans[u]) for u in ds.seriesuids if u in ds.scans]
        else:
            out.append(p)
    return out


def _bench(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from reviewer.detection.bench import GOAL_CPU_S, GOAL_GPU_S, run_detect_bench

    res = run_detect_bench(args.cg, args.model, slices=args.slices)
    for dev, r in res["devices"].items():
        goal = GOAL_CPU_S if dev == "cpu" else GOAL_GPU_S
        stages = ", ".join(f"{k} {v:.2f} s" for k, v in r["timings"].items())
        print(f"{dev}: end-to-end {r['total_s']:.1f} s for {res['shape']} ({stages}); goal {goal:.0f} s: "
              f"ratio {r['total_s'] / goal:.2f} ({'meets' if r['total_s'] <= goal else 'misses'} the goal)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0
