"""Export one case (image + findings + masks + derived images) as DICOM and research formats, de-identified by
default, with a manifest of every file written.

Layout of ``out_dir``::

    dicom/source/IMG_0001.dcm ...   the source series (de-identified copy, or built from a non-DICOM volume)
    dicom/derived-N/IMG_0001.dcm    each derived image as a new DERIVED\\SECONDARY series
    dicom/sr/SR_NN_<observer>.dcm   findings, one Comprehensive 3D SR (TID 1500) per observer
    dicom/seg/SEG_NN_<name>.dcm     masks (BINARY) and heat maps (FRACTIONAL)
    nifti/image.nii.gz + image.json the source volume with a sidecar (findings in world mm, provenance, models)
    nifti/mask-N.nii.gz, nifti/derived-N.nii.gz (+ .json)
    png/finding-NN.png              key images with the overlays as shown
    manifest.json                   every file with its SHA-256, what was de-identified and how
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

import reviewer
from reviewer.errors import InputError, ReviewerError
from reviewer.export.case import CaseExport
from reviewer.export.deid import Deidentifier
from reviewer.export.deid_profile import describe_profile
from reviewer.findings import Finding
from reviewer.geometry import Volume
from reviewer.jobs import JobToken

FORMATS = ("dicom", "nifti", "png")
TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
         "ReferringPhysicianName", "StudyID", "AccessionNumber")


class PhiLeakError(ReviewerError):
    """An identifying value of the source was found in a de-identified export (the export is refused)."""


@dataclass
class ExportResult:
    out_dir: Path
    manifest: Path
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)  # path, kind, description of each file
    source: str = ""  # what the source was (no identifying detail)


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    items = [s.strip().lower() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    bad = [s for s in items if s not in FORMATS]
    if bad or not items:
        raise InputError(None, f"unknown export format(s) {', '.join(bad) or '(none)'}; use {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(items))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def safe_name(text: str, fallback: str = "x") -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._")[:40]
    return s or fallback


def finding_label(f: Finding) -> str:
    parts = [f.tracking_id or f.kind]
    if f.diameter_mm:
        parts.append(f"{f.diameter_mm:.0f} mm")
    if f.score is not None and f.score_kind == "probability":
        parts.append(f"p={f.score:.2f}")
    elif f.score is not None and f.score_kind == "rating":
        parts.append(f"rating {f.score:g}")
    return " ".join(parts)


# -- model cards ---------------------------------------------------------------------------------------------------
def model_cards(names: Iterable[str]) -> list[dict[str, Any]]:
    """The cards of the models named (weights by SHA-256 only, never by local path)."""
    from reviewer.models.cards import find_card

    out = []
    for name in dict.fromkeys(n for n in names if n):
        try:
            card = find_card(name)
        except (InputError, OSError, ValueError):
            out.append({"name": name, "card": "not found among the model cards"})
            continue
        d = card.to_json()
        d["weights"] = {k: v for k, v in card.weights.items() if k != "file"}
        out.append(d)
    return out


# -- PHI scan -------------------------------------------------------------------------------------------------------
def _forms(value: str) -> list[bytes]:
    out = {value.encode("utf-8"), value.encode("latin-1", "ignore")}
    if len(value) % 2:
        out.add((value + " ").encode("utf-8"))
    return [v for v in out if v]


def scan_for_values(paths: Iterable[Path], values: Iterable[str]) -> list[tuple[Path, str]]:
    """(file, value) for every value found in a file's bytes (DICOM files without their pixel data)."""
    import pydicom

    vals = [v for v in values if v]
    hits = []
    for p in paths:
        if p.name.endswith(".nii.gz") or p.suffix == ".nii":
            import gzip

            opener = gzip.open if p.name.endswith(".gz") else open
            with opener(p, "rb") as f:
                data = f.read(352 + 4096)  # header and extensions, not voxels
        else:
            data = p.read_bytes()
        if p.suffix == ".dcm":
            ds = pydicom.dcmread(p)
            for kw in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
                if kw in ds:
                    del ds[kw]
            from io import BytesIO

            buf = BytesIO()
            ds.save_as(buf, enforce_file_format=False)
            data = buf.getvalue()
        elif p.suffix == ".png":
            continue  # pixels only (captions were scrubbed before drawing)
        for v in vals:
            if any(form in data for form in _forms(v)):
                hits.append((p, v))
    return hits


