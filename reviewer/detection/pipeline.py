"""The two-stage nodule detector: pre-processing, candidate generation, false-positive reduction.

``Detector.from_cards(cg_card, fpr_card, device).detect(volume, token)`` returns a :class:`DetectionResult` with
findings in world LPS mm (probability from the FPR model, its uncertainty when it has a Beta head, diameter from
the CG's size regression at the heat-map peak), timings per stage and the domain warnings of both cards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from reviewer.detection import cg as cg_mod
from reviewer.detection import fpr as fpr_mod
from reviewer.detection.domain import check_domain, merge_warnings
from reviewer.detection.preprocess import lung_mask, mask_bbox, resample, window01
from reviewer.findings import Finding
from reviewer.geometry import Volume
from reviewer.jobs import JobToken


# The CG hands up to 300 peaks to the FPR, which keeps the best 100: the demo CG, trained for minutes on a CPU,
# finds about twice as many nodules among its top 300 peaks as among its top 100 (README), and the FPR is cheap.
CG_CANDIDATES = 300


def _card(card_or_name, task: str):
    from reviewer.models.cards import ModelCard, find_card

    return card_or_name if isinstance(card_or_name, ModelCard) else find_card(str(card_or_name), task)


@dataclass
class CandidateResult:
    centers_lps: np.ndarray  # (N, 3)
    scores: np.ndarray  # (N,) heat-map peak values
    diameters_mm: np.ndarray  # (N,)
    timings: dict[str, float] = field(default_factory=dict)


class CandidateSource:
    """The candidate generator of a card: resample, lung mask, sliding-window heat map, peaks + NMS."""

    def __init__(self, model: torch.nn.Module, card, device=None, max_candidates: int = 100, threshold: float | None = None,
                 window: int | None = None, overlap: float | None = None):
        self.model = model
        self.card = card
        self.cg_name = card.name
        self.device = device or next(model.parameters()).device
        pre = card.preprocessing
        sp = pre.get("spacing_mm", 2.0)
        self.spacing = float(sp[0] if isinstance(sp, (list, tuple)) else sp)
        self.window = tuple(pre.get("hu_window", (-1000.0, 400.0)))
        self.win = int(window or pre.get("window_inference", 96))
        self.overlap = float(overlap if overlap is not None else pre.get("overlap", 0.25))
        self.max_candidates = max_candidates
        self.threshold = float(threshold if threshold is not None else pre.get("peak_threshold", 0.005))

    @classmethod
    def from_card(cls, card_or_name, device=None, **kw) -> "CandidateSource":
        from reviewer.models.cards import build_model

        card = _card(card_or_name, "nodule-candidate-generation")
        return cls(build_model(card, device), card, device, **kw)

    def candidates(self, volume: Volume, token: JobToken | None = None) -> CandidateResult:
        t0 = time.perf_counter()
        r = resample(volume, self.spacing)
        mask = lung_mask(r)
        sl = mask_bbox(mask, margin=4)
        img = window01(r.array[sl], self.window)
        t1 = time.perf_counter()
        out = cg_mod.sliding_window(self.model, img, self.win, self.overlap, self.device,
                                    token=token.sub(0, 1, 1) if token is not None else None)
        t2 = time.perf_counter()
        cands = cg_mod.find_peaks(out[0], out[1], mask[sl], self.threshold, self.max_candidates,
                                  spacing_mm=self.spacing)
        off = np.array([sl[2].start, sl[1].start, sl[0].start], float)
        ijk = np.array([c.ijk for c in cands], float).reshape(-1, 3) + off
        centers = r.voxel_to_world(ijk).reshape(-1, 3)
        t3 = time.perf_counter()
        return CandidateResult(centers, np.array([c.score for c in cands], float),
                               np.array([c.diameter_mm for c in cands], float),
                               {"preprocess": t1 - t0, "candidates": t2 - t1, "peaks": t3 - t2})

    def false_candidates(self, volume: Volume, nodules) -> list[np.ndarray]:
        """Candidate centres that hit no nodule (distance >= d/2 from every ``(centre, diameter)``)."""
        res = self.candidates(volume)
        out = []
        for c in res.centers_lps:
            if all(np.linalg.norm(c - np.asarray(nc)) >= d / 2 for nc, d in nodules):
                out.append(c)
        return out


@dataclass
class DetectionResult:
    findings: list[Finding]
    timings: dict[str, float]
    warnings: list[str]

    def as_dict(self) -> dict[str, Any]:
        from reviewer.findings import findings_to_json

        return {"findings": findings_to_json(self.findings), "timings": self.timings, "warnings": self.warnings}


class Detector:
    """CG + FPR. ``detect`` is a job function (``token`` reports progress and cancels)."""

    def __init__(self, cg: CandidateSource, fpr_model: torch.nn.Module, fpr_card, device=None,
                 max_findings: int = 100):
        self.cg = cg
        self.max_findings = max_findings
        self.fpr_model = fpr_model
        self.fpr_card = fpr_card
        self.spec = fpr_mod.FprSpec.from_card(fpr_card)
        self.device = device or next(fpr_model.parameters()).device

    @classmethod
    def from_cards(cls, cg_card, fpr_card, device=None, max_candidates: int = 100,
                   cg_candidates: int = CG_CANDIDATES) -> "Detector":
        """``cg_candidates``: peaks the CG hands to the FPR; ``max_candidates``: findings kept, by FPR probability
        (LUNA16 scores at most 100 marks per scan)."""
        from reviewer.models.cards import build_model

        if device is None:
            from reviewer.device import get_device

            device = get_device()
        fcard = _card(fpr_card, "nodule-false-positive-reduction")
        return cls(CandidateSource.from_card(cg_card, device, max_candidates=max(cg_candidates, max_candidates)),
                   build_model(fcard, device), fcard, device, max_findings=max_candidates)

    @property
    def name(self) -> str:
        return self.fpr_card.name

    def domain_warnings(self, volume: Volume) -> list[str]:
        return merge_warnings(check_domain(volume, self.fpr_card), check_domain(volume, self.cg.card))

    def detect(self, volume: Volume, token: JobToken | None = None) -> DetectionResult:
        t0 = time.perf_counter()
        warnings = self.domain_warnings(volume)
        if token is not None:
            token.progress(0, 3, "candidate generation")
        cands = self.cg.candidates(volume, token.sub(0, 2, 3) if token is not None else None)
        if token is not None:
            token.progress(2, 3, f"false-positive reduction on {len(cands.centers_lps)} candidates")
        t1 = time.perf_counter()
        patches = fpr_mod.extract_patches(volume, cands.centers_lps, self.spec)
        t2 = time.perf_counter()
        prob, unc = fpr_mod.score_patches(self.fpr_model, patches, self.device)
        t3 = time.perf_counter()
        source = str(volume.metadata.get("series_uid") or volume.source or volume.name)
        findings = []
        for n in np.argsort(-prob, kind="stable")[: self.max_findings]:
            findings.append(Finding(
                center_lps=tuple(cands.centers_lps[n]), kind="nodule", diameter_mm=round(float(cands.diameters_mm[n]), 2),
                score=float(prob[n]), score_kind="probability",
                uncertainty=None if unc is None else float(unc[n]), observer=self.name, observer_type="device",
                source=source, label=f"{self.name} {prob[n]:.2f}",
                extra={"cg_score": float(cands.scores[n]), "cg": self.cg.cg_name}))
        timings = dict(cands.timings)
        timings.update({"patches": t2 - t1, "fpr": t3 - t2, "total": time.perf_counter() - t0})
        if token is not None:
            token.progress(3, 3, f"{len(findings)} findings")
        return DetectionResult(findings, timings, warnings)
