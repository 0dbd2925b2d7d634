"""Findings as a DICOM Comprehensive 3D SR holding a TID 1500 Measurement Report (highdicom), and back.

One report per observer (a reader or an algorithm). Each finding is one TID 1410 measurement group:

* region: a POINT ``SCOORD3D`` in patient coordinates (LPS mm) in the source's frame of reference;
* finding type: Nodule (SCT 27925004), Lesion (SCT 52988006), Mass (SCT 4147007); kinds without a standard code
  use the local scheme ``99RVWR`` (synthetic-nodule, fnaf, ...);
* tracking identifier (free text) and tracking UID;
* measurements: Diameter (SCT 81827009, mm); a model's probability as Certainty of Finding (DCM 111012, unit
  "1"); a reader's rating as Score (SCT 246262008, unit "{score}"); an evidential uncertainty (99RVWR);
* a device observer's algorithm identification (name, version) per group.
"""

from __future__ import annotations

from typing import Sequence

import highdicom as hd
import numpy as np
from highdicom.sr import CodedConcept
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

import reviewer
from reviewer.findings import Finding

LOCAL = "99RVWR"
KIND_CODES: dict[str, CodedConcept] = {
    "nodule": CodedConcept("27925004", "SCT", "Nodule"),
    "lesion": CodedConcept("52988006", "SCT", "Lesion"),
    "mass": CodedConcept("4147007", "SCT", "Mass"),
    "synthetic-nodule": CodedConcept("synthetic-nodule", LOCAL, "Synthetic nodule inserted by reviewer"),
    "fnaf": CodedConcept("fnaf", LOCAL, "False-negative adversarial feature"),
}
DIAMETER = CodedConcept("81827009", "SCT", "Diameter")
PROBABILITY = CodedConcept("111012", "DCM", "Certainty of Finding")
RATING = CodedConcept("246262008", "SCT", "Score")
UNCERTAINTY = CodedConcept("uncertainty", LOCAL, "Evidential uncertainty")
MM = CodedConcept("mm", "UCUM", "millimeter")
NO_UNITS = CodedConcept("1", "UCUM", "no units")
SCORE_UNIT = CodedConcept("{score}", "UCUM", "score")
CASE_RATING = "case rating"
PROCEDURES = {"CT": CodedConcept("25045-6", "LN", "CT unspecified body region"),
              "MR": CodedConcept("25056-3", "LN", "MRI unspecified body region")}


def kind_code(kind: str) -> CodedConcept:
    code = KIND_CODES.get(kind)
    if code is None:  # another kind: a local code named after it
        value = "".join(c for c in kind.lower() if c.isalnum() or c == "-")[:16] or "finding"
        code = CodedConcept(value, LOCAL, kind[:64] or "Finding")
    return code


def kind_of(code: CodedConcept) -> str:
    for k, c in KIND_CODES.items():
        if c.value == code.value and c.scheme_designator == code.scheme_designator:
            return k
    return code.meaning if code.scheme_designator != LOCAL else code.value


def device_uid(name: str) -> str:
    """A stable UID for an algorithm observer (derived from its name)."""
    return generate_uid(prefix="2.25.", entropy_srcs=["reviewer-device", name])


def _observation_context(observer: str, observer_type: str) -> hd.sr.ObservationContext:
    if observer_type == "person":
        person = hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=observer or "unknown"))
        return hd.sr.ObservationContext(observer_person_context=person)
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=device_uid(observer or "reviewer"), name=(observer or "reviewer")[:64],
            manufacturer_name="reviewer", model_name=(observer or "reviewer")[:64]))
    return hd.sr.ObservationContext(observer_device_context=device)


def _group(f: Finding, n: int, frame_uid: str) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    tracking = hd.sr.TrackingIdentifier(uid=f.tracking_uid or generate_uid(),
                                        identifier=(f.tracking_id or f"{f.kind} {n}")[:64])
    region = hd.sr.ImageRegion3D(graphic_type=hd.sr.GraphicTypeValues3D.POINT,
                                 graphic_data=np.asarray([f.center_lps], dtype=float),
                                 frame_of_reference_uid=frame_uid)
    measurements = []
    if f.diameter_mm is not None:
        measurements.append(hd.sr.Measurement(name=DIAMETER, value=float(f.diameter_mm), unit=MM))
    if f.score is not None and f.score_kind == "probability":
        measurements.append(hd.sr.Measurement(name=PROBABILITY, value=float(f.score), unit=NO_UNITS))
    elif f.score is not None and f.score_kind == "rating":
        measurements.append(hd.sr.Measurement(name=RATING, value=float(f.score), unit=SCORE_UNIT))
    if f.uncertainty is not None:
        measurements.append(hd.sr.Measurement(name=UNCERTAINTY, value=float(f.uncertainty), unit=NO_UNITS))
    algorithm = None
    if f.observer_type == "device":
        algorithm = hd.sr.AlgorithmIdentification(name=(f.observer or "reviewer")[:64], version=reviewer.__version__)
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking, referenced_region=region, finding_type=kind_code(f.kind),
        algorithm_id=algorithm, measurements=measurements or None)