# -- the export -------------------------------------------------------------------------------------------------------
class _Writer:
    """Records each file an export writes (for the manifest, and to remove them if the export fails)."""

    SUBDIRS = ("dicom", "nifti", "png")

    def __init__(self, out_dir: Path):
        self.out = out_dir
        self.files: list[dict[str, Any]] = []
        self._replace_previous()

    def _replace_previous(self) -> None:
        """An earlier reviewer export in this folder is replaced; other files there make the export stop."""
        used = [self.out / d for d in self.SUBDIRS if (self.out / d).exists()]
        if not used:
            return
        try:
            previous = json.loads((self.out / "manifest.json").read_text()).get("software", "").startswith("reviewer")
        except (OSError, ValueError, AttributeError):
            previous = False
        if not previous:
            raise InputError(self.out, "already holds dicom/, nifti/ or png/ folders that are not a reviewer "
                                       "export: choose an empty output folder")
        import shutil

        for d in used:
            shutil.rmtree(d)
        (self.out / "manifest.json").unlink()

    def add(self, path: Path, kind: str, description: str = "") -> Path:
        self.files.append({"path": path, "kind": kind, "description": description})
        return path

    def remove_all(self) -> None:
        """Delete what this export wrote (also files written but not yet recorded)."""
        for d in self.SUBDIRS:
            root = self.out / d
            if not root.exists():
                continue
            import shutil

            shutil.rmtree(root, ignore_errors=True)
        (self.out / "manifest.json").unlink(missing_ok=True)


def _observer_groups(findings: Sequence[Finding], observers: Sequence[tuple[str, str]] = ()
                     ) -> list[tuple[str, str, list[Finding]]]:
    groups: dict[tuple[str, str], list[Finding]] = {(o, t): [] for o, t in observers}
    for f in findings:
        groups.setdefault((f.observer or "reviewer", f.observer_type), []).append(f)
    return [(o, t, fs) for (o, t), fs in groups.items()]


def export_case(case: CaseExport, out_dir: str | os.PathLike, formats: Sequence[str] = FORMATS,
                keep_phi: bool = False, shift_days: int | None = None, deid: Deidentifier | None = None,
                token: JobToken | None = None, manifest: bool = True) -> ExportResult:
    """Write ``case`` under ``out_dir`` (see the module docstring); de-identified unless ``keep_phi``.

    ``deid`` lets several cases (a reader study) share one UID map and pseudonym key. Raises
    :class:`PhiLeakError` when a de-identified export would still contain an identifying value of the source.
    """
    formats = parse_formats(formats)
    if keep_phi and (shift_days or deid is not None):
        raise InputError(None, "--keep-phi keeps the identity as is: it cannot be combined with --shift-dates")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vol = case.volume
    if deid is None and not keep_phi:
        deid = Deidentifier(shift_days=shift_days)
    if deid is not None:
        deid.add_source_paths([vol.source] + list((vol.metadata or {}).get("files") or []))
    w = _Writer(out)
    try:
        return _export(case, out, formats, keep_phi, deid, token, manifest, w)
    except BaseException:
        w.remove_all()  # a refused, failed or cancelled export leaves nothing unchecked behind
        raise


def _export(case: CaseExport, out: Path, formats: tuple[str, ...], keep_phi: bool, deid: Deidentifier | None,
            token: JobToken | None, manifest: bool, w: "_Writer") -> ExportResult:
    scrub = deid.scrub_text if deid is not None else (lambda s: s)
    progress = token.progress if token is not None else (lambda *a, **k: None)
    progress(0, 100, "reading the source")
    images, modality, source_note, warnings = _source_images(case, deid)
    findings = [_scrub_finding(f, scrub) for f in case.findings]
    progress(15, 100, "DICOM")
    if "dicom" in formats:
        warnings += _write_dicom(case, findings, images, modality, source_note, scrub, w, out)
    progress(55, 100, "NIfTI")
    if "nifti" in formats:
        _write_nifti(case, findings, images, deid, keep_phi, source_note, w, out)
    progress(75, 100, "key images")
    if "png" in formats:
        _write_png(case, findings, scrub, w, out)
    progress(90, 100, "checking and writing the manifest")

    scan: dict[str, Any] = {"performed": False, "reason": "identity kept"}
    if deid is not None:
        warnings = [scrub(x) for x in warnings + deid.warnings]
        paths = [f["path"] for f in w.files]
        hits = scan_for_values(paths, deid.searchable())
        if hits:
            where = ", ".join(sorted({str(p.relative_to(out)) for p, _ in hits}))
            raise PhiLeakError(f"{out}: identifying values of the source remain in {where}; export refused")
        scan = {"performed": True, "files": len(paths), "identifying_values": len(deid.phi),
                "source_uids": len(deid.uid_map), "source_paths": len(deid.paths), "found": 0,
                "scope": "DICOM files without pixel data, JSON, NIfTI headers (PNG captions are scrubbed before "
                         "drawing)"}
    result = ExportResult(out, out / "manifest.json", [f["path"] for f in w.files], warnings, list(w.files),
                          source_note)
    if manifest:
        write_manifest(out, w.files, deid, keep_phi, scrub(case.name), source_note, warnings,
                       extra={"phi_scan": scan})
        result.files.append(result.manifest)
    progress(100, 100, "done")
    return result


