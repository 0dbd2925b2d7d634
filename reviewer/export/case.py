"""What one export holds (:class:`CaseExport`) and the JSON "case bundle" the CLI reads.

Case bundle (``reviewer export BUNDLE.json --out DIR``); relative paths are relative to the bundle file::

    {
      "source": "ct/1.2.3/",              # DICOM series folder, or .nii / .nii.gz / .mhd / .nrrd
      "series_uid": "1.2.3...",           # optional: which series when the folder holds several
      "modality": "CT",                   # optional: for non-DICOM sources without one (CT or MR)
      "name": "case-001",                 # optional: case name used in file names and the manifest
      "findings": [ {Finding JSON}, ... ] or "findings.json",
      "masks": [ {"path": "nodules.nii.gz", "name": "nodule masks", "kind": "labels" | "heatmap",
                  "finding_kind": "nodule", "observer": "detector-x", "observer_type": "device",
                  "labels": {"1": "nodule 1"}, "value_range": [0, 1]} ],
      "derived": [ {"path": "with-nodule.nii.gz", "description": "synthetic 8 mm nodule inserted",
                    "kind": "synthetic-nodule", "model": ""} ],
      "models": ["demo-unet-robust"]      # optional: model cards used (recorded in sidecars)
    }

Finding JSON is :meth:`reviewer.findings.Finding.to_json` (centre in world LPS mm). Masks and derived images are
on the source grid (same shape); NIfTI masks are checked against the source geometry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reviewer.errors import InputError, read_json_file
from reviewer.export.dicom_seg import MaskLayer
from reviewer.findings import Finding, findings_from_json
from reviewer.geometry import Volume
from reviewer.jobs import JobToken


@dataclass
class DerivedImage:
    """A volume the app made from the source: ``description`` says what was done (it becomes the
    SeriesDescription / DerivationDescription); ``kind``: reconstruction, synthetic-nodule, fnaf, ..."""

    volume: Volume
    description: str
    kind: str = "derived"
    model: str = ""


@dataclass
class CaseExport:
    volume: Volume
    findings: list[Finding] = field(default_factory=list)
    masks: list[MaskLayer] = field(default_factory=list)
    derived: list[DerivedImage] = field(default_factory=list)
    name: str = "case"
    modality: str = ""
    models: list[str] = field(default_factory=list)
    # readers / algorithms that read the case: each gets an SR, even one without findings ("no lesion")
    observers: list[tuple[str, str]] = field(default_factory=list)  # (name, 'person' | 'device')
    case_scores: dict[str, float] = field(default_factory=dict)  # observer -> case-level rating (ROC)
    # for a non-DICOM source: who the patient is (pseudonym) and which study the built series belongs to; images
    # sharing a key (one case of a reader study under several conditions) share the pseudonym and the study
    patient_key: str = ""


def _resolve(base: Path, p: str) -> Path:
    q = Path(os.path.expanduser(p))
    return q if q.is_absolute() else base / q


def load_grid_volume(path: Path, reference: Volume, what: str) -> Volume:
    """Load a mask / derived image and check it lies on the source grid."""
    from reviewer.io.loader import load_volume

    vol = load_volume(path)
    g, r = vol.geometry, reference.geometry
    same = (g.shape == r.shape and np.allclose(g.spacing, r.spacing, atol=1e-3)
            and np.allclose(g.origin, r.origin, atol=1e-2)
            and np.allclose(g.direction_matrix, r.direction_matrix, atol=1e-4))
    if not same:
        raise InputError(path, f"{what} is not on the source grid (shape {g.shape} vs {r.shape}, origin "
                               f"{np.round(g.origin, 2).tolist()} vs {np.round(r.origin, 2).tolist()})")
    return vol


def read_findings_file(path: str | os.PathLike) -> list[Finding]:
    p = Path(path)
    data = read_json_file(p, "findings file")
    items = data.get("findings", data) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise InputError(p, "expected a list of findings (or {'findings': [...]})")
    try:
        return findings_from_json(items)
    except (TypeError, ValueError) as exc:
        raise InputError(p, f"bad finding: {exc}") from None


def load_case_bundle(path: str | os.PathLike, token: JobToken | None = None) -> CaseExport:
    from reviewer.io.loader import load_volume

    p = Path(path)
    spec: dict[str, Any] = read_json_file(p, "case bundle")
    if not isinstance(spec, dict) or "source" not in spec:
        raise InputError(p, "a case bundle needs a 'source' (image path)")
    base = p.parent
    volume = load_volume(_resolve(base, spec["source"]), series_uid=spec.get("series_uid"), token=token)
    findings_spec = spec.get("findings", [])
    if isinstance(findings_spec, str):
        findings = read_findings_file(_resolve(base, findings_spec))
    else:
        findings = findings_from_json(findings_spec)
    masks = []
    for m in spec.get("masks", []):
        mp = _resolve(base, m["path"])
        mv = load_grid_volume(mp, volume, "mask")
        masks.append(MaskLayer(name=m.get("name") or mp.name.split(".")[0], array=mv.array,
                               kind=m.get("kind", "labels"), labels={int(k): v for k, v in m.get("labels", {}).items()},
                               finding_kind=m.get("finding_kind", "nodule"), observer=m.get("observer", ""),
                               observer_type=m.get("observer_type", "device"),
                               value_range=tuple(m["value_range"]) if m.get("value_range") else None))
    derived = []
    for d in spec.get("derived", []):
        dp = _resolve(base, d["path"])
        dv = load_grid_volume(dp, volume, "derived image")
        if not dv.modality:
            dv.modality = volume.modality
        if not d.get("description"):
            raise InputError(p, f"derived image {dp.name} needs a 'description' of what was done")
        derived.append(DerivedImage(dv, d["description"], d.get("kind", "derived"), d.get("model", "")))
    return CaseExport(volume=volume, findings=findings, masks=masks, derived=derived,
                      name=str(spec.get("name") or "case"), modality=str(spec.get("modality", "")),
                      models=list(spec.get("models", [])))
