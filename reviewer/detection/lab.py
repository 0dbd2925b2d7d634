"""Nodule detection lab: the Qt-free logic behind the GUI's detection dock (Slicer "Logic" style).

``DetectionLab`` holds the CT being reviewed and the detectors (one candidate generator, one FPR model per
detector, e.g. ``demo-fpr-standard`` and ``demo-fpr-robust``) and offers:

* :meth:`DetectionLab.run` (a job): the candidate generator once per volume, then every selected FPR model on
  the same candidates; the findings are merged by distance into :class:`CandidateRow` rows carrying each model's
  probability, uncertainty and diameter and the score difference between two models;
* threshold filtering (:meth:`DetectionLab.rows_at`) and, when ground truth is known, hit / miss per nodule and
  model (:meth:`DetectionLab.hits`; the LUNA16 rule: a mark hits a nodule within its radius);
* ground truth from the demo CT's ``nodules.json``, LUNA16 ``annotations.csv`` found near an ``.mhd``, and the
  findings carried by inserted synthetic nodules (``volume.metadata['synthetic_nodules']``);
* :meth:`DetectionLab.insert_nodule` and :meth:`DetectionLab.find_missed_nodule` (``reviewer.synthesis``): a new
  derived volume with the nodule and its ground truth;
* :meth:`DetectionLab.perturb`: the stress tests' perturbations (uniform noise 0.3 / 0.6 / 0.9, Poisson x50 / x5,
  PGD at a point) applied to the current volume as a derived volume, to re-run the models on.

Every long method takes ``token: JobToken | None``; the lab never imports Qt.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from reviewer.findings import Finding
from reviewer.geometry import Volume
from reviewer.jobs import JobToken

CG_TASK = "nodule-candidate-generation"
FPR_TASK = "nodule-false-positive-reduction"
MATCH_MM = 5.0  # findings of two models closer than this (or than half the smaller diameter) are one candidate
DEFAULT_THRESHOLD = 0.5
CANDIDATES = 300  # candidate-generator peaks scored by every FPR model (the pipeline's default hand-over)

# the stress tests' perturbations (reviewer stress), as the GUI offers them: key -> (label, kind, level)
PERTURBATIONS: dict[str, tuple[str, str, float]] = {
    "uniform-0.3": ("uniform noise 0.3", "uniform", 0.3),
    "uniform-0.6": ("uniform noise 0.6", "uniform", 0.6),
    "uniform-0.9": ("uniform noise 0.9", "uniform", 0.9),
    "poisson-50": ("Poisson noise x50", "poisson", 50.0),
    "poisson-5": ("Poisson noise x5", "poisson", 5.0),
    "pgd-vanish": ("PGD at the crosshair: make a nodule vanish", "pgd", 0.0),
    "pgd-fire": ("PGD at the crosshair: make the spot fire", "pgd", 1.0),
}
COMPOSITIONS = {"solid": 1.0, "part-solid": 0.5, "ground-glass": 0.0}


# -- rows ---------------------------------------------------------------------------------------------------------
@dataclass
class CandidateRow:
    """One candidate location and what every model said about it (None: the model did not report it)."""

    center_lps: tuple[float, float, float]
    probability: dict[str, float | None]
    uncertainty: dict[str, float | None]
    diameter_mm: dict[str, float | None]
    findings: dict[str, Finding] = field(default_factory=dict)

    @property
    def diameter(self) -> float | None:
        ds = [d for d in self.diameter_mm.values() if d is not None]
        return float(np.mean(ds)) if ds else None

    def score(self, model: str) -> float:
        """The model's probability, 0 when it did not report the candidate (below its candidate cut)."""
        p = self.probability.get(model)
        return 0.0 if p is None else float(p)

    def difference(self, a: str, b: str) -> float:
        """``score(b) - score(a)``: e.g. robust minus standard."""
        return self.score(b) - self.score(a)

    def max_score(self, models: Sequence[str] | None = None) -> float:
        names = list(self.probability) if models is None else list(models)
        return max((self.score(m) for m in names), default=0.0)


def _match_radius(a: Finding, b: Finding, match_mm: float) -> float:
    ds = [d for d in (a.diameter_mm, b.diameter_mm) if d]
    return max(match_mm, 0.5 * min(ds)) if ds else match_mm