def _source_images(case: CaseExport, deid: Deidentifier | None) -> tuple[list, str, str, list[str]]:
    """The source series to export and reference: a (de-identified) copy of the DICOM source, or a series built
    from the volume. Returns (datasets in k order, modality, a description without identifying detail, warnings).
    """
    from reviewer.export.dicom_images import choose_modality, source_datasets, write_image_series

    vol = case.volume
    warnings = list(vol.warnings)
    src = source_datasets(vol)
    modality = (src[0].get("Modality", "") if src else "") or choose_modality(vol, case.modality)
    if src is not None:
        if deid is not None:
            deid.collect(src)
            images = [deid.apply(s) for s in src]
        else:
            images = [copy.deepcopy(s) for s in src]
        source_note = f"DICOM series, {len(src)} images"
    else:
        fmt = (vol.metadata or {}).get("format") or Path(vol.source).suffix.lstrip(".") or "volume"
        side = (vol.metadata or {}).get("sidecar") or {}
        if deid is not None:
            deid.collect([_identity_dataset(side, vol.source)])
        study_uid = None
        if case.patient_key:
            from pydicom.uid import generate_uid

            study_uid = generate_uid(prefix="2.25.", entropy_srcs=["reviewer-study", case.patient_key])
        header = _enhanced_header(vol)  # an enhanced multi-frame source: keep its patient, study and frame
        if header is not None and deid is not None:
            deid.collect([header])
        what = "an enhanced multi-frame DICOM" if header is not None else f"a {fmt}"
        built = write_image_series(vol, header, modality=modality, primary=True, series_number=1, study_uid=study_uid,
                                   series_description=f"built by reviewer from {what} volume (not original DICOM)")
        if header is None:
            for ds in built:  # identity from the sidecar (a pseudonym of it, or of the file, when de-identifying)
                ds.PatientName = str(side.get("PatientName", ""))
                ds.PatientID = str(side.get("PatientID", ""))
        identity = str(built[0].get("PatientID", "") or case.patient_key or vol.source)
        images = [deid.apply(ds, collect=False, identity=identity) for ds in built] if deid is not None else built
        source_note = f"{fmt} volume built into a DICOM {modality} series of {len(images)} images"
        warnings.append(f"the source is not a DICOM series of single-frame images: a {modality} series was built "
                        "from the volume for SR/SEG to reference (its SeriesDescription says so)")
    for ds in images:  # type 2 attributes SR / SEG copy from their evidence must exist (empty is fine)
        for kw in TYPE2:
            if kw not in ds:
                setattr(ds, kw, "")
    return images, modality, source_note, warnings


