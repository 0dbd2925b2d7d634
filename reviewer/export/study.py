"""Export a whole reader study: one folder per case image, one SR per reader per case (observer = the reader).

Input: the JSON written by ``reviewer study export STUDY --format json`` (reviewer.studies.exports): ``reads``
(reader_id, simulated, case_id, condition, image_path[_abs], case_rating, marks with world_lps and rating) and
``truth`` (case_id, lesions with center_lps and diameter_mm, images per condition). Every case image is exported
through :func:`reviewer.export.exporter.export_case` with one shared :class:`Deidentifier`, so a patient keeps one
pseudonym and UIDs stay consistent across the study. Simulated readers are algorithms: device observers. The
truth of each case is a further SR whose observer is the device "reference standard". Readers who submitted a
case without marks still get an SR (an empty measurement report), with their case rating when there is one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from reviewer.errors import InputError
from reviewer.findings import Finding
from reviewer.jobs import JobToken

STUDY_JSON_NAMES = ("study_export.json", "study-export.json", "export.json", "study.json")
TRUTH_OBSERVER = "reference standard"


def _is_study_export(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("reads"), list)


def is_study_folder(path: str | os.PathLike) -> bool:
    """A reader-study folder (or its definition file): ``study.json`` / ``study.toml`` with cases and readers."""
    p = Path(path)
    d = next((p / n for n in ("study.json", "study.toml") if (p / n).is_file()), None) if p.is_dir() else p
    if d is None or not d.is_file() or d.name not in ("study.json", "study.toml"):
        return False
    if d.suffix == ".toml":
        return True
    try:
        data = json.loads(d.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "cases" in data and "conditions" in data


def study_reads(path: str | os.PathLike) -> tuple[dict[str, Any], Path]:
    """The study export (a dict as ``reviewer study export --format json`` writes it) and where it lives: read
    from an export JSON, or made now from a study folder's store (reviewer.studies)."""
    p = find_study_json(path)
    if p is not None:
        return json.loads(p.read_text(encoding="utf-8")), p
    if is_study_folder(path):
        from reviewer.studies.exports import study_to_json
        from reviewer.studies.store import open_store

        store = open_store(path)
        try:
            data = study_to_json(store.definition, store.results(), store.readers(), store.study_dir,
                                 store.schema_version())
        finally:
            store.close()
        return data, Path(store.study_dir) / "study.json"
    raise InputError(path, "not a reader study (a study folder, or the JSON of 'reviewer study export --format "
                           "json' with 'reads')")


