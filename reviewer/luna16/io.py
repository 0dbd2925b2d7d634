"""LUNA16 CSV files: annotations, excluded findings, series UID lists and submissions.

Formats (as the LUNA16 challenge distributes them):

* ``annotations.csv`` / ``annotations_excluded.csv``: header ``seriesuid,coordX,coordY,coordZ,diameter_mm``; one
  finding per line, centre in world millimetres exactly as SimpleITK reports ``.mhd`` coordinates, i.e. patient
  LPS (x grows to the patient's left, y to posterior, z to superior). ``diameter_mm`` may be negative in the
  excluded list (non-nodules without a size; the evaluator then uses 10 mm).
* ``seriesuids.csv``: one series UID per line, no header (a ``seriesuid`` header line is accepted).
* submissions: header ``seriesuid,coordX,coordY,coordZ,probability``.

Extra columns are allowed (they are ignored); columns are found by header name. Malformed files raise
:class:`reviewer.errors.InputError` naming the file and the line. World <-> voxel conversion goes through
:class:`reviewer.geometry.Geometry` only.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from reviewer.errors import InputError
from reviewer.findings import Finding
from reviewer.geometry import Geometry

ANNOTATION_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm")
SUBMISSION_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "probability")


@dataclass(frozen=True)
class Annotation:
    """A LUNA16 finding: centre in world mm (LPS, as SimpleITK reports it) and diameter in mm."""

    x: float
    y: float
    z: float
    diameter_mm: float

    @property
    def center(self) -> tuple[float, float, float]:
        return (self.x, self.y, self.z)


@dataclass(frozen=True)
class SubmissionRow:
    """One CAD mark of a submission."""

    seriesuid: str
    x: float
    y: float
    z: float
    probability: float

    @property
    def center(self) -> tuple[float, float, float]:
        return (self.x, self.y, self.z)


# ---------------------------------------------------------------------------------------------------------------
# submissions in columns (a LUNA16 false-positive-reduction submission has ~750,000 rows)
class Submission(Sequence):
    """CAD marks stored column-wise; indexing and iteration give :class:`SubmissionRow` objects."""

    def __init__(self, seriesuid: Sequence[str], xyz: Any, probability: Any):
        self.seriesuid = list(seriesuid)
        self.xyz = np.asarray(xyz, dtype=float).reshape(-1, 3)
        self.probability = np.asarray(probability, dtype=float).reshape(-1)
        if not (len(self.seriesuid) == len(self.xyz) == len(self.probability)):
            raise ValueError("seriesuid, xyz and probability differ in length")

    @classmethod
    def from_rows(cls, rows: Iterable[Any]) -> "Submission":
        if isinstance(rows, Submission):
            return rows
        rr = [_as_row(r) for r in rows]
        return cls([r.seriesuid for r in rr], [(r.x, r.y, r.z) for r in rr], [r.probability for r in rr])

    def __len__(self) -> int:
        return len(self.seriesuid)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return Submission(self.seriesuid[i], self.xyz[i], self.probability[i])
        x, y, z = self.xyz[i].tolist()
        return SubmissionRow(self.seriesuid[i], x, y, z, float(self.probability[i]))


# ---------------------------------------------------------------------------------------------------------------
# reading
def _read_table(path: str | os.PathLike, columns: Sequence[str]) -> tuple[list[int], dict[str, list[str]]]:
    """Line numbers and the named columns (as text) of a CSV whose header holds ``columns``."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "no such file" if not p.exists() else "not a file")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(p, "not a text CSV file (cannot decode as UTF-8)") from None
    except OSError as exc:
        raise InputError(p, f"cannot read ({exc.strerror or exc})") from None
    try:
        lines = list(csv.reader(text.splitlines()))
    except csv.Error as exc:
        raise InputError(p, f"not a valid CSV file ({exc})") from None
    body = [(n, f) for n, f in enumerate(lines, start=1) if f and (len(f) > 1 or f[0].strip())]
    if not body:
        raise InputError(p, f"empty file (expected a header {','.join(columns)})")
    header_line, header = body[0][0], [f.strip() for f in body[0][1]]
    missing = [c for c in columns if c not in header]
    if missing:
        raise InputError(p, f"line {header_line}: header {','.join(header)!r} lacks column(s) "
                            f"{', '.join(missing)} (expected {','.join(columns)})")
    body = body[1:]
    width = len(header)
    wrong = [(n, len(f)) for n, f in body if len(f) != width]
    if wrong:
        n, k = wrong[0]
        raise InputError(p, f"line {n}: {k} field(s), the header has {'only ' if k > width else ''}{width}")
    cols = {}
    for c in columns:
        i = header.index(c)
        cols[c] = [f[i] for _, f in body]
    return [n for n, _ in body], cols


