"""Run a detector over a LUNA16-format dataset and score it with the LUNA16 FROC protocol (reviewer.luna16)."""

from __future__ import annotations

from dataclasses import dataclass

from reviewer.jobs import JobToken


@dataclass
class DatasetDetections:
    rows: list[tuple[str, float, float, float, float]]  # LUNA16 submission rows
    seriesuids: list[str]
    warnings: dict[str, list[str]]
    seconds: dict[str, float]


def detect_dataset(detector, data: str, n: int | None = None, token: JobToken | None = None) -> DatasetDetections:
    """Detections for the first ``n`` listed scans of a LUNA16 folder (or ``demo:ct-test`` ...)."""
    from reviewer.luna16.dataset import open_luna16

    ds = open_luna16(data)
    uids = [u for u in ds.seriesuids if u in ds.scans][: n or None]
    rows, warnings, seconds = [], {}, {}
    for i, uid in enumerate(uids):
        if token is not None:
            token.progress(i, len(uids), f"detecting {uid[-12:]}")
        res = detector.detect(ds.load(uid))
        rows += [(uid, *f.center_lps, float(f.score)) for f in res.findings]
        warnings[uid] = res.warnings
        seconds[uid] = res.timings.get("total", 0.0)
    return DatasetDetections(rows, uids, warnings, seconds)


def evaluate_detector(detector, data: str, n: int | None = None, n_bootstrap: int = 200, seed: int = 0,
                      token: JobToken | None = None):
    """(FrocResult, DatasetDetections) on the scans of ``data`` (annotations and excluded findings from it)."""
    from reviewer.luna16.dataset import open_luna16
    from reviewer.luna16.froc import evaluate_froc
    from reviewer.luna16.io import SubmissionRow

    ds = open_luna16(data)
    det = detect_dataset(detector, data, n, token)
    sub = [SubmissionRow(*r) for r in det.rows]
    ann = {u: ds.annotations.get(u, []) for u in det.seriesuids}
    exc = {u: ds.excluded.get(u, []) for u in det.seriesuids}
    return evaluate_froc(ann, exc, sub, det.seriesuids, n_bootstrap=n_bootstrap, seed=seed), det
