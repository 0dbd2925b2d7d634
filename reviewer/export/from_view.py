"""The case on screen as a :class:`CaseExport`: the viewer's primary volume, its findings overlays, its masks and
heat maps, and comparison panes the app made on the same grid (reconstructions, inserted nodules / FNAFs). Qt-free.

An overlay may carry its findings as ``overlay.findings`` (a list of :class:`reviewer.findings.Finding`); otherwise
findings are read from its geometry: spheres (centre + diameter), points, box centres.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reviewer.export.case import CaseExport, DerivedImage
from reviewer.export.dicom_seg import MaskLayer
from reviewer.findings import Finding
from reviewer.geometry import Volume
from reviewer.view.overlays import BoxesOverlay, HeatMapOverlay, LabelMapOverlay, PointsOverlay, SpheresOverlay

KINDS = ("synthetic-nodule", "nodule", "fnaf", "lesion", "mass")


def _kind(name: str) -> str:
    low = name.lower().replace(" ", "-")
    if "fnaf" in low:
        return "fnaf"
    if "synthetic" in low or "inserted" in low:
        return "synthetic-nodule"
    return next((k for k in KINDS if k in low), "finding")


def _observer_type(name: str) -> str:
    low = name.lower()
    return "person" if any(w in low for w in ("reader", "mark", "radiologist")) else "device"


def _same_grid(a: Volume, b: Volume) -> bool:
    ga, gb = a.geometry, b.geometry
    return ga.shape == gb.shape and np.allclose(ga.spacing, gb.spacing) and np.allclose(ga.origin, gb.origin) \
        and np.allclose(ga.direction_matrix, gb.direction_matrix)


# overlays that mark where the user is looking, not findings
NAVIGATION = ("selected", "crosshair", "cursor")
DETECTIONS = "detections: "  # the detection lab's overlays: "detections: <model>", labels = probabilities


def _probability(label: str) -> float | None:
    try:
        p = float(str(label).strip())
    except ValueError:
        return None
    return p if 0.0 <= p <= 1.0 else None


def overlay_findings(ov: Any) -> list[Finding]:
    """Findings an overlay shows (world LPS mm)."""
    given = getattr(ov, "findings", None)
    if given:
        return [f for f in given if isinstance(f, Finding)]
    name = str(getattr(ov, "name", "overlay"))
    if any(w in name.lower() for w in NAVIGATION):
        return []
    common = {"kind": _kind(name), "observer": name, "observer_type": _observer_type(name)}
    if name.startswith(DETECTIONS):  # a detector's candidates: the model is the observer
        common = {"kind": "nodule", "observer": name[len(DETECTIONS):], "observer_type": "device"}
    out = []
    if isinstance(ov, SpheresOverlay):
        for n, (c, r, lab) in enumerate(zip(ov.centers, ov.radii_mm, ov.labels), 1):
            p = _probability(lab) if name.startswith(DETECTIONS) else None
            out.append(Finding(tuple(c), diameter_mm=2.0 * float(r), tracking_id=f"{name} {n}", label=lab,
                               score=p, score_kind="probability" if p is not None else "none", **common))
    elif isinstance(ov, PointsOverlay):
        for n, (c, lab) in enumerate(zip(ov.points, ov.labels), 1):
            out.append(Finding(tuple(c), tracking_id=f"{name} {n}", label=lab, **common))
    elif isinstance(ov, BoxesOverlay):
        for n, (corners, lab) in enumerate(zip(ov.corners, ov.labels), 1):
            lo, hi = corners.min(axis=0), corners.max(axis=0)
            out.append(Finding(tuple((lo + hi) / 2), diameter_mm=float(np.mean((hi - lo)[:2])),
                               tracking_id=f"{name} {n}", label=lab, **common))
    return out


def case_from_state(state: Any, name: str = "case") -> CaseExport:
    """The case the viewer state shows (raises LookupError when it shows no image)."""
    primary = state.primary
    if primary is None:
        raise LookupError("no image is shown: open a series first")
    vol = primary.volume
    findings: list[Finding] = []
    masks: list[MaskLayer] = []
    for ov in state.overlays:
        findings += overlay_findings(ov)
        if isinstance(ov, LabelMapOverlay) and _same_grid(ov.volume, vol):
            masks.append(MaskLayer(ov.name, ov.volume.array, kind="labels", finding_kind=_kind(ov.name),
                                   observer=ov.name, observer_type=_observer_type(ov.name)))
        elif isinstance(ov, HeatMapOverlay) and _same_grid(ov.volume, vol):
            masks.append(MaskLayer(ov.name, ov.volume.array, kind="heatmap", finding_kind=_kind(ov.name),
                                   observer=ov.name, observer_type=_observer_type(ov.name),
                                   value_range=tuple(ov.range) if ov.range else None))
    derived = []
    for pane in state.panes[1:]:
        pv = pane.volume
        original = (pv.metadata or {}).get("files")  # another series loaded from disk, not something made here
        if original or not _same_grid(pv, vol):
            continue
        derived.append(DerivedImage(pv, f"{pane.name} (made by reviewer from the source)", kind=_kind(pane.name)
                                    if _kind(pane.name) != "finding" else "derived"))
    return CaseExport(volume=vol, findings=findings, masks=masks, derived=derived, name=name)
