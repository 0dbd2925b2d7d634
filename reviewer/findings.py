"""Findings shared by every domain: a detector's candidates, a reader's marks, inserted nodules and FNAFs.

One plain, Qt-free record so the detection lab, reader studies and exports (DICOM SR, NIfTI sidecars, CSV) speak
the same language. Locations are always world coordinates (patient LPS, mm); convert with
:class:`reviewer.geometry.Geometry`, never by hand.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Literal

ObserverType = Literal["person", "device"]
ScoreKind = Literal["probability", "rating", "none"]


@dataclass
class Finding:
    center_lps: tuple[float, float, float]
    kind: str = "nodule"  # nodule | fnaf | lesion | synthetic-nodule | ...
    diameter_mm: float | None = None
    score: float | None = None  # probability in [0, 1] or a reader's rating
    score_kind: ScoreKind = "none"
    uncertainty: float | None = None  # e.g. the evidential head's u = 2 / (alpha + beta)
    observer: str = ""  # reader ID or model name
    observer_type: ObserverType = "device"
    tracking_id: str = ""
    tracking_uid: str = field(default_factory=lambda: "2.25." + str(uuid.uuid4().int))
    source: str = ""  # series UID or file the finding refers to
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        c = tuple(float(v) for v in self.center_lps)
        if len(c) != 3:
            raise ValueError(f"a finding's centre needs 3 coordinates (LPS mm), got {self.center_lps!r}")
        self.center_lps = c  # type: ignore[assignment]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["center_lps"] = list(self.center_lps)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Finding":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def findings_to_json(findings: Iterable[Finding]) -> list[dict[str, Any]]:
    return [f.to_json() for f in findings]


def findings_from_json(items: Iterable[dict[str, Any]]) -> list[Finding]:
    return [Finding.from_json(d) for d in items]