def _write_dicom(case: CaseExport, findings: list[Finding], images: list, modality: str, source_note: str,
                 scrub, w: _Writer, out: Path) -> list[str]:
    """Source series, derived series, one SR per observer and one SEG per mask; returns warnings."""
    from reviewer.export.dicom_images import save_series, write_image_series
    from reviewer.export.dicom_seg import mask_to_seg
    from reviewer.export.dicom_sr import findings_to_sr

    warnings = []
    for p in save_series(images, out / "dicom" / "source", "IMG"):
        w.add(p, "dicom-image", f"source series ({source_note})")
    for n, d in enumerate(case.derived, 1):
        text = scrub(d.description)
        model = f"; model {d.model}" if d.model else ""
        series = write_image_series(
            d.volume, images[0], modality=modality, series_description=f"DERIVED {d.kind}: {text}",
            derivation=f"{text} (reviewer {reviewer.__version__}{model}); not an original acquisition",
            derivation_code=("113077", "Volume editing") if d.kind in ("synthetic-nodule", "fnaf") else None,
            sources=images, series_number=900 + n)
        for p in save_series(series, out / "dicom" / f"derived-{n}", "IMG"):
            w.add(p, "dicom-derived-image", text)
    for n, (observer, otype, group) in enumerate(_observer_groups(findings, case.observers), 1):
        name = observer if otype == "device" or observer.endswith("^") else f"{observer}^"  # PN: family name
        who = "reader" if otype == "person" else "algorithm"
        sr = findings_to_sr(group, images, observer=name, observer_type=otype, series_number=950 + n,
                            case_score=case.case_scores.get(observer),
                            series_description=f"reviewer findings ({who} {scrub(observer)})")
        p = out / "dicom" / "sr" / f"SR_{n:02d}_{safe_name(observer)}.dcm"
        p.parent.mkdir(parents=True, exist_ok=True)
        sr.save_as(p, enforce_file_format=True)
        w.add(p, "dicom-sr", f"{len(group)} findings of {who} {observer} (Comprehensive 3D SR, TID 1500)")
    for n, layer in enumerate(case.masks, 1):
        try:
            seg = mask_to_seg(layer, images, series_number=960 + n)
        except ValueError as exc:
            warnings.append(f"mask {layer.name}: not exported as SEG ({exc})")
            continue
        p = out / "dicom" / "seg" / f"SEG_{n:02d}_{safe_name(scrub(layer.name))}.dcm"
        p.parent.mkdir(parents=True, exist_ok=True)
        seg.save_as(p, enforce_file_format=True)
        w.add(p, "dicom-seg", f"{'fractional heat map' if layer.kind == 'heatmap' else 'binary mask'} "
                              f"{scrub(layer.name)}")
    return warnings


def _write_png(case: CaseExport, findings: list[Finding], scrub, w: _Writer, out: Path) -> None:
    from reviewer.export.key_images import write_key_images
    from reviewer.view.overlays import HeatMapOverlay, LabelMapOverlay

    vol = case.volume
    overlays = []
    for layer in case.masks:
        mv = Volume(layer.array if layer.kind == "heatmap" else layer.array.astype(np.int32), vol.geometry)
        overlays.append(HeatMapOverlay(mv, name=layer.name, range=layer.value_range) if layer.kind == "heatmap"
                        else LabelMapOverlay(mv, name=layer.name))
    for p in write_key_images(vol, findings, overlays, out / "png", label=lambda f: scrub(finding_label(f)),
                              caption=scrub):
        w.add(p, "png", "key image with the overlays as shown")


def _enhanced_header(vol: Volume):
    """The header (no pixels) of an enhanced multi-frame DICOM source, or None for other sources."""
    meta = vol.metadata or {}
    if meta.get("format") != "dicom" or not meta.get("files"):
        return None
    import pydicom

    return pydicom.dcmread(meta["files"][0], stop_before_pixels=True)


def _identity_dataset(side: dict[str, Any], source: str):
    """The identifying values of a non-DICOM source: its sidecar's patient fields and its file path."""
    from pydicom.dataset import Dataset

    ds = Dataset()
    if source:
        ds.PatientComments = os.path.abspath(source)  # an LT slot whose action is X: collected as identifying
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "InstitutionName", "AccessionNumber"):
        if side.get(kw):
            setattr(ds, kw, str(side[kw]))
    return ds


def _scrub_finding(f: Finding, scrub) -> Finding:
    g = copy.deepcopy(f)
    g.tracking_id, g.label = scrub(g.tracking_id), scrub(g.label)
    g.source = scrub(g.source)
    return g