def merge_findings(per_model: dict[str, Sequence[Finding]], match_mm: float = MATCH_MM) -> list[CandidateRow]:
    """Merge each model's findings into rows: greedy one-to-one matching by increasing distance.

    The first model's findings seed the rows; each further model's findings are paired with the nearest
    unpaired row within the match radius (max(``match_mm``, half the smaller diameter)), the rest start rows of
    their own. Rows come sorted by their highest probability (descending).
    """
    names = list(per_model)
    rows: list[CandidateRow] = []
    for name in names:
        fs = list(per_model[name])
        taken: set[int] = set()
        used_rows: set[int] = set()
        if rows and fs:
            rc = np.array([r.center_lps for r in rows], float)
            fc = np.array([f.center_lps for f in fs], float)
            dist = np.linalg.norm(fc[:, None, :] - rc[None, :, :], axis=-1)
            for fi, ri in zip(*np.unravel_index(np.argsort(dist, axis=None), dist.shape)):
                fi, ri = int(fi), int(ri)
                if fi in taken or ri in used_rows:
                    continue
                ref = next(iter(rows[ri].findings.values()))
                if dist[fi, ri] > _match_radius(fs[fi], ref, match_mm):
                    continue
                taken.add(fi)
                used_rows.add(ri)
                _put(rows[ri], name, fs[fi])
        for fi, f in enumerate(fs):
            if fi not in taken:
                row = CandidateRow(tuple(f.center_lps), {}, {}, {})
                _put(row, name, f)
                rows.append(row)
    for r in rows:
        for n in names:
            r.probability.setdefault(n, None)
            r.uncertainty.setdefault(n, None)
            r.diameter_mm.setdefault(n, None)
        if len(r.findings) > 1:  # the row's location: the mean of the models' (identical when the CG is shared)
            r.center_lps = tuple(float(v) for v in np.mean([f.center_lps for f in r.findings.values()], axis=0))
    rows.sort(key=lambda r: -r.max_score(names))
    return rows


def _put(row: CandidateRow, name: str, f: Finding) -> None:
    row.findings[name] = f
    row.probability[name] = None if f.score is None else float(f.score)
    row.uncertainty[name] = None if f.uncertainty is None else float(f.uncertainty)
    row.diameter_mm[name] = None if f.diameter_mm is None else float(f.diameter_mm)


def filter_rows(rows: Sequence[CandidateRow], threshold: float,
                models: Sequence[str] | None = None) -> list[CandidateRow]:
    """Rows where at least one of ``models`` (default: all) scores >= ``threshold``."""
    return [r for r in rows if r.max_score(models) >= threshold]


def hit_nodules(ground_truth: Sequence[Finding], rows: Sequence[CandidateRow], model: str,
                threshold: float) -> list[bool]:
    """Per ground-truth nodule: does ``model`` mark it at ``threshold``? (LUNA16: a mark within the radius; a
    nodule without a diameter counts with 10 mm, as the challenge's negative diameters.)"""
    marks = np.array([r.center_lps for r in rows if r.probability.get(model) is not None
                      and r.score(model) >= threshold], float).reshape(-1, 3)
    out = []
    for g in ground_truth:
        radius = (g.diameter_mm if g.diameter_mm and g.diameter_mm > 0 else 10.0) / 2.0
        d = np.linalg.norm(marks - np.asarray(g.center_lps, float), axis=1) if len(marks) else np.zeros(0)
        out.append(bool(np.any(d < radius)))
    return out


def row_truth(ground_truth: Sequence[Finding], row: CandidateRow) -> int | None:
    """Index of the ground-truth nodule a row lies in (within its radius), else None."""
    best, best_d = None, np.inf
    for i, g in enumerate(ground_truth):
        radius = (g.diameter_mm if g.diameter_mm and g.diameter_mm > 0 else 10.0) / 2.0
        d = float(np.linalg.norm(np.asarray(row.center_lps) - np.asarray(g.center_lps)))
        if d < radius and d < best_d:
            best, best_d = i, d
    return best