def _floats(path: str | os.PathLike, lines: list[int], column: str, texts: list[str]) -> np.ndarray:
    """A column as float64, or an InputError naming the first bad line."""
    try:
        v = np.array(texts, dtype=float) if texts else np.zeros(0)
    except ValueError:
        v = None
    bad = None
    if v is None:
        for n, t in zip(lines, texts):
            try:
                float(t)
            except ValueError:
                bad = (n, t, "is not a number")
                break
    else:
        idx = np.flatnonzero(~np.isfinite(v))
        if idx.size:
            bad = (lines[idx[0]], texts[idx[0]], "is not a finite number")
    if bad is not None:
        raise InputError(path, f"line {bad[0]}: {column} {bad[1].strip()!r} {bad[2]}")
    return v


def _uids(path: str | os.PathLike, lines: list[int], texts: list[str]) -> list[str]:
    uids = [t.strip() for t in texts]
    for n, u in zip(lines, uids):
        if not u:
            raise InputError(path, f"line {n}: empty seriesuid")
    return uids


def read_annotations(path: str | os.PathLike) -> dict[str, list[Annotation]]:
    """``annotations.csv`` -> {seriesuid: [Annotation, ...]} in file order."""
    lines, cols = _read_table(path, ANNOTATION_COLUMNS)
    uids = _uids(path, lines, cols["seriesuid"])
    vals = np.stack([_floats(path, lines, c, cols[c]) for c in ANNOTATION_COLUMNS[1:]], axis=1).reshape(-1, 4)
    out: dict[str, list[Annotation]] = {}
    for uid, (x, y, z, d) in zip(uids, vals.tolist()):
        out.setdefault(uid, []).append(Annotation(x, y, z, d))
    return out


def read_excluded(path: str | os.PathLike) -> dict[str, list[Annotation]]:
    """``annotations_excluded.csv`` (irrelevant findings; same format, diameters may be -1)."""
    return read_annotations(path)


