"""Scan files and folders for images (headers only) and group them patient > study > series.

DICOM series are split the way Slicer splits them: by SeriesInstanceUID, image size and rounded
ImageOrientationPatient; when positions then repeat, also by TemporalPositionIdentifier, AcquisitionNumber or
EchoNumbers (whichever separates them). Multi-frame files are split into stacks (see dicom_enhanced).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from reviewer.errors import InputError
from reviewer.io import formats
from reviewer.io.dicom_headers import FileHeader, read_header
from reviewer.io.slices import SliceRef
from reviewer.jobs import JobToken

PROGRESS_EVERY = 25
SPLIT_TAGS = (("temporal_position", "time"), ("acquisition_number", "acq"), ("echo_number", "echo"))


@dataclass
class SeriesInfo:
    uid: str
    patient_name: str = ""
    patient_id: str = ""
    study_uid: str = ""
    study_date: str = ""
    study_description: str = ""
    series_description: str = ""
    series_number: int | None = None
    modality: str = ""
    n_images: int = 0
    dims: tuple[int, int, int] = (0, 0, 0)  # (columns, rows, slices)
    files: list[str] = field(default_factory=list)
    kind: str = "image"
    format: str = "dicom"
    sop_class_name: str = ""
    warnings: list[str] = field(default_factory=list)
    # spacing (i, j, k) mm, origin LPS mm, direction (columns = axes), orientation code; from headers only
    geometry: dict[str, Any] | None = None
    slices: list[SliceRef] = field(default_factory=list, repr=False, compare=False)  # loader's cache

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("uid", "patient_name", "patient_id", "study_uid", "study_date",
                                           "study_description", "series_description", "series_number",
                                           "modality", "n_images", "kind", "format", "sop_class_name")}
        d["dims"] = list(self.dims)
        d["files"] = list(self.files)
        d["warnings"] = list(self.warnings)
        d["geometry"] = self.geometry
        return d


def geometry_summary(spacing, origin, direction) -> dict[str, Any]:
    from reviewer.geometry import direction_letters

    d = np.asarray(direction, dtype=float).reshape(3, 3)
    code = "".join(direction_letters(d[:, a], max_letters=1)[1] for a in range(3))
    return {"spacing": [round(float(v), 6) for v in spacing], "origin": [round(float(v), 6) for v in origin],
            "direction": [[round(float(v), 6) for v in row] for row in d], "orientation": code}


def _dicom_geometry(slices: list[SliceRef]) -> dict[str, Any] | None:
    """Geometry of a classic or enhanced series from its headers (the loader's own ordering, no pixels)."""
    from reviewer.io.dicom_series import order_slices

    if not slices or slices[0].pixel_spacing is None or any(s.ipp is None or s.iop is None for s in slices):
        return None
    try:
        _, facts = order_slices(slices)
    except Exception:  # noqa: BLE001 - a summary only; the loader reports problems properly
        return None
    ps = slices[0].pixel_spacing
    direction = np.stack([facts["row"], facts["col"], facts["normal"]], axis=1)
    return geometry_summary((ps[1], ps[0], facts["step"]), facts["origin"], direction)


@dataclass
class Catalog:
    series: list[SeriesInfo] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"series": [s.to_json() for s in self.series], "problems": list(self.problems)}

    def grouped(self) -> dict[str, dict[str, list[SeriesInfo]]]:
        out: dict[str, dict[str, list[SeriesInfo]]] = {}
        for s in self.series:
            patient = s.patient_name or s.patient_id or "(unknown patient)"
            out.setdefault(patient, {}).setdefault(s.study_uid or "(no study)", []).append(s)
        return out

    def image_series(self) -> list[SeriesInfo]:
        return [s for s in self.series if s.kind == "image"]

    def find(self, uid: str) -> SeriesInfo | None:
        for s in self.series:
            if s.uid == uid:
                return s
        base = [s for s in self.series if s.uid.split("#")[0] == uid]
        return base[0] if len(base) == 1 else None


