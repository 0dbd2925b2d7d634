"""The LUNA16 FROC evaluation, following the official challenge script (``noduleCADEvaluationLUNA16.py``) step by
step, with bootstrap confidence intervals and the FROC plot.

Protocol (REFERENCES section 3):

1. Marks of each listed scan are read; when a scan has more than ``max_marks`` (100), only the marks whose
   probability is *strictly greater* than the 101st highest are kept (as the official script does: ties at the
   cut are all dropped, so a scan can end up with fewer than 100).
2. Per scan, included nodules (``annotations.csv``, file order) and then excluded findings
   (``annotations_excluded.csv``) are visited. A mark hits a finding when its squared distance to the centre is
   below (diameter / 2)^2; a negative diameter means 10 mm. Every mark hitting an included nodule stops being a
   false positive; the nodule enters the FROC list once, with the highest probability of its hits (the other
   hits are "double detections", ignored). A mark may hit two nodules (counted for both, as the script does).
   Marks on excluded findings that hit no included nodule are dropped: neither TP nor FP. A missed nodule enters
   with probability -1e9 and the "excluded" flag, i.e. it counts in the number of nodules only.
   All remaining marks are false positives.
3. Curve: :func:`roc_curve` (sklearn.metrics.roc_curve semantics, reimplemented) on the non-flagged entries;
   ``fps = fpr * (#candidates - #detected) / #scans``, ``sens = tpr * #detected / #nodules``; when there is no
   false positive at all ``fps`` is all zeros (the script's border case). Sensitivity at 1/8 .. 8 FPs/scan by
   ``np.interp(rate, fps, sens)``; CPM is their mean. #scans counts every listed scan, with or without nodules.
4. Bootstrap: ``n_bootstrap`` resamples of the scans with replacement (each scan brings all its entries, missed
   nodules included); each resample's curve is interpolated on 10,000 points between 0.125 and 8; mean and the
   95% bounds per point use the script's order statistics (``sorted[floor(Pz*n)]``, ``sorted[floor((1-Pz)*n)]``,
   Pz = 0.025). The CPM interval applies the same order statistics to the resamples' CPMs (the script has no CPM
   interval; this is ours).

Deliberate differences from the script, all on degenerate input: with no detected nodule sklearn returns NaN
rates; we report sensitivity 0. A resample without any nodule has no defined sensitivity and is left out of the
bootstrap (``bootstrap_valid`` says how many remained). The script's bootstrap is unseeded; ours uses
``numpy.random.default_rng(seed)``, drawing ``integers(n_scans, size=n_scans)`` per resample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from reviewer.errors import InputError
from reviewer.jobs import JobToken
from reviewer.luna16.io import Annotation, Submission, SubmissionRow

FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
FROC_MIN_X = 0.125
FROC_MAX_X = 8.0
CURVE_POINTS = 10_000
MISSED_PROBABILITY = -1e9
MAX_MARKS = 100
DEFAULT_DIAMETER_MM = 10.0


def rate_key(rate: float) -> str:
    """JSON key of an FP rate: '0.125', '0.25', '0.5', '1', '2', '4', '8'."""
    return f"{rate:g}"


# ---------------------------------------------------------------------------------------------------------------
# sklearn.metrics.roc_curve, reimplemented (sklearn is not a dependency)
def roc_curve(y_true: Any, y_score: Any, drop_intermediate: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) with the semantics of ``sklearn.metrics.roc_curve`` (sklearn >= 1.3).

    Scores are sorted in decreasing order (stable); one point per distinct score, at the last entry of its tie
    group; with ``drop_intermediate`` (sklearn's default) points whose second differences in both false and true
    positive counts are zero (collinear, e.g. inside a horizontal or vertical run) are dropped, which never
    changes a linear interpolation of the curve; then (0, 0) is prepended with threshold +inf. With no negatives
    (positives) the fpr (tpr) is NaN, as sklearn returns it (without the warning).
    """
    y = np.asarray(y_true, dtype=float).ravel()
    s = np.asarray(y_score, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"y_true and y_score differ in length: {y.size} vs {s.size}")
    if y.size == 0:
        raise ValueError("roc_curve needs at least one sample")
    order = np.argsort(s, kind="mergesort")[::-1]
    s = s[order]
    y = y[order]
    distinct = np.where(np.diff(s))[0]
    ends = np.r_[distinct, y.size - 1]
    tps = np.cumsum(y)[ends]
    fps = 1 + ends - tps
    thresholds = s[ends]
    if drop_intermediate and len(fps) > 2:
        keep = np.where(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])[0]
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    tps = np.r_[0, tps]
    fps = np.r_[0, fps]
    thresholds = np.r_[np.inf, thresholds]
    fpr = fps / fps[-1] if fps[-1] > 0 else np.full(fps.shape, np.nan)
    tpr = tps / tps[-1] if tps[-1] > 0 else np.full(tps.shape, np.nan)
    return fpr, tpr, thresholds


