"""`reviewer study export`: a long CSV, an iMRMC input file, an RJafroc JAFROC workbook, the whole study as JSON.

* CSV: one row per submitted read (``record=case``: case rating, time) and one per mark (``record=mark``: world LPS
  mm, image i/j/k, rating, and how it scored: ``LL`` with the lesion id, or ``NL``).
* iMRMC (``.imrmc``, the legacy text format the FDA iMRMC tool and RJafroc's ``DfReadDataFile(format="iMRMC")``
  read): free text, ``NR:/N0:/N1:/NM:`` lines, ``BEGIN DATA:``, truth rows ``-1,case,0,truth(0/1)``, then
  ``reader,case,modality,score`` rows. IDs are integers (RJafroc requires integer case IDs); the score is the ROC
  rating (case rating, or the highest mark rating for FROC); an unmarked case scores one below the scale's
  minimum. A ``<name>_ids.csv`` beside it maps the integers to reader ids, case ids and condition labels.
* JAFROC (``.xlsx``, RJafroc's original format): sheets ``Truth`` (CaseID, LesionID, Weight; a normal case is one
  row with LesionID 0 and Weight 0), ``FP`` (ReaderID, ModalityID, CaseID, FP_Rating: every non-lesion mark) and
  ``TP`` (ReaderID, ModalityID, CaseID, LesionID, TP_Rating: the rating of each localised lesion). ROC studies
  are written the RJafroc ROC way: one FP row per normal case, one TP row (LesionID 1) per abnormal case. Integer
  case and modality IDs, with the same ``_ids.csv`` mapping.
* JSON: the definition, readers, truth, and every submitted read with its marks (world LPS mm, reader, rating,
  case image path, and the mark as a :class:`reviewer.findings.Finding`), ratings and timings.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from reviewer.errors import InputError
from reviewer.studies import scoring as SC
from reviewer.studies.definition import StudyDefinition, resolve_image

FORMATS = ("csv", "imrmc", "jafroc", "json")
EXPORT_FORMAT = "reviewer-study-export"
EXPORT_VERSION = 1


def _scored(definition: StudyDefinition, r) -> tuple[SC.ScoredCase, list]:
    case = definition.case(r.case_id)
    marks = [m for m in r.marks if m.get("rating") is not None]
    sc = SC.score_case([(tuple(m["world_lps"]), float(m["rating"])) for m in marks],
                       [les.center_lps for les in case.truth.lesions], definition.acceptance_radius_mm)
    return sc, marks


def roc_score(definition: StudyDefinition, r) -> float:
    """The case's ROC rating; an unmarked / unrated case gets one below the scale's minimum."""
    low = definition.rating_range[0] - 1
    if definition.uses_case_rating:
        return float(r.case_rating) if r.case_rating is not None else float(low)
    sc, _ = _scored(definition, r)
    return sc.highest if sc.highest != SC.NEG_INF else float(low)


def _ids(definition: StudyDefinition, results) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    readers = {}
    for r in results:
        readers.setdefault(r.reader_id, len(readers) + 1)
    cases = {c.id: i + 1 for i, c in enumerate(definition.cases)}
    mods = {c: i + 1 for i, c in enumerate(definition.conditions)}
    return readers, cases, mods


def _write_id_map(path: Path, readers: dict, cases: dict, mods: dict) -> Path:
    p = path.with_name(path.stem + "_ids.csv")
    with p.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["kind", "id", "label"])
        for k, d in (("reader", readers), ("case", cases), ("modality", mods)):
            for label, i in d.items():
                w.writerow([k, i, label])
    return p


def export_csv(definition: StudyDefinition, results, path: Path) -> list[Path]:
    cols = ["record", "reader_id", "simulated", "case_id", "condition", "case_truth", "image_path", "position",
            "case_rating", "roc_rating", "active_s", "submitted_at", "timed_out", "mark_id", "x_lps", "y_lps",
            "z_lps", "i", "j", "k", "mark_rating", "scored_as", "lesion_id"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in results:
            case = definition.case(r.case_id)
            base = {"reader_id": r.reader_id, "simulated": int(r.simulated), "case_id": r.case_id,
                    "condition": r.condition, "case_truth": "normal" if case.truth.normal else "abnormal",
                    "image_path": r.image_path, "position": r.position + 1}
            w.writerow({**base, "record": "case", "case_rating": "" if r.case_rating is None else r.case_rating,
                        "roc_rating": roc_score(definition, r), "active_s": f"{r.active_s:.3f}",
                        "submitted_at": r.submitted_at, "timed_out": int(r.timed_out)})
            sc, marks = _scored(definition, r)
            for m, les in zip(marks, sc.mark_lesion):
                ijk = m.get("image_ijk") or ["", "", ""]
                w.writerow({**base, "record": "mark", "mark_id": m["mark_id"], "x_lps": m["world_lps"][0],
                            "y_lps": m["world_lps"][1], "z_lps": m["world_lps"][2], "i": ijk[0], "j": ijk[1],
                            "k": ijk[2], "mark_rating": m["rating"], "scored_as": "NL" if les is None else "LL",
                            "lesion_id": "" if les is None else case.truth.lesions[les].id})
    return [path]


def export_imrmc(definition: StudyDefinition, results, path: Path) -> list[Path]:
    readers, cases, mods = _ids(definition, results)
    n0 = sum(c.truth.normal for c in definition.cases)
    lines = [f"iMRMC input written by reviewer: study {definition.name!r}, paradigm {definition.paradigm}, "
             f"rating scale {definition.rating_scale}",
             "score = " + ("case rating" if definition.uses_case_rating else "highest mark rating (FROC -> ROC)")
             + f"; unmarked cases score {definition.rating_range[0] - 1}",
             "IDs are mapped to the study's readers, cases and conditions in " + path.stem + "_ids.csv", "",
             f"NR: {len(readers)}", f"N0: {n0}", f"N1: {len(definition.cases) - n0}", f"NM: {len(mods)}", "",
             "BEGIN DATA:"]
    for c in definition.cases:
        lines.append(f"-1,{cases[c.id]},0,{0 if c.truth.normal else 1}")
    for r in results:
        lines.append(f"{readers[r.reader_id]},{cases[r.case_id]},{mods[r.condition]},{_num(roc_score(definition, r))}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [path, _write_id_map(path, readers, cases, mods)]


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def export_jafroc(definition: StudyDefinition, results, path: Path) -> list[Path]:
    from openpyxl import Workbook

    readers, cases, mods = _ids(definition, results)
    wb = Workbook()
    truth = wb.active
    truth.title = "Truth"
    truth.append(["CaseID", "LesionID", "Weight"])
    roc = definition.paradigm == "roc"
    for c in definition.cases:
        if c.truth.normal:
            truth.append([cases[c.id], 0, 0])
        elif roc:
            truth.append([cases[c.id], 1, 1])
        else:
            for les, w in zip(c.truth.lesions, c.truth.weights()):
                truth.append([cases[c.id], les.id, w])
    fp = wb.create_sheet("FP")
    fp.append(["ReaderID", "ModalityID", "CaseID", "FP_Rating"])
    tp = wb.create_sheet("TP")
    tp.append(["ReaderID", "ModalityID", "CaseID", "LesionID", "TP_Rating"])
    for r in results:
        case = definition.case(r.case_id)
        key = [r.reader_id, mods[r.condition], cases[r.case_id]]
        if roc:
            score = roc_score(definition, r)
            if case.truth.normal:
                fp.append(key + [score])
            else:
                tp.append(key + [1, score])
            continue
        sc, marks = _scored(definition, r)
        for rating in sc.nl:
            fp.append(key + [rating])
        for les, rating in zip(case.truth.lesions, sc.ll):
            if rating != SC.NEG_INF:
                tp.append(key + [les.id, rating])
    wb.save(path)
    return [path, _write_id_map(path, {k: k for k in readers}, cases, mods)]


def study_to_json(definition: StudyDefinition, results, readers=(), study_dir: Path | None = None,
                  schema_version: int | None = None) -> dict[str, Any]:
    from reviewer.findings import Finding

    reads = []
    for r in results:
        case = definition.case(r.case_id)
        sc, marks = _scored(definition, r)
        abs_path = str(resolve_image(study_dir, r.image_path).resolve()) if study_dir else None
        out_marks = []
        for m, les in zip(marks, sc.mark_lesion):
            f = Finding(tuple(m["world_lps"]), kind="reader-mark", score=m["rating"], score_kind="rating",
                        observer=r.reader_id, observer_type="device" if r.simulated else "person",
                        source=abs_path or r.image_path, label=f"{r.case_id} / {r.condition}",
                        extra={"case_id": r.case_id, "condition": r.condition, "mark_id": m["mark_id"],
                               "scored_as": "NL" if les is None else "LL",
                               "lesion_id": None if les is None else case.truth.lesions[les].id})
            out_marks.append({"mark_id": m["mark_id"], "world_lps": list(m["world_lps"]),
                              "image_ijk": m.get("image_ijk"), "rating": m["rating"],
                              "scored_as": "NL" if les is None else "LL",
                              "lesion_id": None if les is None else case.truth.lesions[les].id,
                              "finding": f.to_json()})
        reads.append({"reader_id": r.reader_id, "simulated": r.simulated, "case_id": r.case_id,
                      "condition": r.condition, "image_path": r.image_path, "image_path_abs": abs_path,
                      "position": r.position + 1, "case_rating": r.case_rating,
                      "roc_rating": roc_score(definition, r), "active_s": r.active_s,
                      "submitted_at": r.submitted_at, "submit_count": r.submit_count, "timed_out": r.timed_out,
                      "marks": out_marks})
    return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "coordinates": "world LPS mm",
            "study_dir": str(study_dir.resolve()) if study_dir else None, "schema_version": schema_version,
            "definition": definition.to_json(),
            "readers": [{"reader_id": x.reader_id, "name": x.name, "reader_index": x.reader_index,
                         "simulated": x.simulated} for x in readers],
            "truth": [{"case_id": c.id, "normal": c.truth.normal,
                       "lesions": [{"lesion_id": les.id, "center_lps": list(les.center_lps),
                                    "diameter_mm": les.diameter_mm, "kind": les.kind, "weight": w}
                                   for les, w in zip(c.truth.lesions, c.truth.weights())],
                       "images": {cond: ref.path for cond, ref in c.images.items()}} for c in definition.cases],
            "reads": reads}


def export_study_file(store, fmt: str, out: str | Path, include_simulated: bool = True) -> list[Path]:
    """Write ``fmt`` (csv | imrmc | jafroc | json) of a store's submitted reads to ``out``; returns the files."""
    if fmt not in FORMATS:
        raise InputError(out, f"unknown export format {fmt!r} (choose {', '.join(FORMATS)})")
    p = Path(out)
    if not p.parent.exists():
        raise InputError(p, "the output folder does not exist")
    results = store.results(include_simulated=include_simulated)
    d = store.definition
    if fmt == "csv":
        return export_csv(d, results, p)
    if fmt == "imrmc":
        return export_imrmc(d, results, p)
    if fmt == "jafroc":
        if p.suffix.lower() != ".xlsx":
            raise InputError(p, "a JAFROC workbook must end in .xlsx")
        return export_jafroc(d, results, p)
    readers = [r for r in store.readers() if include_simulated or not r.simulated]
    p.write_text(json.dumps(study_to_json(d, results, readers, store.study_dir, store.schema_version()),
                            indent=2) + "\n", encoding="utf-8")
    return [p]