def _iter_files(paths: Iterable[str | os.PathLike], problems: list[str]) -> list[str]:
    files: list[str] = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            found = []
            for root, dirs, names in os.walk(p):
                dirs.sort()
                found += [os.path.join(root, n) for n in sorted(names)]
            if not found:
                problems.append(f"{p}: empty folder (no files)")
            files += found
        elif os.path.isfile(p):
            files.append(p)
        else:
            problems.append(f"{p}: no such file or folder")
    return files


def scan_paths(paths: Iterable[str | os.PathLike] | str | os.PathLike, token: JobToken | None = None) -> Catalog:
    """Find every image under ``paths`` (recursive), reading headers only."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    catalog = Catalog()
    files = _iter_files(paths, catalog.problems)
    headers: list[FileHeader] = []
    multiframe: list[tuple[FileHeader, Any]] = []
    explicit = {os.fspath(p) for p in paths}
    for n, path in enumerate(files, 1):
        if token is not None and (n % PROGRESS_EVERY == 0 or n == len(files)):
            token.progress(n, len(files), f"scanning {n}/{len(files)} files")
        fmt = formats.non_dicom_format(path)
        try:
            if fmt is not None:
                catalog.series.append(_non_dicom_info(path, fmt))
                continue
            if formats.is_companion(path) and path not in explicit and not formats.has_dicm_preamble(path):
                continue
            header, ds = read_header(path)
            if header.kind == "image" and header.is_multiframe:
                header, ds = read_header(path, full=True)
                multiframe.append((header, ds))
            else:
                headers.append(header)
        except InputError as exc:
            catalog.problems.append(str(exc))
    catalog.series += _group_dicom(headers, multiframe)
    if not catalog.series and files and not catalog.problems:
        catalog.problems.append(f"{', '.join(map(os.fspath, paths))}: no DICOM or supported image files found")
    catalog.series.sort(key=lambda s: (s.patient_name, s.study_date, s.study_uid, s.series_number or 0, s.uid))
    return catalog


def _non_dicom_info(path: str, fmt: str) -> SeriesInfo:
    if fmt == "fastmri":
        from reviewer.io.fastmri import fastmri_info

        return fastmri_info(path)
    from reviewer.io.itk_io import itk_info

    return itk_info(path, fmt)


def _info_from(h: FileHeader, uid: str, slices: list[SliceRef], label: str = "") -> SeriesInfo:
    desc = h.series_description + (f" [{label}]" if label else "")
    files = list(dict.fromkeys(s.path for s in slices))
    return SeriesInfo(uid=uid, patient_name=h.patient_name, patient_id=h.patient_id, study_uid=h.study_uid,
                      study_date=h.study_date, study_description=h.study_description, series_description=desc,
                      series_number=h.series_number, modality=h.modality, n_images=len(slices),
                      dims=(h.columns, h.rows, len(slices)), files=files, kind=h.kind, format="dicom",
                      sop_class_name=h.sop_class_name, slices=slices,
                      geometry=_dicom_geometry(slices) if h.kind == "image" else None)


def _has_repeated_positions(slices: list[SliceRef]) -> bool:
    pos = [tuple(np.round(s.ipp, 2)) for s in slices if s.ipp is not None]
    return len(pos) != len(set(pos))


def _split_classic(slices: list[SliceRef]) -> list[tuple[str, list[SliceRef]]]:
    """Split one (series, size, orientation) group further only when positions repeat."""
    if not _has_repeated_positions(slices):
        return [("", slices)]
    for attr, short in SPLIT_TAGS:
        values = {getattr(s.header, attr) for s in slices}
        if len(values) > 1:
            parts: dict[Any, list[SliceRef]] = defaultdict(list)
            for s in slices:
                parts[getattr(s.header, attr)].append(s)
            if not any(_has_repeated_positions(p) for p in parts.values()):
                return [(f"{short} {k}", v) for k, v in sorted(parts.items(), key=lambda kv: str(kv[0]))]
    return [("", slices)]


def _group_dicom(headers: list[FileHeader], multiframe: list[tuple[FileHeader, Any]]) -> list[SeriesInfo]:
    from reviewer.io.dicom_enhanced import classic_multiframe_positions, frame_slices

    groups: dict[tuple, list[tuple[str, SliceRef]]] = defaultdict(list)
    non_image: dict[str, list[FileHeader]] = defaultdict(list)
    for h in headers:
        if h.kind != "image":
            non_image[h.series_uid or h.path].append(h)
            continue
        iop = tuple(np.round(h.iop, 3)) if h.iop is not None else None
        groups[(h.series_uid, h.rows, h.columns, iop, "classic")].append(("", SliceRef.from_header(h)))
    for h, ds in multiframe:
        items = frame_slices(ds, h)
        classic_multiframe_positions(ds, h, [r for _, _, r in items])
        for key, label, ref in items:
            groups[(h.series_uid, h.rows, h.columns, key, "multiframe")].append((label, ref))

    by_series: dict[str, list[tuple[str, list[SliceRef]]]] = defaultdict(list)
    for key, items in groups.items():
        refs = [r for _, r in items]
        if key[-1] == "classic":
            by_series[key[0]] += _split_classic(refs)
        else:
            by_series[key[0]].append((items[0][0], refs))
    infos: list[SeriesInfo] = []
    for series_uid, parts in by_series.items():
        parts.sort(key=lambda p: (min(r.order for r in p[1]), p[0]))
        if len(parts) > 1:  # keep only the label words that tell the parts apart
            common = set.intersection(*(set(lbl.split(", ")) for lbl, _ in parts))
            parts = [(", ".join(w for w in lbl.split(", ") if w not in common) or lbl, refs) for lbl, refs in parts]
        for n, (label, refs) in enumerate(parts, 1):
            uid = series_uid if len(parts) == 1 else f"{series_uid}#{n}"
            h = refs[0].header
            info = _info_from(h, uid, refs, label if len(parts) > 1 else "")
            if len(parts) > 1:
                info.warnings.append(f"series {series_uid} split into {len(parts)} volumes ({label or 'part'} "
                                     f"is {n} of {len(parts)})")
            infos.append(info)
    for series_uid, hs in non_image.items():
        h = hs[0]
        info = SeriesInfo(uid=series_uid, patient_name=h.patient_name, patient_id=h.patient_id,
                          study_uid=h.study_uid, study_date=h.study_date, study_description=h.study_description,
                          series_description=h.series_description, series_number=h.series_number,
                          modality=h.modality, n_images=len(hs), dims=(0, 0, 0), files=[x.path for x in hs],
                          kind="non-image", format="dicom", sop_class_name=h.sop_class_name)
        infos.append(info)
    return infos


def _date(d: str) -> str:
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 and d.isdigit() else d


def format_catalog(catalog: Catalog) -> str:
    """A readable table: patient, date, modality, description, images, dims, UID."""
    head = ("Patient", "Date", "Mod", "Description", "Images", "Dims (c x r x s)", "Spacing (mm)", "Orient",
            "Origin (LPS mm)", "UID / path")
    rows = []
    for patient, studies in catalog.grouped().items():
        for study_uid, series in studies.items():
            for s in series:
                dims = "x".join(str(d) for d in s.dims) if s.kind == "image" else s.sop_class_name or "non-image"
                g = s.geometry or {}
                spacing = "x".join(f"{v:.4g}" for v in g["spacing"]) if g else "-"
                origin = ", ".join(f"{v:.1f}" for v in g["origin"]) if g else "-"
                rows.append((patient[:24], _date(s.study_date), s.modality or s.format, s.series_description[:40],
                             str(s.n_images), dims, spacing, g.get("orientation", "-"), origin, s.uid))
    if not rows:
        return "no series found"
    widths = [max(len(r[c]) for r in rows + [head]) for c in range(len(head))]
    line = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    out = [line(head), line(tuple("-" * w for w in widths))] + [line(r) for r in rows]
    warn = [f"  ! {s.uid}: {w}" for s in catalog.series for w in s.warnings]
    return "\n".join(out + warn)


def catalog_json_text(catalog: Catalog) -> str:
    return json.dumps(catalog.to_json(), indent=2)


def paths_exist(paths: Iterable[str]) -> bool:
    return all(Path(p).exists() for p in paths)