# ---------------------------------------------------------------------------------------------------------------
# matching marks to findings
@dataclass
class FrocLists:
    """The script's per-entry lists: one entry per included nodule (hit or missed) and per false positive."""

    labels: np.ndarray  # 1.0 nodule, 0.0 false positive
    probs: np.ndarray
    excluded: np.ndarray  # True for missed nodules (probability -1e9): counted as nodules only
    scan: np.ndarray  # index into the series UID list
    n_scans: int


MARK_STATUSES = ("", "TP", "TP-duplicate", "irrelevant", "FP", "capped", "scan-not-listed")
_TP, _DUP, _IRR, _FP, _CAP, _UNLISTED = 1, 2, 3, 4, 5, 6


@dataclass
class Matching:
    lists: FrocLists
    submission: Submission  # the marks, column-wise
    mark_status: np.ndarray  # int8 code per mark, index into MARK_STATUSES
    mark_nodules: dict[int, str]  # mark index -> ';'-joined indices (within its scan) of the nodules it hit
    nodules: list[dict[str, Any]]  # every included nodule of a listed scan, detected or not
    counts: dict[str, int]
    warnings: list[str]


def _hits(d2: np.ndarray, ann: Annotation) -> np.ndarray:
    """Indices of marks (squared distances ``d2`` to the finding) that hit it: distance < diameter / 2."""
    d = ann.diameter_mm if ann.diameter_mm >= 0.0 else DEFAULT_DIAMETER_MM
    return np.flatnonzero(d2 < (d / 2.0) ** 2)