# -- ground truth -------------------------------------------------------------------------------------------------
def _nodules_from_json(path: Path, uid: str) -> list[Finding] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    items = None
    if isinstance(data, dict):
        if data.get("seriesuid") == uid or ("nodules" in data and "seriesuid" not in data):
            items = data.get("nodules")
        scans = data.get("scans")
        if items is None and isinstance(scans, dict) and uid in scans:
            s = scans[uid]
            items = s.get("nodules") if isinstance(s, dict) else s
        elif items is None and isinstance(scans, list):
            s = next((s for s in scans if isinstance(s, dict) and s.get("seriesuid") == uid), None)
            items = s.get("nodules") if s else None
    if not items:
        return None
    out = []
    for n in items:
        c = n.get("center_lps_mm") or n.get("center_lps") or n.get("center")
        if c is None:
            continue
        d = n.get("diameter_mm")
        kind = str(n.get("kind", ""))
        out.append(Finding(center_lps=tuple(float(v) for v in c), kind="nodule",
                           diameter_mm=None if d is None else float(d), observer=path.name, observer_type="person",
                           source=uid, label=f"{kind} {float(d):.0f} mm".strip() if d else kind,
                           extra={"ground_truth": str(path), "nodule_kind": kind}))
    return out


def _nodules_from_annotations(mhd: Path, uid: str) -> list[Finding] | None:
    from reviewer.luna16.dataset import find_csv
    from reviewer.luna16.io import annotation_to_finding, read_annotations

    for root in (mhd.parent, mhd.parent.parent):
        csv = find_csv(root, "annotations.csv")
        if csv is None:
            continue
        try:
            anns = read_annotations(csv).get(uid)
        except Exception:  # noqa: BLE001 - an unreadable CSV next to the scan is not ground truth for it
            return None
        if anns is None:
            return None
        out = []
        for a in anns:
            f = annotation_to_finding(uid, a, observer=csv.name, label=f"{a.diameter_mm:.0f} mm")
            f.extra["ground_truth"] = str(csv)
            out.append(f)
        return out
    return None


VOC_CLASSES = {"A": "adenocarcinoma", "B": "small-cell carcinoma", "E": "large-cell carcinoma",
               "G": "squamous-cell carcinoma"}  # Lung-PET-CT-Dx's histology letters


