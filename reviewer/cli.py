"""Command line: ``reviewer`` alone opens the GUI; subcommands run headless.

Heavy modules are imported inside the command that needs them so ``reviewer --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from reviewer.errors import ReviewerError
from reviewer.jobs import Cancelled


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="compute device: cpu, cuda, cuda:N or mps (default: CUDA, else MPS, else CPU)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reviewer",
        description="Review what deep-learning models miss. Without a command, opens the GUI.",
    )
    _add_device(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("gui", help="open the GUI (optionally with files or folders)")
    p.add_argument("paths", nargs="*", help="files or folders to open")

    p = sub.add_parser("info", help="print the series found under a path and their geometry")
    p.add_argument("paths", nargs="+", help="DICOM folder or file(s), NIfTI, MHD, NRRD or fastMRI HDF5")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser("convert", help="write one volume with its geometry to NIfTI, MHD/RAW or NRRD")
    p.add_argument("input", help="DICOM folder/file, NIfTI, MHD, NRRD or fastMRI HDF5")
    p.add_argument("output", help="OUT.nii.gz, OUT.nii, OUT.mhd or OUT.nrrd")
    p.add_argument("--series", help="SeriesInstanceUID to convert when the input holds several series")

    p = demo_parser = sub.add_parser("demo", help="generate the demo CT and MRI data (deterministic) and open them")
    p.add_argument("--screenshot", metavar="PNG", help="render the demo window to a PNG and exit")
    p.add_argument("--no-gui", action="store_true", help="only generate the data and print where it is")
    p.add_argument("--out", metavar="DIR", help="where to write the demo data (default: the user cache)")
    p.add_argument("--force", action="store_true", help="regenerate even when the cached data is current")

    p = sub.add_parser("recon", help="reconstruct an under-sampled MRI with a U-Net (fastMRI-style output)")
    p.add_argument("input", help="fastMRI single-coil .h5, or a magnitude image (DICOM/NIfTI/...: simulated k-space)")
    p.add_argument("--model", required=True, help="model name (see resources/models) or a model card .json")
    p.add_argument("--mask", choices=("random", "equispaced"), default="random")
    p.add_argument("--acceleration", type=int, default=4)
    p.add_argument("--center-fraction", type=float, help="default: 0.08 at 4x, 0.04 at 8x")
    p.add_argument("--seed", type=int, help="mask seed (default: fastMRI's validation seed from the file name)")
    p.add_argument("--output", required=True, help="OUT.h5 with a 'reconstruction' dataset (slices, 320, 320)")
    p.add_argument("--metrics", action="store_true", help="print NMSE/PSNR/SSIM against the reference")
    p.add_argument("--batch-size", type=int, default=4)

    p = sub.add_parser("fnaf", help="false-negative adversarial features: evaluate models headless")
    fsub = p.add_subparsers(dest="fnaf", metavar="WHAT", required=True)
    f = fsub.add_parser("eval", help="attack models over a dataset; the paper's tables, CSV, JSON, heat map")
    f.add_argument("--data", help="folder of fastMRI single-coil .h5 files, or one file")
    f.add_argument("--model", action="append", default=[], help="model name or card (repeat for several)")
    f.add_argument("--demo", action="store_true", help="the held-out demo MRI with the demo standard and robust models")
    f.add_argument("--acceleration", type=int, default=4)
    f.add_argument("--center-fraction", type=float, help="default: 0.08 at 4x, 0.04 at 8x")
    f.add_argument("--mask", choices=("random", "equispaced"), default="random")
    f.add_argument("--attack", choices=("rs", "fd", "pgd"), default="rs")
    f.add_argument("--tries", type=int, default=11, help="random candidates per slice (paper: 11)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--slices", choices=("all", "middle"), default="all", help="attack all slices or the middle half")
    f.add_argument("--out", required=True, help="output folder (CSV, JSON, heat map PNG)")
    f.add_argument("--json", metavar="PATH", help="also write {'models': {NAME: {...}}} here")

    p = sub.add_parser("train", help="train models: recon U-Nets (FNAF-robust with --fnaf-robust), cg, fpr")
    tsub = p.add_subparsers(dest="train", metavar="WHAT", required=True)
    t = tsub.add_parser("recon", help="train a fastMRI U-Net on single-coil .h5 files")
    t.add_argument("--data", required=True,
                   help="folder of fastMRI single-coil .h5 files (or one file); demo:train for the demo split")
    t.add_argument("--out", required=True, help="output folder: checkpoints (safetensors), config, model card")
    t.add_argument("--name", default="unet", help="model name written in the card")
    t.add_argument("--fnaf-robust", action="store_true", help="add the FNAF min-max step (REFERENCES section 2)")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--batch-size", type=int, default=4)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--chans", type=int, default=32)
    t.add_argument("--pools", type=int, default=4)
    t.add_argument("--mask", choices=("random", "equispaced"), default="random")
    t.add_argument("--acceleration", type=int, nargs="+", default=[4])
    t.add_argument("--center-fraction", type=float, nargs="+", default=[0.08])
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    t.add_argument("--init-from", metavar="WEIGHTS", help="start from these weights (.safetensors or .pt)")
    t.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    t.add_argument("--no-resume", action="store_true", help="start afresh even when a checkpoint exists")

    p = sub.add_parser("bench", help="benchmarks that print ratios against a baseline measured in the same run")
    bsub = p.add_subparsers(dest="bench", metavar="WHAT", required=True)
    b = bsub.add_parser("view", help="ms per slice step for two linked 512x512 panes, rendered offscreen")
    b.add_argument("--steps", type=int, default=200)
    b.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    b = bsub.add_parser("io", help="our DICOM loader vs SimpleITK on a 300-slice 512x512 CT series")
    b.add_argument("--slices", type=int, default=300)
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    b = bsub.add_parser("recon", help="U-Net slices/s and batched vs single FNAF candidate evaluation")
    b.add_argument("--model", help="model name or card (default: the demo standard U-Net when shipped)")
    b.add_argument("--chans", type=int, default=32, help="U-Net width when no model is available")
    b.add_argument("--candidates", type=int, default=128, help="random-search candidates on one slice")
    b.add_argument("--json", metavar="PATH", help="also write the results as JSON")

    groups = {"train": tsub, "bench": bsub, "demo": demo_parser}
    for module in _extensions():
        module.register(sub, groups)
    return parser


# Domain packages add their own commands: ``register(sub, groups)`` adds parsers to the top-level subparsers
# ``sub`` or to ``groups['train' | 'bench']`` (subparsers) / ``groups['demo']`` (a parser), and sets
# ``handler=fn(args) -> int`` with ``set_defaults``. Each module keeps heavy imports inside its handlers.
EXTENSIONS = ("reviewer.luna16.cli", "reviewer.detection.cli", "reviewer.synthesis.cli", "reviewer.studies.cli",
              "reviewer.export.cli")


def _extensions():
    import importlib

    for name in EXTENSIONS:
        try:
            yield importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.device:
        from reviewer.device import set_device_override

        set_device_override(args.device)
    try:
        return _dispatch(args)
    except Cancelled:
        print("cancelled", file=sys.stderr)
        return 130
    except ReviewerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    cmd = args.command
    handler = getattr(args, "handler", None)
    if handler is not None:
        return handler(args)
    if cmd in (None, "gui"):
        from reviewer.gui.app import run_app

        return run_app(paths=list(getattr(args, "paths", []) or []))
    if cmd == "info":
        return _cmd_info(args)
    if cmd == "convert":
        return _cmd_convert(args)
    if cmd == "demo":
        return _cmd_demo(args)
    if cmd == "recon":
        return _cmd_recon(args)
    if cmd == "fnaf":
        return _cmd_fnaf(args)
    if cmd == "train":
        return _cmd_train(args)
    if cmd == "bench":
        return _cmd_bench(args)
    raise AssertionError(cmd)


def _cmd_info(args: argparse.Namespace) -> int:
    from reviewer.io.catalog import format_catalog, scan_paths
    from reviewer.jobs import run_with_progress_bar

    catalog = run_with_progress_bar(scan_paths, args.paths, label="scanning")
    if args.json:
        print(json.dumps(catalog.to_json(), indent=2))
    else:
        print(format_catalog(catalog))
    for problem in catalog.problems:
        print(f"warning: {problem}", file=sys.stderr)
    if not catalog.series:
        print(f"error: no images found in {', '.join(args.paths)}", file=sys.stderr)
        return 2
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from reviewer.io.loader import load_volume
    from reviewer.io.writer import write_volume
    from reviewer.jobs import run_with_progress_bar

    volume = run_with_progress_bar(load_volume, args.input, series_uid=args.series, label="loading")
    for w in volume.warnings:
        print(f"warning: {w}", file=sys.stderr)
    out = write_volume(volume, args.output)
    g = volume.geometry
    print(f"wrote {out}: {g.size_ijk[0]}x{g.size_ijk[1]}x{g.size_ijk[2]} voxels, "
          f"spacing {', '.join(f'{s:.4g}' for s in g.spacing)} mm, {g.nearest_orientation_code()}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from reviewer.demo import generate_demo
    from reviewer.jobs import run_with_progress_bar

    out = Path(args.out) if args.out else None
    demo = run_with_progress_bar(generate_demo, out, force=args.force, label="demo data")
    if args.no_gui:
        for key, path in demo.as_dict().items():
            print(f"{key}: {path}")
        return 0
    from reviewer.gui.app import run_app

    return run_app(demo=demo, screenshot=args.screenshot)


def _cmd_recon(args: argparse.Namespace) -> int:
    from reviewer.device import describe_device, get_device
    from reviewer.jobs import run_with_progress_bar
    from reviewer.mri import metrics
    from reviewer.mri.masks import STANDARD_CENTER_FRACTIONS, validation_seed
    from reviewer.mri.recon import make_mask, read_recon_input, reconstruct, write_reconstruction
    from reviewer.models.cards import build_model, find_card

    card = find_card(args.model, task="mri-reconstruction")
    model = build_model(card, get_device())
    data = read_recon_input(args.input)
    cf = args.center_fraction or STANDARD_CENTER_FRACTIONS.get(args.acceleration)
    if cf is None:
        print("error: give --center-fraction for this acceleration", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else validation_seed(Path(args.input).name)
    mask = make_mask(args.mask, args.acceleration, cf, data.kspace.shape[-1], seed=seed)
    print(f"{card.name} on {describe_device()}: {data.kspace.shape[0]} slices, {data.label}, {args.mask} mask "
          f"{args.acceleration}x (centre {cf}), effective {mask.effective_acceleration:.2f}x", file=sys.stderr)
    result = run_with_progress_bar(reconstruct, model, data.kspace, mask, batch_size=args.batch_size,
                                   label="reconstructing")
    attrs = {"model": card.name, "acceleration": args.acceleration, "center_fraction": cf, "mask": args.mask,
             "kspace": data.label, "source": str(args.input)}
    out = write_reconstruction(args.output, result.output, attrs)
    print(f"wrote {out} ({', '.join(f'{k} {v:.2f}' for k, v in result.timings.items())})")
    if args.metrics:
        if data.reference is None:
            print("no reference reconstruction in the input: metrics unavailable", file=sys.stderr)
        else:
            for name, arr in (("zero-filled", result.zero_filled), (card.name, result.output)):
                m = metrics.all_metrics(data.reference, arr)
                print(f"{name:>24}: NMSE {m['nmse']:.4f}  PSNR {m['psnr']:.2f} dB  SSIM {m['ssim']:.4f}")
    return 0


def _cmd_fnaf(args: argparse.Namespace) -> int:
    from reviewer.device import get_device
    from reviewer.fnaf.evaluate import evaluate_fnaf, format_report, write_outputs
    from reviewer.jobs import run_with_progress_bar
    from reviewer.models.cards import build_model, find_card
    from reviewer.mri.masks import STANDARD_CENTER_FRACTIONS
    from reviewer.training.recon_data import find_h5

    names, data = list(args.model), args.data
    if args.demo:
        data = data or "demo:test"
        names = names or ["demo-unet-standard", "demo-unet-robust"]
    if not data or not names:
        print("error: give --data and --model (or --demo)", file=sys.stderr)
        return 2
    cf = args.center_fraction or STANDARD_CENTER_FRACTIONS.get(args.acceleration, 0.08)
    models, cards = {}, {}
    for n in names:
        card = find_card(n, task="mri-reconstruction")
        models[card.name] = build_model(card, get_device())
        cards[card.name] = str(Path(card.path).resolve()) if card.path else card.name
    report = run_with_progress_bar(evaluate_fnaf, models, find_h5(data), args.acceleration, cf, args.mask,
                                   args.attack, args.tries, args.seed, args.slices, label="FNAF attack")
    report.settings["model_cards"] = cards  # lets `reviewer study create --from-fnaf-eval` rebuild the models
    print(format_report(report))
    written = write_outputs(report, Path(args.out))
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2))
        written.append(Path(args.json))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from reviewer.jobs import run_with_progress_bar
    from reviewer.training.recon_train import ReconTrainConfig, command_line, train_recon, write_card

    cfg = ReconTrainConfig(
        data=args.data, out=args.out, name=args.name, fnaf_robust=args.fnaf_robust, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, chans=args.chans, num_pool_layers=args.pools, mask=args.mask,
        accelerations=args.acceleration, center_fractions=args.center_fraction, seed=args.seed,
        amp=not args.no_amp, max_steps=args.max_steps, init_from=args.init_from, command=command_line(args.argv),
    )
    summary = run_with_progress_bar(train_recon, cfg, resume=not args.no_resume, label="training")
    if int(os.environ.get("RANK", 0)) != 0:  # under torchrun only rank 0 writes the card
        return 0
    card = write_card(cfg, Path(summary["weights"]), Path(args.out) / f"{args.name}.json", data_desc=str(args.data))
    print(f"trained {summary['steps']} steps; weights {summary['weights']}; card {card}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.bench == "view":
        from reviewer.gui.bench_view import run_view_bench

        result = run_view_bench(steps=args.steps)
    elif args.bench == "recon":
        from reviewer.mri.bench_recon import run_recon_bench

        result = run_recon_bench(chans=args.chans, candidates=args.candidates, model_name=args.model)
    else:
        from reviewer.io.bench_io import run_io_bench

        result = run_io_bench(n_slices=args.slices, repeats=args.repeats)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