def match_marks(annotations: Mapping[str, Sequence[Annotation]], excluded: Mapping[str, Sequence[Annotation]],
                submission: Iterable[SubmissionRow], seriesuids: Sequence[str],
                max_marks: int = MAX_MARKS) -> Matching:
    """Steps 1-2 of the protocol: the FROC lists, plus the status of every mark and nodule."""
    uids = list(seriesuids)
    if len(set(uids)) != len(uids):
        raise InputError(None, "the series UID list has duplicates")
    sub = Submission.from_rows(submission)
    index = {u: i for i, u in enumerate(uids)}
    scan_of_mark = np.fromiter((index.get(u, -1) for u in sub.seriesuid), dtype=np.int64, count=len(sub))
    status = np.zeros(len(sub), dtype=np.int8)
    status[scan_of_mark < 0] = _UNLISTED
    unlisted = int((scan_of_mark < 0).sum())
    order = np.argsort(scan_of_mark, kind="stable")  # marks grouped by scan, file order within a scan
    bounds = np.searchsorted(scan_of_mark[order], np.arange(len(uids) + 1))
    prob, xyz = sub.probability, sub.xyz
    labels: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    flagged: list[np.ndarray] = []
    scan_of: list[np.ndarray] = []
    nodules_out: list[dict[str, Any]] = []
    mark_nodules: dict[int, str] = {}
    c = dict(n_scans=len(uids), n_nodules=0, n_detected=0, n_marks=len(sub), n_marks_scored=0, n_marks_capped=0,
             n_marks_unlisted_scan=unlisted, n_true_positive_marks=0, n_false_positives=0, n_irrelevant_marks=0,
             n_double_hits_ignored=0, n_marks_hitting_two_nodules=0, n_excluded_findings=0)
    for si, uid in enumerate(uids):
        ids = order[bounds[si]:bounds[si + 1]]
        if max_marks > 0 and len(ids) > max_marks:
            # keep the marks strictly above the (max_marks + 1)-th highest probability, as the script does
            cut = np.sort(prob[ids])[::-1][max_marks]
            keep = prob[ids] > cut
            status[ids[~keep]] = _CAP
            ids = ids[keep][:max_marks]
        c["n_marks_capped"] += int(bounds[si + 1] - bounds[si]) - len(ids)
        c["n_marks_scored"] += len(ids)
        pts = xyz[ids]
        remaining = np.ones(len(ids), dtype=bool)
        n_lab, n_prob, n_flag = [], [], []
        for n_idx, ann in enumerate(annotations.get(uid, ())):
            c["n_nodules"] += 1
            hits = _hits(((pts - np.asarray(ann.center)) ** 2).sum(axis=1), ann)
            rec = {"seriesuid": uid, "nodule": n_idx, "coordX": ann.x, "coordY": ann.y, "coordZ": ann.z,
                   "diameter_mm": ann.diameter_mm, "detected": bool(hits.size), "probability": "",
                   "n_hits": int(hits.size)}
            if hits.size:
                c["n_marks_hitting_two_nodules"] += int((~remaining[hits]).sum())
                remaining[hits] = False
                c["n_double_hits_ignored"] += int(hits.size) - 1
                best = hits[int(np.argmax(prob[ids[hits]]))]  # first of the highest, in file order
                for h in hits:
                    m = int(ids[h])
                    if h == best:
                        status[m] = _TP
                    elif status[m] != _TP:
                        status[m] = _DUP
                    mark_nodules[m] = f"{mark_nodules[m]};{n_idx}" if m in mark_nodules else str(n_idx)
                n_lab.append(1.0)
                n_prob.append(float(prob[ids[best]]))
                n_flag.append(False)
                rec["probability"] = float(prob[ids[best]])
                c["n_detected"] += 1
            else:
                n_lab.append(1.0)
                n_prob.append(MISSED_PROBABILITY)
                n_flag.append(True)
            nodules_out.append(rec)
        for ann in excluded.get(uid, ()):
            c["n_excluded_findings"] += 1
            hits = _hits(((pts - np.asarray(ann.center)) ** 2).sum(axis=1), ann)
            hits = hits[remaining[hits]]
            remaining[hits] = False
            status[ids[hits]] = _IRR
            c["n_irrelevant_marks"] += int(hits.size)
        fp = ids[remaining]
        status[fp] = _FP
        c["n_false_positives"] += int(fp.size)
        labels += [np.asarray(n_lab, float), np.zeros(fp.size)]
        probs += [np.asarray(n_prob, float), prob[fp]]
        flagged += [np.asarray(n_flag, bool), np.zeros(fp.size, bool)]
        scan_of.append(np.full(len(n_lab) + fp.size, si, dtype=np.int64))
    c["n_true_positive_marks"] = int(np.isin(status, (_TP, _DUP)).sum())
    warnings: list[str] = []
    if unlisted:
        warnings.append(f"{unlisted} mark(s) on scans that are not in the series list were ignored")
    off_list = sum(len(v) for k, v in annotations.items() if k not in index)
    if off_list:
        warnings.append(f"{off_list} annotated nodule(s) on scans that are not in the series list were not counted")
    if c["n_marks_hitting_two_nodules"]:
        warnings.append(f"{c['n_marks_hitting_two_nodules']} mark(s) hit two nodules (overlapping annotations?)")
    cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)  # noqa: E731
    lists = FrocLists(cat(labels, float), cat(probs, float), cat(flagged, bool), cat(scan_of, np.int64), len(uids))
    return Matching(lists, sub, status, mark_nodules, nodules_out, c, warnings)


# ---------------------------------------------------------------------------------------------------------------
# curves
def froc_curve(labels: Any, probs: Any, excluded: Any, n_scans: int,
               drop_intermediate: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fps, sens, thresholds): the script's ``computeFROC``."""
    labels = np.asarray(labels, float)
    probs = np.asarray(probs, float)
    local = ~np.asarray(excluded, bool)
    n_lesions = float(labels.sum())
    if n_lesions <= 0:
        raise InputError(None, "no annotated nodules on the evaluated scans: sensitivity is undefined")
    if n_scans <= 0:
        raise InputError(None, "no scans to evaluate")
    y, s = labels[local], probs[local]
    if y.size == 0:  # no marks at all: the curve is the single point (0, 0)
        return np.zeros(1), np.zeros(1), np.array([np.inf])
    n_detected = float(y.sum())
    n_candidates = float(y.size)
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=drop_intermediate)
    if labels.sum() == labels.size:  # no false positive at all
        fps = np.zeros(len(fpr))
    else:
        fps = fpr * (n_candidates - n_detected) / n_scans
    sens = tpr * n_detected / n_lesions if n_detected > 0 else np.zeros(len(tpr))
    return fps, sens, thresholds