def _voc_boxes(xml: Path) -> list[tuple[str, float, float, float, float]]:
    """(name, xmin, ymin, xmax, ymax) of a PASCAL-VOC annotation file (pixel columns / rows of one slice)."""
    import xml.etree.ElementTree as ET

    out = []
    try:
        root = ET.parse(xml).getroot()
    except (OSError, ET.ParseError):
        return out
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        if bb is None:
            continue
        try:
            vals = [float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
        except (TypeError, ValueError):
            continue
        out.append((str(obj.findtext("name") or "").strip(), *vals))
    return out


def _nodules_from_voc(volume: Volume) -> tuple[list[Finding], str] | None:
    """Slice-wise PASCAL-VOC boxes named by SOPInstanceUID (the Lung-PET-CT-Dx layout: an ``annotations`` folder
    above the series) -> one finding per lesion: boxes on slices at most 2 apart whose centres lie within the box
    size are one lesion; centre = mean of the box centres (world, through the Geometry), diameter = the largest box
    side in mm."""
    md = volume.metadata or {}
    uids = md.get("SOPInstanceUIDs") or []
    files = md.get("files") or []
    if not uids or not files:
        return None
    index = {u: k for k, u in enumerate(uids)}
    start = Path(files[0]).parent
    boxes = []
    where = None
    for parent in [start, *list(start.parents)[:4]]:
        ann = parent / "annotations"
        if not ann.is_dir():
            continue
        for xml in ann.rglob("*.xml"):
            k = index.get(xml.stem)
            if k is None:
                continue
            for name, x0, y0, x1, y1 in _voc_boxes(xml):
                boxes.append((k, name, x0, y0, x1, y1))
        if boxes:
            where = str(ann)
            break
    if not boxes:
        return None
    g = volume.geometry
    si, sj, _ = g.spacing
    boxes.sort()
    groups: list[list[tuple]] = []
    for b in boxes:
        k, name, x0, y0, x1, y1 = b
        c = np.array([(x0 + x1) / 2 * si, (y0 + y1) / 2 * sj])
        size = max((x1 - x0) * si, (y1 - y0) * sj)
        for grp in groups:
            k2, n2, a0, b0, a1, b1 = grp[-1]
            c2 = np.array([(a0 + a1) / 2 * si, (b0 + b1) / 2 * sj])
            if n2 == name and 0 <= k - k2 <= 2 and np.linalg.norm(c - c2) < size:
                grp.append(b)
                break
        else:
            groups.append([b])
    out = []
    for grp in groups:
        ijk = np.array([[(x0 + x1) / 2, (y0 + y1) / 2, k] for k, _n, x0, y0, x1, y1 in grp], float)
        center = g.voxel_to_world(ijk).reshape(-1, 3).mean(axis=0)
        diam = max(max((x1 - x0) * si, (y1 - y0) * sj) for _k, _n, x0, y0, x1, y1 in grp)
        name = grp[0][1]
        kind = VOC_CLASSES.get(name, name or "lesion")
        out.append(Finding(center_lps=tuple(float(v) for v in center), kind="lesion", diameter_mm=round(diam, 1),
                           observer="annotations (PASCAL-VOC)", observer_type="person",
                           source=str(md.get("SeriesInstanceUID", "")), label=f"{kind} {diam:.0f} mm",
                           extra={"ground_truth": where, "slices": sorted({b[0] for b in grp})}))
    return out, where


def ground_truth_of(volume: Volume) -> tuple[list[Finding], list[str]]:
    """Known nodules of a scan and where they come from.

    The scan's own nodules: ``nodules.json`` beside the file (the demo CT, a demo LUNA16 export) when it names
    this series, else LUNA16 ``annotations.csv`` in the scan's folder or its parent (rows of this series UID =
    the .mhd file name); for a DICOM series, PASCAL-VOC boxes named by its SOPInstanceUIDs in an ``annotations``
    folder above it (Lung-PET-CT-Dx). Plus every synthetic nodule inserted into this volume (its metadata).
    """
    found: list[Finding] = []
    sources: list[str] = []
    md = volume.metadata or {}
    src = Path(volume.source) if volume.source else None
    if src is not None and src.suffix.lower() in (".mhd", ".mha", ".nii", ".gz", ".nrrd") and src.exists():
        uid = src.name.split(".mhd")[0].split(".mha")[0] if src.suffix.lower() in (".mhd", ".mha") else src.stem
        own = None
        js = src.parent / "nodules.json"
        if js.is_file():
            own = _nodules_from_json(js, uid) or _nodules_from_json(js, str(md.get("series_uid", "")))
            if own:
                sources.append(str(js))
        if not own and src.suffix.lower() in (".mhd", ".mha"):
            own = _nodules_from_annotations(src, uid)
            if own is not None:
                sources.append(str(own[0].extra["ground_truth"]) if own else "annotations.csv (no nodules)")
        found.extend(own or [])
    elif md.get("SOPInstanceUIDs"):
        voc = _nodules_from_voc(volume)
        if voc is not None:
            found.extend(voc[0])
            sources.append(voc[1])
    for rec in md.get("synthetic_nodules", []) or []:
        p = rec.get("params", {})
        d = p.get("diameter_mm")
        kind = f"synthetic {p['kind']}" if p.get("kind") else "synthetic"
        found.append(Finding(center_lps=tuple(rec["center_lps"]), kind="synthetic-nodule",
                             diameter_mm=None if d is None else float(d), observer="reviewer.synthesis",
                             label=f"{kind} {float(d):.0f} mm" if d else kind, extra={"synthetic": rec}))
    if md.get("synthetic_nodules"):
        sources.append(f"{len(md['synthetic_nodules'])} inserted synthetic nodule(s)")
    return found, sources


# -- models -------------------------------------------------------------------------------------------------------
class _SharedCandidates:
    """Wraps a detector's candidate generator so that several detectors run it once per volume."""

    def __init__(self, cg: Any):
        self._cg = cg
        self._lock = threading.Lock()
        self._key: int | None = None
        self._volume: Volume | None = None
        self._result: Any = None
        self.runs = 0  # how often the wrapped generator actually ran (tests and timings read it)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cg, name)

    def candidates(self, volume: Volume, token: JobToken | None = None) -> Any:
        with self._lock:
            if self._volume is volume and self._result is not None:
                if token is not None:
                    token.progress(1, 1, "candidates (reused)")
                return self._result
            res = self._cg.candidates(volume, token)
            self._volume, self._result = volume, res
            self.runs += 1
            return res

    def forget(self) -> None:
        with self._lock:
            self._volume, self._result = None, None


@dataclass
class ModelRun:
    """One detector's result on the lab's volume."""

    name: str
    findings: list[Finding]
    warnings: list[str]
    timings: dict[str, float]


@dataclass
class LabRun:
    """The models' results on one volume, merged into rows."""

    volume: Volume
    runs: dict[str, ModelRun]
    rows: list[CandidateRow]
    candidates_reused: bool = False

    @property
    def models(self) -> list[str]:
        return list(self.runs)

    @property
    def warnings(self) -> list[str]:
        seen: list[str] = []
        for r in self.runs.values():
            for w in r.warnings:
                if w not in seen:
                    seen.append(w)
        return seen


@dataclass
class HardResult:
    """"Find a nodule the detector misses here": the search and, unless discarded, the new volume."""

    model: str
    center_lps: tuple[float, float, float]
    search: Any  # reviewer.synthesis.hard.HardNoduleResult (before / after / params / discarded_reason)
    volume: Volume | None
    finding: Finding | None

    @property
    def before(self) -> float:
        return float(self.search.before)

    @property
    def after(self) -> float:
        return float(self.search.after)

    @property
    def discarded(self) -> bool:
        return self.volume is None


@dataclass
class PerturbResult:
    key: str
    label: str
    volume: Volume
    before: float | None = None  # PGD only: the attacked model's response on the clean patch
    after: float | None = None
    model: str | None = None


def nodule_params(diameter_mm: float = 10.0, composition: str = "solid", density_hu: float = 40.0,
                  margin: float = 0.8, lobulation: float = 0.0, spiculation: float = 0.0,
                  ground_glass_hu: float = -600.0):
    """:class:`reviewer.synthesis.generator.NoduleParams` from the GUI's controls (composition by name)."""
    from reviewer.synthesis.generator import NoduleParams

    if composition not in COMPOSITIONS:
        raise ValueError(f"composition must be one of {', '.join(COMPOSITIONS)}, got {composition!r}")
    return NoduleParams(diameter_mm=float(diameter_mm), solid_fraction=COMPOSITIONS[composition],
                        density_hu=float(density_hu), ground_glass_hu=float(ground_glass_hu),
                        margin_sharpness=float(margin), lobulation=float(lobulation), spiculation=float(spiculation))


class DetectionLab:
    """One review session on one CT. Build with a Volume; load detectors with :meth:`load_models`."""

    def __init__(self, volume: Volume, name: str = ""):
        self.original = volume
        self.volume = volume  # what the models run on and the panes show (original, or a derived volume)
        self.name = name or volume.name or Path(volume.source).name or "CT"
        self.detectors: dict[str, Any] = {}  # FPR model name -> pipeline.Detector
        self.cg_name: str = ""
        self._shared: _SharedCandidates | None = None
        self.result: LabRun | None = None
        self.threshold = DEFAULT_THRESHOLD
        self.match_mm = MATCH_MM
        self.perturbation: PerturbResult | None = None
        self._unperturbed: Volume = volume  # the volume the current perturbation was applied to
        self._gt_cache: tuple[int, list[Finding], list[str]] | None = None

    # -- models --------------------------------------------------------------------------------------------------
    def load_models(self, cg_card: Any, fpr_cards: Sequence[Any], device: Any = None,
                    token: JobToken | None = None, max_candidates: int = CANDIDATES, **detector_kw: Any) -> list[str]:
        """Build one detector per FPR card, all sharing the candidate generator of ``cg_card`` (run once per
        volume). Cards or names of shipped cards. Returns the detectors' names.

        The generator hands ``max_candidates`` peaks to the FPR models and every model reports all of them (not
        its own best N), so each row has both models' scores and the difference compares like with like.
        """
        import inspect

        from reviewer.detection.pipeline import Detector

        kw = dict(detector_kw)
        kw["max_candidates"] = int(max_candidates)
        if "cg_candidates" in inspect.signature(Detector.from_cards).parameters:
            kw["cg_candidates"] = int(max_candidates)
        dets: dict[str, Any] = {}
        shared: _SharedCandidates | None = None
        for i, card in enumerate(fpr_cards):
            if token is not None:
                token.progress(i, len(fpr_cards), f"loading {getattr(card, 'name', card)}")
            det = Detector.from_cards(cg_card, card, device, **kw)
            if hasattr(det, "cg"):
                if shared is None:
                    shared = _SharedCandidates(det.cg)
                det.cg = shared
            dets[det.name] = det
        self.set_detectors(dets, shared)
        self.cg_name = getattr(cg_card, "name", str(cg_card))
        return list(dets)

    def set_detectors(self, detectors: dict[str, Any], shared: _SharedCandidates | None = None) -> None:
        self.detectors = dict(detectors)
        self._shared = shared

    @property
    def model_names(self) -> list[str]:
        return list(self.detectors)

    def domain_warnings(self, volume: Volume | None = None) -> list[str]:
        """The detectors' domain check on the volume (cheap: before any run)."""
        vol = volume if volume is not None else self.volume
        seen: list[str] = []
        for det in self.detectors.values():
            fn = getattr(det, "domain_warnings", None)
            for w in (fn(vol) if fn is not None else []):
                if w not in seen:
                    seen.append(w)
        return seen

    # -- detection -----------------------------------------------------------------------------------------------
    def run(self, models: Sequence[str] | None = None, token: JobToken | None = None) -> LabRun:
        """Run the selected detectors (default all) on the current volume; merge their findings into rows."""
        names = list(self.detectors) if models is None else list(models)
        unknown = [n for n in names if n not in self.detectors]
        if unknown:
            raise ValueError(f"no detector named {', '.join(unknown)}; loaded: {', '.join(self.detectors) or 'none'}")
        if not names:
            raise ValueError("select at least one model")
        volume = self.volume
        runs_before = self._shared.runs if self._shared is not None else 0
        runs: dict[str, ModelRun] = {}
        for i, name in enumerate(names):
            sub = token.sub(i, i + 1, len(names)) if token is not None else None
            res = self.detectors[name].detect(volume, token=sub)
            runs[name] = ModelRun(name, list(res.findings), list(res.warnings), dict(res.timings))
        # keep the other models' results on the same volume (run "standard", then "robust": both in the table)
        if self.result is not None and self.result.volume is volume:
            merged = dict(self.result.runs)
            merged.update(runs)
            runs = {n: merged[n] for n in self.detectors if n in merged}
        rows = merge_findings({n: r.findings for n, r in runs.items()}, self.match_mm)
        reused = self._shared is not None and len(names) > 1 and self._shared.runs - runs_before == 1
        if token is not None:
            token.progress(1, 1, f"{len(rows)} candidates")
        self.result = LabRun(volume, runs, rows, reused)
        return self.result

    def rows_at(self, threshold: float | None = None) -> list[CandidateRow]:
        if self.result is None:
            return []
        return filter_rows(self.result.rows, self.threshold if threshold is None else float(threshold))

    def difference_pair(self) -> tuple[str, str] | None:
        """(a, b) for the score difference b - a: standard then robust when both ran (the first two otherwise)."""
        if self.result is None or len(self.result.runs) < 2:
            return None
        names = self.result.models
        std = [n for n in names if "robust" not in n.lower()]
        rob = [n for n in names if "robust" in n.lower()]
        if std and rob:
            return std[0], rob[0]
        return names[0], names[1]

    # -- ground truth ----------------------------------------------------------------------------------------------
    def ground_truth(self) -> list[Finding]:
        return self._ground_truth()[0]

    def ground_truth_sources(self) -> list[str]:
        return self._ground_truth()[1]

    def _ground_truth(self) -> tuple[list[Finding], list[str]]:
        key = id(self.volume)
        if self._gt_cache is None or self._gt_cache[0] != key:
            gt, src = ground_truth_of(self.volume)
            self._gt_cache = (key, gt, src)
        return self._gt_cache[1], self._gt_cache[2]

    def hits(self, threshold: float | None = None) -> dict[str, list[bool]]:
        """Per model that ran: hit (True) / miss per ground-truth nodule at the threshold."""
        if self.result is None:
            return {}
        t = self.threshold if threshold is None else float(threshold)
        gt = self.ground_truth()
        return {m: hit_nodules(gt, self.result.rows, m, t) for m in self.result.models}

    def false_positives(self, threshold: float | None = None) -> dict[str, int]:
        """Per model: marks at the threshold that lie in no known nodule (only meaningful with ground truth)."""
        if self.result is None:
            return {}
        t = self.threshold if threshold is None else float(threshold)
        gt = self.ground_truth()
        return {m: sum(1 for r in self.result.rows if r.probability.get(m) is not None and r.score(m) >= t
                       and row_truth(gt, r) is None) for m in self.result.models}

    # -- derived volumes -------------------------------------------------------------------------------------------
    def set_volume(self, volume: Volume) -> None:
        """Show / run on another volume (derived from this CT); results on the old one are dropped."""
        self.volume = volume
        self.result = None
        if self._shared is not None:
            self._shared.forget()

    def revert(self) -> None:
        """Back to the CT as opened (no inserted nodule, no perturbation)."""
        self.perturbation = None
        self.set_volume(self.original)

    def insert_nodule(self, center_lps: Any, params: Any, seed: int = 0,
                      token: JobToken | None = None) -> tuple[Volume, Finding]:
        """Insert a synthetic nodule into the current volume at a world point: a new derived volume that
        becomes current, the nodule its ground truth."""
        from reviewer.synthesis.insert import insert_nodule

        if token is not None:
            token.progress(0, 1, "inserting the nodule")
        new, finding = insert_nodule(self.volume, center_lps, params, seed=seed)
        if token is not None:
            token.progress(1, 1, "done")
        self.perturbation = None
        self.set_volume(new)
        return new, finding

    def _fpr(self, model: str | None) -> tuple[str, Any, Any]:
        from reviewer.detection.fpr import FprSpec

        if not self.detectors:
            raise ValueError("load the detection models first")
        name = model or next(iter(self.detectors))
        if name not in self.detectors:
            raise ValueError(f"no detector named {name!r}; loaded: {', '.join(self.detectors)}")
        det = self.detectors[name]
        spec = getattr(det, "spec", None) or FprSpec.from_card(det.fpr_card)
        return name, det.fpr_model, spec

    def find_missed_nodule(self, center_lps: Any, model: str | None = None, seed: int = 0,
                           token: JobToken | None = None, **search_kw: Any) -> HardResult:
        """PGD over the generator's parameters at a world point against ``model``'s FPR (the paper's eps 0.15,
        step 0.05, 20 iterations); unless discarded (under the size floor) the nodule is inserted and the new
        volume becomes current."""
        from reviewer.synthesis.hard import find_missed_nodule_in_volume

        name, fpr, spec = self._fpr(model)
        c = np.asarray(center_lps, float).reshape(3)
        res, new, finding = find_missed_nodule_in_volume(fpr, spec, self.volume, c, seed=seed, token=token,
                                                         **search_kw)
        if new is not None:
            finding.extra["searched_against"] = name
            self.perturbation = None
            self.set_volume(new)
        return HardResult(name, tuple(float(v) for v in c), res, new, finding)

    def perturb(self, key: str, center_lps: Any = None, model: str | None = None, seed: int = 0,
                token: JobToken | None = None) -> PerturbResult:
        """Apply a stress perturbation (a :data:`PERTURBATIONS` key) to the current un-perturbed volume; the
        derived volume becomes current. PGD needs ``center_lps`` and attacks ``model``'s FPR."""
        from reviewer.synthesis.perturb import noise_volume, pgd_volume

        if key not in PERTURBATIONS:
            raise ValueError(f"unknown perturbation {key!r}; choose one of {', '.join(PERTURBATIONS)}")
        label, kind, level = PERTURBATIONS[key]
        base = self.unperturbed()
        if kind == "pgd":
            if center_lps is None:
                raise ValueError("PGD perturbs the patch at a point: place the crosshair first")
            name, fpr, spec = self._fpr(model)
            r = pgd_volume(fpr, spec, base, center_lps, target=level, seed=seed, token=token)
            out = PerturbResult(key, f"{label} ({name})", r.volume, r.before, r.after, name)
        else:
            if token is not None:
                token.progress(0, 1, label)
            window = (-1000.0, 400.0)
            if self.detectors:
                window = tuple(self._fpr(model)[2].hu_window)
            out = PerturbResult(key, label, noise_volume(base, kind, level, seed=seed, window=window))
        self._unperturbed = base
        self.perturbation = out
        self.set_volume(out.volume)
        return out

    def unperturbed(self) -> Volume:
        """The current volume without the perturbation (inserted nodules stay)."""
        if self.perturbation is not None and self.volume is self.perturbation.volume:
            return self._unperturbed
        return self.volume

    def clear_perturbation(self) -> None:
        if self.perturbation is not None:
            base = self.unperturbed()
            self.perturbation = None
            self.set_volume(base)