def _write_nifti(case: CaseExport, findings: list[Finding], images: list, deid: Deidentifier | None,
                 keep_phi: bool, source_note: str, w: _Writer, out: Path) -> None:
    from reviewer.io.writer import write_volume

    folder = out / "nifti"
    folder.mkdir(parents=True, exist_ok=True)
    vol = case.volume
    scrub_json = deid.scrub_json if deid is not None else (lambda x: x)
    g = vol.geometry
    image = write_volume(vol, folder / "image.nii.gz", sidecar=False)
    w.add(image, "nifti", "source volume")
    items = []
    for f in findings:
        d = f.to_json()
        d["voxel_ijk"] = [round(float(v), 3) for v in g.world_to_voxel(f.center_lps)]
        if deid is not None:
            d["source"] = deid.map_uid(d["source"]) if d.get("source", "").replace(".", "").isdigit() else ""
        items.append(d)
    masks = []
    for n, layer in enumerate(case.masks, 1):
        arr = layer.array.astype(np.float32) if layer.kind == "heatmap" else layer.array.astype(np.uint16)
        p = write_volume(Volume(arr, g, name=layer.name), folder / f"mask-{n}.nii.gz", sidecar=False)
        w.add(p, "nifti", f"{layer.kind} {layer.name}")
        masks.append({"file": p.name, "name": layer.name, "kind": layer.kind, "labels": layer.labels,
                      "finding_kind": layer.finding_kind, "observer": layer.observer})
    derived = []
    for n, d in enumerate(case.derived, 1):
        p = write_volume(d.volume, folder / f"derived-{n}.nii.gz", sidecar=False)
        w.add(p, "nifti", f"derived: {d.description}")
        info = {"file": p.name, "description": d.description, "kind": d.kind, "model": d.model,
                "derived_from": "image.nii.gz", "note": "derived by reviewer; not an original acquisition"}
        sp = folder / f"derived-{n}.json"
        sp.write_text(json.dumps(scrub_json(info), indent=2) + "\n")
        w.add(sp, "json", "derived image sidecar")
        derived.append(info)
    observers = [f.observer for f in case.findings if f.observer_type == "device"]
    observers += [m.observer for m in case.masks if m.observer_type == "device"]
    cards = model_cards(list(case.models) + [d.model for d in case.derived] + observers)
    sidecar = {
        "Modality": images[0].get("Modality", vol.modality) if images else vol.modality,
        "SeriesDescription": str(images[0].get("SeriesDescription", "")) if images else vol.name,
        "SeriesInstanceUID": str(images[0].SeriesInstanceUID) if images else "",
        "FrameOfReferenceUID": str(images[0].FrameOfReferenceUID) if images else "",
        "Unit": vol.unit,
        "Geometry": {"coordinates": "LPS mm (DICOM patient); the NIfTI affine is the same grid in RAS",
                     "shape_kji": list(g.shape), "spacing_ijk": list(g.spacing), "origin_lps": list(g.origin),
                     "direction_columns_ijk": [list(r) for r in g.direction]},
        "Findings": {"coordinates": "world LPS mm (center_lps); voxel_ijk on this image's grid",
                     "items": items},
        "Masks": masks,
        "Derived": derived,
        "ModelCards": cards,
        "Provenance": {
            "software": f"reviewer {reviewer.__version__}",
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "source": source_note + (f": {vol.source}" if keep_phi else ""),
            "warnings": list(vol.warnings),
        },
        "Deidentification": "kept identity (--keep-phi)" if keep_phi else "PS3.15 basic profile; see manifest.json",
    }
    sp = folder / "image.json"
    sp.write_text(json.dumps(scrub_json(sidecar), indent=2) + "\n")
    w.add(sp, "json", "NIfTI sidecar: findings in world mm, provenance, model cards")


def write_manifest(out: Path, files: list[dict[str, Any]], deid: Deidentifier | None, keep_phi: bool,
                   case_name: str, source_note: str, warnings: list[str], extra: dict[str, Any] | None = None) -> Path:
    entries = []
    for f in files:
        p = Path(f["path"])
        entries.append({"path": str(p.relative_to(out)), "kind": f["kind"], "bytes": p.stat().st_size,
                        "sha256": sha256_file(p), "description": f["description"]})
    if keep_phi:
        identity = {"kept": True, "note": "patient identity KEPT at the user's request (--keep-phi / GUI choice): "
                                          "names, IDs, dates and UIDs are those of the source"}
        deid_info: dict[str, Any] = {"enabled": False}
    else:
        assert deid is not None
        identity = {"kept": False, "note": "identifying attributes removed or replaced; PatientName and PatientID "
                                           "are a pseudonym"}
        deid_info = asdict(deid.record())
        deid_info["actions_by_attribute"] = describe_profile()
        deid_info["generic_rules"] = [
            "private tags removed", "curves (50xx) and overlay planes (60xx) removed",
            "other person names removed", "other free text (LT/ST/UT) removed",
            "every non-registered UID replaced through one map (references resolve)",
            "other dates removed or shifted, times removed unless dates are shifted",
            "any remaining text holding an identifying value of the source removed",
            "NIfTI sidecars, manifest and PNG captions scrubbed of the same values; file names are generic",
            "the export is refused if an identifying value of the source is found in a written file"]
    manifest = {
        "software": f"reviewer {reviewer.__version__}",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "case": case_name,
        "source": source_note,
        "identity": identity,
        "deidentification": deid_info,
        "warnings": warnings,
        **(extra or {}),
        "files": entries,
    }
    if deid is not None:
        manifest = deid.scrub_json(manifest)
    path = out / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path