class _WeightedCurves:
    """FROC curves of bootstrap resamples without re-sorting: a resample is a per-scan multiplicity, and repeating
    an entry k times is the same as weighting it by k. Entries are sorted once; tie groups are kept whole (equal
    scores end at the same point); entries of unsampled scans only add repeated points, which change no
    interpolated value. Each curve stops at the first point beyond 8 FPs/scan: values at 0.125..8 FPs/scan do not
    depend on later points. Gives the same interpolated curves as concatenating the resampled scans and calling
    :func:`froc_curve` (checked in the tests)."""

    MIN_CHUNK = 1024  # entries summed at first (at least CHUNK_FACTOR x what an unweighted curve needs) ...
    CHUNK_FACTOR = 2.0  # ... doubled until the curve passes max_fps

    def __init__(self, lists: FrocLists, max_fps: float = FROC_MAX_X):
        local = ~lists.excluded
        order = np.argsort(lists.probs[local], kind="mergesort")[::-1]
        self.pos = lists.labels[local][order].astype(np.int64)
        self.neg = 1 - self.pos
        self.scan_local = lists.scan[local][order]
        s = lists.probs[local][order]
        self.ends = np.r_[np.flatnonzero(np.diff(s)), s.size - 1] if s.size else np.zeros(0, np.int64)
        self.nodules_per_scan = np.bincount(lists.scan, weights=lists.labels, minlength=lists.n_scans)
        self.n_scans = lists.n_scans
        self.limit = max_fps * lists.n_scans  # weighted false positives past which points do not matter
        unweighted = np.cumsum(self.neg)
        first = int(np.searchsorted(unweighted, self.limit, side="right"))
        self.k0 = min(s.size, max(self.MIN_CHUNK, int(self.CHUNK_FACTOR * (first + 1))))

    def curve(self, multiplicity: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        n_lesions = float(multiplicity @ self.nodules_per_scan)
        if n_lesions <= 0:
            return None
        n = self.pos.size
        if n == 0:
            return np.zeros(1), np.zeros(1)
        k = self.k0
        while True:
            w = multiplicity[self.scan_local[:k]]
            fpc = np.cumsum(w * self.neg[:k])
            if fpc[-1] > self.limit or k >= n:
                last = len(self.ends) - 1
                if fpc[-1] > self.limit:  # the tie group holding the first entry past the limit ends the curve
                    first = int(np.searchsorted(fpc, self.limit, side="right"))
                    last = int(np.searchsorted(self.ends, first))
                if self.ends[last] < k:
                    break
            k = min(n, 2 * k)
        e = self.ends[: last + 1]
        tpc = np.cumsum(w * self.pos[:k])
        # fpr * (#cand - #det) / #scans == fps / #scans; tpr * #det / #nodules == tps / #nodules
        return np.r_[0.0, fpc[e]] / self.n_scans, np.r_[0.0, tpc[e]] / n_lesions


def _order_stat_ci(values: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, lower and upper bound along axis 0 with the script's ``computeMeanCI`` order statistics."""
    v = np.sort(values, axis=0)
    n = v.shape[0]
    pz = (1.0 - confidence) / 2.0
    lo = v[int(math.floor(pz * n))]
    hi = v[min(int(math.floor((1.0 - pz) * n)), n - 1)]
    return v.mean(axis=0), lo, hi


# ---------------------------------------------------------------------------------------------------------------
@dataclass
class FrocResult:
    """Sensitivities are keyed by the FP rate as a float (0.125 .. 8.0); JSON uses the keys of :func:`rate_key`."""

    cpm: float
    sensitivities: dict[float, float]
    cpm_ci: tuple[float, float] | None
    sensitivities_ci: dict[float, tuple[float, float]] | None
    fps: np.ndarray  # the raw FROC curve (roc_curve points)
    sens: np.ndarray
    thresholds: np.ndarray
    curve_fps: np.ndarray  # CURVE_POINTS between 0.125 and 8
    curve_sens: np.ndarray  # the point estimate interpolated there
    curve_mean: np.ndarray | None = None  # bootstrap mean / bounds on curve_fps
    curve_lower: np.ndarray | None = None
    curve_upper: np.ndarray | None = None
    counts: dict[str, int] = field(default_factory=dict)
    n_bootstrap: int = 0
    bootstrap_valid: int = 0
    seed: int = 0
    confidence: float = 0.95
    max_marks: int = MAX_MARKS
    cpm_bootstrap_mean: float | None = None
    submission: Submission | None = None  # the marks scored, with their status (codes into MARK_STATUSES)
    mark_status: np.ndarray | None = None
    mark_nodules: dict[int, str] = field(default_factory=dict)
    nodules: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def mark_statuses(self) -> list[str]:
        """Per mark of the submission: TP, TP-duplicate, irrelevant, FP, capped or scan-not-listed."""
        return [MARK_STATUSES[k] for k in (self.mark_status.tolist() if self.mark_status is not None else [])]

    def iter_marks(self):
        """Dicts (seriesuid, coordX, coordY, coordZ, probability, status, nodules) for every mark, in file order."""
        if self.submission is None:
            return
        sub = self.submission
        for i, (uid, (x, y, z), p, st) in enumerate(zip(sub.seriesuid, sub.xyz.tolist(), sub.probability.tolist(),
                                                         self.mark_statuses)):
            yield {"seriesuid": uid, "coordX": x, "coordY": y, "coordZ": z, "probability": p, "status": st,
                   "nodules": self.mark_nodules.get(i, "")}

    def to_json(self) -> dict[str, Any]:
        ci = self.sensitivities_ci
        return {
            "cpm": self.cpm,
            "sensitivities": {rate_key(r): v for r, v in self.sensitivities.items()},
            "cpm_ci": list(self.cpm_ci) if self.cpm_ci is not None else None,
            "sensitivities_ci": {rate_key(r): list(v) for r, v in ci.items()} if ci is not None else None,
            "cpm_bootstrap_mean": self.cpm_bootstrap_mean,
            "fp_rates": list(FP_RATES),
            "confidence": self.confidence,
            "bootstrap": {"resamples": self.n_bootstrap, "valid": self.bootstrap_valid, "seed": self.seed,
                          "curve_points": CURVE_POINTS, "fp_range": [FROC_MIN_X, FROC_MAX_X]},
            "max_marks_per_scan": self.max_marks,
            "counts": dict(self.counts),
            "protocol": "LUNA16 (official noduleCADEvaluationLUNA16 semantics; reviewer.luna16.froc)",
            "warnings": list(self.warnings),
        }


def evaluate_froc(annotations: Mapping[str, Sequence[Annotation]], excluded: Mapping[str, Sequence[Annotation]] | None,
                  submission: Iterable[SubmissionRow], seriesuids: Sequence[str] | None = None,
                  n_bootstrap: int = 1000, seed: int = 0, max_marks: int = MAX_MARKS, confidence: float = 0.95,
                  token: JobToken | None = None) -> FrocResult:
    """Score a submission with the LUNA16 protocol (see the module docstring).

    ``seriesuids``: the evaluated scans (scans without nodules included); None uses every scan named in the
    annotations, excluded findings and submission.
    """
    submission = Submission.from_rows(submission)
    excluded = excluded or {}
    if seriesuids is None:
        seriesuids = sorted(set(annotations) | set(excluded) | set(submission.seriesuid))
    m = match_marks(annotations, excluded, submission, seriesuids, max_marks=max_marks)
    L = m.lists
    fps, sens, thresholds = froc_curve(L.labels, L.probs, L.excluded, L.n_scans)
    at = {r: float(np.interp(r, fps, sens)) for r in FP_RATES}
    cpm = float(np.mean(list(at.values())))
    grid = np.linspace(FROC_MIN_X, FROC_MAX_X, CURVE_POINTS)
    res = FrocResult(cpm=cpm, sensitivities=at, cpm_ci=None, sensitivities_ci=None, fps=fps, sens=sens,
                     thresholds=thresholds, curve_fps=grid, curve_sens=np.interp(grid, fps, sens),
                     counts=m.counts, n_bootstrap=int(n_bootstrap), seed=int(seed), confidence=confidence,
                     max_marks=max_marks, submission=m.submission, mark_status=m.mark_status,
                     mark_nodules=m.mark_nodules, nodules=m.nodules, warnings=list(m.warnings))
    if n_bootstrap > 0:
        _bootstrap(res, L, n_bootstrap, seed, confidence, token)
    return res


def bootstrap_multiplicities(n_scans: int, n_bootstrap: int, seed: int):
    """Per resample, how often each scan was drawn (the draw order documented in the module docstring)."""
    rng = np.random.default_rng(seed)
    for _ in range(n_bootstrap):
        yield np.bincount(rng.integers(n_scans, size=n_scans), minlength=n_scans)


def _bootstrap(res: FrocResult, L: FrocLists, n: int, seed: int, confidence: float, token: JobToken | None) -> None:
    wc = _WeightedCurves(L)
    grid = res.curve_fps
    curves = np.empty((n, grid.size), dtype=np.float32)  # float32 as the script stores them
    points = np.empty((n, len(FP_RATES)))
    valid = 0
    for b, mult in enumerate(bootstrap_multiplicities(L.n_scans, n, seed)):
        if token is not None and b % 50 == 0:
            token.progress(b, n, "bootstrap")
        c = wc.curve(mult)
        if c is None:
            continue
        curves[valid] = np.interp(grid, c[0], c[1])
        points[valid] = np.interp(FP_RATES, c[0], c[1])
        valid += 1
    res.bootstrap_valid = valid
    if valid == 0:
        res.warnings.append("no bootstrap resample contained a nodule: no confidence intervals")
        return
    if valid < n:
        res.warnings.append(f"{n - valid} of {n} bootstrap resamples held no nodule and were left out")
    mean, lo, hi = _order_stat_ci(curves[:valid], confidence)
    res.curve_mean, res.curve_lower, res.curve_upper = mean, lo, hi
    _, plo, phi = _order_stat_ci(points[:valid], confidence)
    res.sensitivities_ci = {r: (float(plo[i]), float(phi[i])) for i, r in enumerate(FP_RATES)}
    cpms = points[:valid].mean(axis=1)
    cmean, clo, chi = _order_stat_ci(cpms[:, None], confidence)
    res.cpm_ci = (float(clo[0]), float(chi[0]))
    res.cpm_bootstrap_mean = float(cmean[0])
    if token is not None:
        token.progress(n, n, "bootstrap done")


# ---------------------------------------------------------------------------------------------------------------
# reporting
def format_table(res: FrocResult) -> str:
    ci = res.sensitivities_ci
    pct = f"{res.confidence:.0%} CI"
    lines = [f"{'FPs/scan':>9}  {'sensitivity':>11}  {pct:>15}"]
    for r in FP_RATES:
        b = f"{ci[r][0]:.3f} - {ci[r][1]:.3f}" if ci else "-"
        lines.append(f"{rate_key(r):>9}  {res.sensitivities[r]:>11.3f}  {b:>15}")
    b = f"{res.cpm_ci[0]:.3f} - {res.cpm_ci[1]:.3f}" if res.cpm_ci else "-"
    lines.append(f"{'CPM':>9}  {res.cpm:>11.3f}  {b:>15}")
    c = res.counts
    lines.append(
        f"{c['n_scans']} scans, {c['n_nodules']} nodules ({c['n_detected']} hit), {c['n_marks_scored']} marks scored: "
        f"{c['n_false_positives']} false positives, {c['n_irrelevant_marks']} on irrelevant findings, "
        f"{c['n_double_hits_ignored']} double hits ignored, {c['n_marks_capped']} beyond {res.max_marks} per scan"
        + (f"; bootstrap {res.bootstrap_valid} resamples (seed {res.seed})" if res.n_bootstrap else ""))
    return "\n".join(lines)


def plot_froc(res: FrocResult, png: str | Path, name: str = "CAD system") -> Path:
    """Log2-x FROC plot like the official script's (curve, bootstrap mean, CI band), written with the Agg
    canvas directly (no pyplot, no GUI backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, FixedFormatter, NullLocator

    fig = Figure(figsize=(7.0, 5.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    color = "tab:blue"
    if res.curve_lower is not None:
        ax.fill_between(res.curve_fps, res.curve_lower, res.curve_upper, color=color, alpha=0.15,
                        label=f"{res.confidence:.0%} CI ({res.bootstrap_valid} bootstrap resamples)")
        ax.plot(res.curve_fps, res.curve_mean, color=color, ls="--", lw=1, label="bootstrap mean")
        ax.plot(res.curve_fps, res.curve_lower, color=color, ls=":", lw=1)
        ax.plot(res.curve_fps, res.curve_upper, color=color, ls=":", lw=1)
    ax.plot(res.curve_fps, res.curve_sens, color=color, lw=2, label=f"{name} (CPM {res.cpm:.3f})")
    ax.plot(FP_RATES, [res.sensitivities[r] for r in FP_RATES], "o", color=color, ms=4)
    ax.set_xscale("log", base=2)
    ax.set_xlim(FROC_MIN_X, FROC_MAX_X)
    ax.xaxis.set_major_locator(FixedLocator(list(FP_RATES)))
    ax.xaxis.set_major_formatter(FixedFormatter([rate_key(r) for r in FP_RATES]))
    ax.xaxis.set_minor_locator(NullLocator())
    low = float(np.nanmin(res.curve_lower if res.curve_lower is not None else res.curve_sens))
    y0 = 0.5 if low >= 0.5 else max(0.0, math.floor(low * 10) / 10)
    ax.set_ylim(y0, 1.0)
    ax.set_yticks(np.round(np.arange(y0, 1.0001, 0.1), 2))
    ax.set_xlabel("Average number of false positives per scan")
    ax.set_ylabel("Sensitivity")
    ax.set_title(f"FROC performance - {name}")
    ax.grid(True, which="both", alpha=0.4)
    ax.legend(loc="lower right" if y0 == 0.5 else "upper left", fontsize=8)
    fig.tight_layout()
    out = Path(png)
    fig.savefig(out)
    return out


def write_outputs(res: FrocResult, out_dir: str | Path, name: str = "CAD system") -> list[Path]:
    """froc.png, froc.json, froc_curve.csv (10,000 points), froc_marks.csv (status of every mark) and
    froc_nodules.csv (every nodule, hit or missed) in ``out_dir``."""
    import csv
    import json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [plot_froc(res, out / "froc.png", name=name)]
    p = out / "froc.json"
    p.write_text(json.dumps(res.to_json(), indent=2) + "\n")
    written.append(p)
    p = out / "froc_curve.csv"
    with open(p, "w", newline="") as f:
        wr = csv.writer(f, lineterminator="\n")
        boot = res.curve_mean is not None
        wr.writerow(["fps_per_scan", "sensitivity"] + (["bootstrap_mean", "ci_lower", "ci_upper"] if boot else []))
        for i in range(res.curve_fps.size):
            row = [f"{res.curve_fps[i]:.6f}", f"{res.curve_sens[i]:.6f}"]
            if boot:
                row += [f"{res.curve_mean[i]:.6f}", f"{res.curve_lower[i]:.6f}", f"{res.curve_upper[i]:.6f}"]
            wr.writerow(row)
    written.append(p)
    p = out / "froc_marks.csv"
    with open(p, "w", newline="") as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(["seriesuid", "coordX", "coordY", "coordZ", "probability", "status", "nodules"])
        if res.submission is not None:
            sub, names = res.submission, res.mark_statuses
            wr.writerows([uid, *xyz, prob, names[i], res.mark_nodules.get(i, "")] for i, (uid, xyz, prob) in
                         enumerate(zip(sub.seriesuid, sub.xyz.tolist(), sub.probability.tolist())))
    written.append(p)
    p = out / "froc_nodules.csv"
    with open(p, "w", newline="") as f:
        fields = ["seriesuid", "nodule", "coordX", "coordY", "coordZ", "diameter_mm", "detected", "probability",
                  "n_hits"]
        wr = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        wr.writeheader()
        wr.writerows(res.nodules)
    written.append(p)
    return written


__all__ = ["FP_RATES", "MARK_STATUSES", "FrocResult", "FrocLists", "Matching", "evaluate_froc", "match_marks", "froc_curve", "roc_curve",
           "plot_froc", "format_table", "write_outputs", "rate_key", "bootstrap_multiplicities"]