def findings_to_sr(findings: Sequence[Finding], source_images: Sequence[Dataset], *, observer: str,
                   observer_type: str, series_number: int = 950, series_description: str = "",
                   sop_instance_uid: str | None = None, series_uid: str | None = None,
                   case_score: float | None = None) -> hd.sr.Comprehensive3DSR:
    """A Comprehensive 3D SR with the findings of one observer, referencing ``source_images`` as evidence.

    ``case_score``: a case-level rating (an ROC reading) as a TID 1501 group "case rating" with a Score.
    """
    if not source_images:
        raise ValueError("an SR needs the source images it refers to")
    frame_uid = source_images[0].FrameOfReferenceUID
    modality = str(source_images[0].get("Modality", "CT"))
    groups: list = [_group(f, n, frame_uid) for n, f in enumerate(findings, 1)]
    if case_score is not None:
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=CASE_RATING),
            measurements=[hd.sr.Measurement(name=RATING, value=float(case_score), unit=SCORE_UNIT)]))
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(observer, observer_type),
        procedure_reported=PROCEDURES.get(modality, PROCEDURES["CT"]),
        imaging_measurements=groups or None,
    )
    who = "reader" if observer_type == "person" else "algorithm"
    sr = hd.sr.Comprehensive3DSR(
        evidence=list(source_images), content=report, series_number=series_number,
        series_instance_uid=series_uid or generate_uid(), sop_instance_uid=sop_instance_uid or generate_uid(),
        instance_number=1, manufacturer="reviewer", is_complete=True,
        series_description=(series_description or f"reviewer findings ({who} {observer})")[:64],
    )
    sr.SoftwareVersions = reviewer.__version__
    if any(f.kind not in ("nodule", "lesion", "mass") or f.uncertainty is not None for f in findings):
        scheme = Dataset()  # declare the local coding scheme of the codes that have no standard equivalent
        scheme.CodingSchemeDesignator = LOCAL
        scheme.CodingSchemeName = "reviewer local codes"
        scheme.CodingSchemeResponsibleOrganization = "reviewer"
        sr.CodingSchemeIdentificationSequence = [scheme]
    return sr


def sr_case_score(sr: Dataset) -> float | None:
    """The case-level rating of an SR written with ``case_score`` (None when it has none)."""
    doc = sr if isinstance(sr, hd.sr.Comprehensive3DSR) else hd.sr.Comprehensive3DSR.from_dataset(sr)
    for g in doc.content.get_image_measurement_groups():
        if str(g.tracking_identifier) == CASE_RATING:
            for m in g.get_measurements(name=RATING):
                return float(m.value)
    return None


def sr_to_findings(sr: Dataset) -> list[Finding]:
    """Read findings back from an SR written by :func:`findings_to_sr` (or any TID 1500 with point regions)."""
    doc = sr if isinstance(sr, hd.sr.Comprehensive3DSR) else hd.sr.Comprehensive3DSR.from_dataset(sr)
    observer, observer_type = "", "device"
    content = doc.content
    for item in content[0].ContentSequence:
        name = getattr(item, "ConceptNameCodeSequence", [None])[0]
        if name is None:
            continue
        if name.CodeValue == "121008" and getattr(item, "PersonName", None) is not None:  # Person Observer Name
            observer, observer_type = str(item.PersonName).rstrip("^"), "person"
        if name.CodeValue == "121013" and getattr(item, "TextValue", None):  # Device Observer Name
            observer, observer_type = str(item.TextValue), "device"
    out = []
    for g in content.get_planar_roi_measurement_groups():
        roi = g.roi
        if roi is None:
            continue
        point = np.asarray(roi.value, dtype=float).reshape(-1, 3).mean(axis=0)
        f = Finding(tuple(point), kind=kind_of(g.finding_type) if g.finding_type else "finding",
                    observer=observer, observer_type=observer_type,  # type: ignore[arg-type]
                    tracking_id=str(g.tracking_identifier or ""), tracking_uid=str(g.tracking_uid or ""))
        for m in g.get_measurements():
            if m.name == DIAMETER:
                f.diameter_mm = float(m.value)
            elif m.name == PROBABILITY:
                f.score, f.score_kind = float(m.value), "probability"
            elif m.name == RATING:
                f.score, f.score_kind = float(m.value), "rating"
            elif m.name == UNCERTAINTY:
                f.uncertainty = float(m.value)
        out.append(f)
    return out