def read_seriesuids(path: str | os.PathLike) -> list[str]:
    """``seriesuids.csv``: one UID per line (first field), no header; duplicates are an error."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "no such file")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as exc:
        raise InputError(p, f"cannot read as text ({exc})") from None
    uids: list[str] = []
    seen: dict[str, int] = {}
    for line_no, fields in enumerate(csv.reader(text.splitlines()), start=1):
        if not fields or not fields[0].strip():
            if any(f.strip() for f in fields):
                raise InputError(p, f"line {line_no}: empty seriesuid")
            continue
        uid = fields[0].strip()
        if line_no == 1 and uid.lower() == "seriesuid":
            continue
        if uid in seen:
            raise InputError(p, f"line {line_no}: seriesuid {uid} repeats line {seen[uid]}")
        seen[uid] = line_no
        uids.append(uid)
    if not uids:
        raise InputError(p, "no series UIDs in the file")
    return uids


def read_submission(path: str | os.PathLike) -> Submission:
    """A submission CSV -> a :class:`Submission` (a sequence of :class:`SubmissionRow` in file order;
    probabilities may be any finite real number: only their order counts)."""
    lines, cols = _read_table(path, SUBMISSION_COLUMNS)
    uids = _uids(path, lines, cols["seriesuid"])
    xyz = np.stack([_floats(path, lines, c, cols[c]) for c in ("coordX", "coordY", "coordZ")], axis=1).reshape(-1, 3)
    return Submission(uids, xyz, _floats(path, lines, "probability", cols["probability"]))


# ---------------------------------------------------------------------------------------------------------------
# writing
def _fmt(v: float) -> str:
    return repr(float(v))  # shortest text that reads back to the same float


def write_annotations(path: str | os.PathLike, annotations: dict[str, Sequence[Annotation]]) -> Path:
    p = Path(path)
    with open(p, "w", newline="") as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(ANNOTATION_COLUMNS)
        for uid, items in annotations.items():
            for a in items:
                wr.writerow([uid, _fmt(a.x), _fmt(a.y), _fmt(a.z), _fmt(a.diameter_mm)])
    return p


def write_seriesuids(path: str | os.PathLike, uids: Iterable[str]) -> Path:
    p = Path(path)
    p.write_text("".join(f"{u}\n" for u in uids))
    return p


def _as_row(r: Any) -> SubmissionRow:
    if isinstance(r, SubmissionRow):
        return r
    if isinstance(r, dict):
        return SubmissionRow(str(r["seriesuid"]), float(r["coordX"]), float(r["coordY"]), float(r["coordZ"]),
                             float(r["probability"]))
    uid, x, y, z, prob = r
    return SubmissionRow(str(uid), float(x), float(y), float(z), float(prob))


def write_submission(path: str | os.PathLike, rows: Iterable[Any]) -> Path:
    """Write CAD marks: a :class:`Submission`, or :class:`SubmissionRow` objects, ``(uid, x, y, z, probability)``
    tuples or dicts with the columns."""
    p = Path(path)
    if not p.parent.exists():
        raise InputError(p, f"output folder {p.parent} does not exist")
    with open(p, "w", newline="") as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(SUBMISSION_COLUMNS)
        if isinstance(rows, Submission):
            for uid, (x, y, z), prob in zip(rows.seriesuid, rows.xyz.tolist(), rows.probability.tolist()):
                wr.writerow([uid, _fmt(x), _fmt(y), _fmt(z), _fmt(prob)])
        else:
            for r in map(_as_row, rows):
                wr.writerow([r.seriesuid, _fmt(r.x), _fmt(r.y), _fmt(r.z), _fmt(r.probability)])
    return p


# ---------------------------------------------------------------------------------------------------------------
# findings
def annotation_to_finding(seriesuid: str, ann: Annotation, kind: str = "nodule", observer: str = "annotations",
                          observer_type: str = "person", label: str = "") -> Finding:
    """A ground-truth annotation as a shared :class:`Finding` (world LPS mm; negative diameters become None)."""
    return Finding(center_lps=ann.center, kind=kind, diameter_mm=ann.diameter_mm if ann.diameter_mm > 0 else None,
                   observer=observer, observer_type=observer_type, source=seriesuid, label=label)  # type: ignore[arg-type]


def finding_to_annotation(f: Finding) -> Annotation:
    d = f.diameter_mm if f.diameter_mm is not None else -1.0
    return Annotation(*f.center_lps, float(d))


def findings_to_submission(seriesuid: str, findings: Iterable[Finding]) -> list[SubmissionRow]:
    """Detector findings of one scan as submission rows (findings without a score get probability 0)."""
    return [SubmissionRow(seriesuid or f.source, *f.center_lps, float(f.score if f.score is not None else 0.0))
            for f in findings]


def submission_to_findings(rows: Iterable[SubmissionRow], observer: str = "submission") -> list[Finding]:
    return [Finding(center_lps=r.center, kind="nodule", score=r.probability, score_kind="probability",
                    observer=observer, observer_type="device", source=r.seriesuid) for r in rows]


# ---------------------------------------------------------------------------------------------------------------
# voxels
def annotations_to_voxel(annotations: Sequence[Annotation], geometry: Geometry) -> np.ndarray:
    """Continuous voxel indices (N, 3) in (i, j, k) order of the annotation centres."""
    if not annotations:
        return np.zeros((0, 3))
    pts = np.array([a.center for a in annotations], dtype=float)
    return np.atleast_2d(geometry.world_to_voxel(pts))


def annotations_to_array_index(annotations: Sequence[Annotation], geometry: Geometry) -> list[tuple[int, int, int] | None]:
    """Nearest array index (k, j, i) of each annotation centre, None when outside the grid."""
    return [geometry.world_to_array_index(a.center) for a in annotations]


def voxel_to_annotation(ijk: Sequence[float], geometry: Geometry, diameter_mm: float) -> Annotation:
    """An annotation at continuous voxel index (i, j, k) of ``geometry``."""
    x, y, z = geometry.voxel_to_world(np.asarray(ijk, dtype=float))
    return Annotation(float(x), float(y), float(z), float(diameter_mm))


__all__ = [
    "Annotation", "SubmissionRow", "Submission", "ANNOTATION_COLUMNS", "SUBMISSION_COLUMNS", "read_annotations", "read_excluded",
    "read_seriesuids", "read_submission", "write_annotations", "write_seriesuids", "write_submission",
    "annotation_to_finding", "finding_to_annotation", "findings_to_submission", "submission_to_findings",
    "annotations_to_voxel", "annotations_to_array_index", "voxel_to_annotation",
]
