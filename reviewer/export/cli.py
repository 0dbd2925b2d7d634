"""``reviewer export CASE|STUDY --out DIR [--format dicom,nifti,png] [--keep-phi] [--shift-dates DAYS]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub, groups) -> None:
    p = sub.add_parser(
        "export", help="export a case or a reader study as DICOM SR/SEG/derived series, NIfTI and PNG "
                       "(de-identified unless --keep-phi)",
        description="CASE is a case bundle (.json, see README 'Exporting cases'), or an image (DICOM folder, "
                    ".nii/.nii.gz/.mhd/.nrrd) with --findings; STUDY is the JSON of 'reviewer study export "
                    "--format json' (or a folder holding it).")
    p.add_argument("case", metavar="CASE|STUDY")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--format", default="dicom,nifti,png", help="comma list of dicom, nifti, png (default: all)")
    p.add_argument("--keep-phi", action="store_true",
                   help="keep patient identity (names, IDs, dates, UIDs); recorded in the manifest")
    p.add_argument("--shift-dates", type=int, metavar="DAYS",
                   help="shift every date by DAYS (intervals kept) instead of removing dates")
    p.add_argument("--findings", metavar="F.json", help="findings (Finding JSON list) for an image CASE")
    p.add_argument("--series", help="SeriesInstanceUID when the image folder holds several series")
    p.set_defaults(handler=_cmd_export)


def _is_study(path: Path) -> bool:
    from reviewer.export.study import find_study_json, is_study_folder

    return find_study_json(path) is not None or is_study_folder(path)


def _cmd_export(args: argparse.Namespace) -> int:
    from reviewer.errors import InputError
    from reviewer.export.exporter import parse_formats
    from reviewer.jobs import run_with_progress_bar

    formats = parse_formats(args.format)
    if args.keep_phi and args.shift_dates is not None:
        raise InputError(None, "--keep-phi keeps the dates: leave out --shift-dates")
    src = Path(args.case)
    if not src.exists():
        raise InputError(src, "no such file or folder")
    if _is_study(src):
        from reviewer.export.study import export_study

        result = run_with_progress_bar(export_study, src, args.out, formats=formats, keep_phi=args.keep_phi,
                                       shift_days=args.shift_dates, label="exporting study")
    else:
        from reviewer.export.case import CaseExport, load_case_bundle, read_findings_file
        from reviewer.export.exporter import export_case
        from reviewer.io.loader import load_volume

        if src.is_file() and src.suffix.lower() == ".json":
            case = run_with_progress_bar(load_case_bundle, src, label="loading case")
            if args.findings:
                case.findings += read_findings_file(args.findings)
        else:
            volume = run_with_progress_bar(load_volume, src, series_uid=args.series, label="loading")
            findings = read_findings_file(args.findings) if args.findings else []
            case = CaseExport(volume=volume, findings=findings, name="case")
        result = run_with_progress_bar(export_case, case, args.out, formats=formats, keep_phi=args.keep_phi,
                                       shift_days=args.shift_dates, label="exporting")
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    manifest = json.loads(Path(result.manifest).read_text())
    kinds: dict[str, int] = {}
    for f in manifest.get("files", []):
        kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
    identity = "identity KEPT (--keep-phi)" if args.keep_phi else "de-identified (PS3.15 basic profile" + (
        ", dates shifted)" if args.shift_dates is not None else ")")
    print(f"wrote {len(manifest.get('files', []))} files to {args.out} ({identity}): "
          + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    print(f"manifest: {result.manifest}")
    return 0