def find_study_json(path: str | os.PathLike) -> Path | None:
    """The study export JSON at ``path`` (the file, or a folder holding one), or None if it is not one."""
    p = Path(path)
    if p.is_file():
        candidates = [p]
    elif p.is_dir():
        candidates = [p / n for n in STUDY_JSON_NAMES] + sorted(p.glob("*.json"))
    else:
        candidates = []
    for c in candidates:
        if not c.is_file() or c.suffix.lower() != ".json":
            continue
        try:
            data = json.loads(c.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if _is_study_export(data):
            return c
    return None


@dataclass
class StudyCaseImage:
    """One image of the study (a case under one condition) with everything read on it."""

    case_id: str
    condition: str
    image: Path
    spacing_mm: tuple[float, float] | None = None  # (row, column) of a 2D image (PNG, TIFF...)
    findings: list[Finding] = field(default_factory=list)
    observers: list[tuple[str, str]] = field(default_factory=list)
    case_scores: dict[str, float] = field(default_factory=dict)


def _image_path(base: Path, read: dict[str, Any], truth_images: dict[str, str]) -> Path:
    for key in ("image_path_abs", "image_path"):
        v = read.get(key)
        if v:
            p = Path(v)
            return p if p.is_absolute() else base / p
    v = truth_images.get(read.get("condition", ""))
    if v:
        return base / v
    raise InputError(None, f"case {read.get('case_id')!r}: the study export names no image")


def _mark_finding(mark: dict[str, Any], read: dict[str, Any], n: int, observer_type: str, kind: str) -> Finding:
    given = mark.get("finding")
    if isinstance(given, dict):
        f = Finding.from_json(given)
    else:
        f = Finding(tuple(mark.get("world_lps") or mark["center_lps"]), kind="reader-mark",
                    score=mark.get("rating"), score_kind="rating" if mark.get("rating") is not None else "none")
    if f.kind in ("", "reader-mark", "mark", "finding"):
        f.kind = kind  # a reader marks a suspected instance of what the study looks for
    f.observer = str(read["reader_id"])
    f.observer_type = observer_type  # type: ignore[assignment]
    f.tracking_id = f"mark {mark.get('mark_id', n)}"
    f.source = ""  # the study's file path stays out of the export
    if "rating" in mark and mark["rating"] is not None:
        f.score, f.score_kind = float(mark["rating"]), "rating"
    return f


def read_study_export(path: str | os.PathLike) -> list[StudyCaseImage]:
    """The case images of a study export JSON, with each reader's marks as findings and the truth."""
    data, p = study_reads(path)
    base = Path(data.get("study_dir") or p.parent)
    truth = {str(t["case_id"]): t for t in data.get("truth", []) if isinstance(t, dict) and "case_id" in t}
    spacing: dict[tuple[str, str], tuple[float, float]] = {}
    for c in (data.get("definition") or {}).get("cases", []) or []:
        for cond, ref in (c.get("images") or {}).items() if isinstance(c, dict) else ():
            if isinstance(ref, dict) and ref.get("spacing_mm"):
                spacing[(str(c.get("id")), str(cond))] = tuple(float(v) for v in ref["spacing_mm"])
    kinds = [str(les.get("kind") or "lesion") for t in truth.values() for les in t.get("lesions", [])]
    study_kind = max(set(kinds), key=kinds.count) if kinds else "lesion"
    images: dict[tuple[str, str], StudyCaseImage] = {}
    for read in data["reads"]:
        case_id, condition = str(read["case_id"]), str(read.get("condition", ""))
        t = truth.get(case_id, {})
        key = (case_id, condition)
        if key not in images:
            img = StudyCaseImage(case_id, condition, _image_path(base, read, t.get("images", {})),
                                 spacing.get((case_id, condition)))
            for n, les in enumerate(t.get("lesions", []), 1):
                img.findings.append(Finding(
                    tuple(les["center_lps"]), kind=str(les.get("kind") or "lesion"),
                    diameter_mm=les.get("diameter_mm"), observer=TRUTH_OBSERVER, observer_type="device",
                    tracking_id=f"lesion {les.get('lesion_id', n)}"))
            images[key] = img
        img = images[key]
        otype = "device" if read.get("simulated") else "person"
        reader = str(read["reader_id"])
        if (reader, otype) not in img.observers:
            img.observers.append((reader, otype))
        for n, mark in enumerate(read.get("marks", []), 1):
            img.findings.append(_mark_finding(mark, read, n, otype, study_kind))
        score = read.get("case_rating", read.get("roc_rating"))
        if score is not None:
            img.case_scores[reader] = float(score)
    return list(images.values())


def _load_image(c: StudyCaseImage):
    """A case image as the reading mode shows it: volumes through reviewer.io, 2D images as one-slice volumes."""
    try:
        from reviewer.studies.images import load_study_image
    except ImportError:  # reviewer.studies absent: volumes only
        from reviewer.io.loader import load_volume

        return load_volume(c.image)
    return load_study_image(c.image, c.spacing_mm)


def _remove_previous_study_export(out: Path) -> None:
    """A study exported here before is replaced: its case folders (as its manifest lists them) are removed."""
    import shutil

    try:
        previous = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return
    if not str(previous.get("software", "")).startswith("reviewer") or not isinstance(previous.get("cases"), list):
        return
    for c in previous["cases"]:
        folder = (out / str(c.get("folder", ""))).resolve()
        if folder != out.resolve() and out.resolve() in folder.parents and folder.is_dir():
            shutil.rmtree(folder)
            parent = folder.parent
            if parent != out.resolve() and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
    (out / "manifest.json").unlink()


def export_study(path: str | os.PathLike, out_dir: str | os.PathLike,
                 formats: Sequence[str] = ("dicom", "nifti", "png"), keep_phi: bool = False,
                 shift_days: int | None = None, token: JobToken | None = None):
    """Export every case image of a study under ``out_dir/<case>/<condition>/`` with one top manifest."""
    from reviewer.export.case import CaseExport
    from reviewer.export.deid import Deidentifier
    from reviewer.export.exporter import ExportResult, export_case, safe_name, write_manifest
    cases = read_study_export(path)
    if not cases:
        raise InputError(path, "the study export holds no submitted reads")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _remove_previous_study_export(out)
    deid = None if keep_phi else Deidentifier(shift_days=shift_days)
    entries: list[dict[str, Any]] = []
    warnings: list[str] = []
    summary = []
    for n, c in enumerate(cases):
        if token is not None:
            token.progress(n, len(cases), f"case {c.case_id}")
        vol = _load_image(c)
        case = CaseExport(volume=vol, findings=c.findings, name=f"{c.case_id} {c.condition}".strip(),
                          observers=[(TRUTH_OBSERVER, "device")] * bool(any(
                              f.observer == TRUTH_OBSERVER for f in c.findings)) + c.observers,
                          case_scores=c.case_scores, patient_key=f"{os.path.abspath(path)}#{c.case_id}")
        sub = out / safe_name(c.case_id, "case") / safe_name(c.condition, "image")
        r = export_case(case, sub, formats=formats, keep_phi=keep_phi, deid=deid, manifest=False,
                        token=token.sub(n, n + 1, len(cases)) if token is not None else None)
        entries += r.entries
        warnings += [f"{c.case_id}/{c.condition}: {w}" for w in r.warnings]
        summary.append({"case_id": c.case_id, "condition": c.condition, "folder": str(sub.relative_to(out)),
                        "readers": [o for o, _ in c.observers], "marks": sum(f.observer != TRUTH_OBSERVER
                                                                             for f in c.findings),
                        "source": r.source})
    manifest = write_manifest(out, entries, deid, keep_phi, "reader study", f"{len(cases)} case images",
                              sorted(set(warnings)), extra={"cases": summary})
    if token is not None:
        token.progress(len(cases), len(cases), "done")
    return ExportResult(out, manifest, [Path(e["path"]) for e in entries] + [manifest], sorted(set(warnings)),
                        entries)
