"""``reviewer froc`` (the LUNA16 evaluation) and ``reviewer demo --export-luna16 DIR``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub, groups) -> None:
    p = sub.add_parser("froc", help="score a LUNA16 submission CSV with the official FROC protocol (CPM, CIs, plot)")
    p.add_argument("--annotations", required=True, metavar="CSV",
                   help="annotations.csv (seriesuid,coordX,coordY,coordZ,diameter_mm), or a LUNA16 folder / demo:ct-SPLIT")
    p.add_argument("--excluded", metavar="CSV", help="annotations_excluded.csv (irrelevant findings)")
    p.add_argument("--seriesuids", metavar="CSV",
                   help="the evaluated scans, one UID per line (default: seriesuids.csv beside the annotations)")
    p.add_argument("--submission", required=True, metavar="CSV", help="seriesuid,coordX,coordY,coordZ,probability")
    p.add_argument("--out", metavar="DIR", help="write froc.png, froc_curve.csv, froc.json and the scored marks here")
    p.add_argument("--json", metavar="PATH", help="write {'cpm', 'sensitivities', 'cpm_ci', ...} here")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples of scans (0: none)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap random seed")
    p.add_argument("--max-marks", type=int, default=100, help="marks scored per scan (LUNA16: 100; 0: all)")
    p.add_argument("--name", help="system name in the plot title (default: the submission's file name)")
    p.set_defaults(handler=_cmd_froc)

    demo = groups["demo"]
    demo.add_argument("--export-luna16", metavar="DIR",
                      help="write demo CT phantoms as a LUNA16 dataset (subset0/*.mhd, annotations CSVs) and exit")
    demo.add_argument("--split", default="test", choices=("train", "val", "test", "all"),
                      help="with --export-luna16: which demo CT seeds (default: test)")
    demo.add_argument("--n", type=int, metavar="N", help="with --export-luna16: only the first N scans of the split")
    demo.set_defaults(handler=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    if not getattr(args, "export_luna16", None):
        from reviewer.cli import _cmd_demo as default_demo

        return default_demo(args)
    from reviewer.jobs import run_with_progress_bar
    from reviewer.luna16.demo_export import export_demo_luna16
    from reviewer.luna16.io import read_annotations, read_seriesuids

    out = run_with_progress_bar(export_demo_luna16, args.export_luna16, args.split, args.n, label="LUNA16 export")
    uids = read_seriesuids(out / "seriesuids.csv")
    n_ann = sum(len(v) for v in read_annotations(out / "annotations.csv").values())
    n_exc = sum(len(v) for v in read_annotations(out / "annotations_excluded.csv").values())
    print(f"wrote {out}: {len(uids)} scans in subset0, {n_ann} nodules >= 3 mm in annotations.csv, "
          f"{n_exc} irrelevant findings in annotations_excluded.csv")
    return 0


def _resolve_inputs(args: argparse.Namespace):
    """Annotation, excluded and series-list paths; a folder or demo:ct-SPLIT for --annotations gives all three."""
    from reviewer.luna16.dataset import find_csv, resolve_luna16

    ann = Path(args.annotations)
    excluded = Path(args.excluded) if args.excluded else None
    uids = Path(args.seriesuids) if args.seriesuids else None
    if args.annotations.startswith("demo:") or ann.is_dir():
        root = resolve_luna16(args.annotations)
        ann = find_csv(root, "annotations.csv") or root / "annotations.csv"
        excluded = excluded or find_csv(root, "annotations_excluded.csv")
        uids = uids or find_csv(root, "seriesuids.csv")
    else:
        if uids is None and (ann.parent / "seriesuids.csv").is_file():
            uids = ann.parent / "seriesuids.csv"
        if excluded is None and (ann.parent / "annotations_excluded.csv").is_file():
            print(f"note: {ann.parent / 'annotations_excluded.csv'} exists but --excluded was not given: "
                  "marks on irrelevant findings count as false positives", file=sys.stderr)
    return ann, excluded, uids


def _cmd_froc(args: argparse.Namespace) -> int:
    from reviewer.jobs import run_with_progress_bar
    from reviewer.luna16.froc import evaluate_froc, format_table, write_outputs
    from reviewer.luna16.io import read_annotations, read_seriesuids, read_submission

    ann_path, exc_path, uid_path = _resolve_inputs(args)
    annotations = read_annotations(ann_path)
    excluded = read_annotations(exc_path) if exc_path else {}
    submission = read_submission(args.submission)
    if uid_path is not None:
        seriesuids = read_seriesuids(uid_path)
    else:
        seriesuids = sorted(set(annotations) | set(excluded) | {r.seriesuid for r in submission})
        print(f"warning: no --seriesuids: evaluating the {len(seriesuids)} scans named in the annotations and the "
              "submission; scans without nodules and without marks are not counted", file=sys.stderr)
    result = run_with_progress_bar(evaluate_froc, annotations, excluded, submission, seriesuids,
                                   n_bootstrap=args.bootstrap, seed=args.seed, max_marks=args.max_marks,
                                   label="FROC bootstrap")
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(format_table(result))
    written = []
    if args.out:
        name = args.name or Path(args.submission).stem
        written += write_outputs(result, Path(args.out), name=name)
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_json(), indent=2) + "\n")
        written.append(Path(args.json))
    if written:
        print("wrote " + ", ".join(str(p) for p in written))
    return 0
