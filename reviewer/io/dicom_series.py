"""Assemble DICOM slices into a Volume with correct patient geometry (the way Slicer does it).

Slices are ordered along the normal ``cross(row, col)`` of ImageOrientationPatient by ``dot(IPP, normal)``,
never by file name or InstanceNumber. Uneven spacing, gaps, duplicates and missing geometry are reported in
``volume.warnings`` with numbers, not silently hidden.
"""

from __future__ import annotations

import numpy as np

from reviewer.errors import InputError
from reviewer.geometry import Geometry, Volume
from reviewer.io.dicom_pixels import read_slices, stored_range
from reviewer.io.slices import SliceRef
from reviewer.jobs import JobToken

SPACING_TOLERANCE_MM = 0.01
DUPLICATE_TOLERANCE_MM = 1e-3


def _orthonormal_axes(iop: list[float], where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    row = np.asarray(iop[:3], dtype=float)
    col = np.asarray(iop[3:6], dtype=float)
    if np.linalg.norm(row) < 1e-6 or np.linalg.norm(col) < 1e-6:
        raise InputError(where, f"ImageOrientationPatient {iop} has a zero vector")
    row /= np.linalg.norm(row)
    col = col - row * np.dot(row, col)  # tolerate slightly non-orthogonal cosines from the scanner
    col /= np.linalg.norm(col)
    return row, col, np.cross(row, col)


def _summarise(values: np.ndarray) -> str:
    return f"min {values.min():.4g}, median {np.median(values):.4g}, max {values.max():.4g} mm"


def order_slices(slices: list[SliceRef]) -> tuple[list[SliceRef], dict]:
    """Sort slices along the normal; return (sorted slices, geometry facts and warnings)."""
    warnings: list[str] = []
    first = slices[0]
    have_geometry = all(s.ipp is not None and s.iop is not None for s in slices)
    if not have_geometry:
        missing = sum(1 for s in slices if s.ipp is None or s.iop is None)
        warnings.append(f"{missing} of {len(slices)} images lack ImagePositionPatient/ImageOrientationPatient: "
                        "slices ordered by InstanceNumber, positions and orientation are NOT reliable")
        ordered = sorted(slices, key=lambda s: s.order)
        iop = first.iop or [1, 0, 0, 0, 1, 0]
        row, col, normal = _orthonormal_axes(iop, first.label())
        step = first.slice_thickness or 1.0
        if not first.slice_thickness:
            warnings.append("no slice spacing known: 1 mm assumed")
        origin = np.asarray(first.ipp if first.ipp is not None else [0.0, 0.0, 0.0], dtype=float)
        return ordered, {"row": row, "col": col, "normal": normal, "step": float(step), "origin": origin,
                         "positions": None, "warnings": warnings}

    iops = np.array([s.iop for s in slices], dtype=float)
    if np.abs(iops - iops[0]).max() > 1e-3:
        warnings.append("ImageOrientationPatient differs between slices by up to "
                        f"{np.abs(iops - iops[0]).max():.4g}: the first slice's orientation is used")
    row, col, normal = _orthonormal_axes(first.iop, first.label())
    ipps = np.array([s.ipp for s in slices], dtype=float)
    dist = ipps @ normal
    idx = np.argsort(dist, kind="stable")
    # duplicates: same position along the normal
    keep = [idx[0]]
    dups = 0
    for a in idx[1:]:
        if abs(dist[a] - dist[keep[-1]]) < DUPLICATE_TOLERANCE_MM:
            dups += 1
            continue
        keep.append(a)
    if dups:
        warnings.append(f"{dups} images duplicate the position of another image and were left out "
                        f"({len(keep)} distinct positions kept of {len(slices)})")
    ordered = [slices[a] for a in keep]
    pos = dist[keep]
    sorted_ipps = ipps[keep]
    if len(ordered) > 1:
        diffs = np.diff(pos)
        step = float(np.median(diffs))
        if diffs.max() - diffs.min() > SPACING_TOLERANCE_MM:
            gaps = np.nonzero(diffs > 1.5 * step)[0]
            msg = f"uneven slice spacing ({_summarise(diffs)} over {len(diffs)} steps); volume built with " \
                  f"{step:.4g} mm, so positions between slices are approximate"
            if gaps.size:
                where = ", ".join(f"{diffs[g]:.4g} mm after slice {g}" for g in gaps[:5])
                msg += f"; {gaps.size} gap(s): {where}" + (" ..." if gaps.size > 5 else "")
            warnings.append(msg)
        inplane = (sorted_ipps - sorted_ipps[0]) @ np.stack([row, col], axis=1)
        shift = np.abs(inplane).max()
        if shift > SPACING_TOLERANCE_MM:
            warnings.append(f"slice positions shift in-plane by up to {shift:.4g} mm (gantry tilt or sheared "
                            "stack): the volume is treated as orthogonal, positions away from the first slice "
                            "are approximate")
    else:
        step = float(first.slice_thickness or 1.0)
    return ordered, {"row": row, "col": col, "normal": normal, "step": step, "origin": sorted_ipps[0],
                     "positions": sorted_ipps, "warnings": warnings}


def build_volume(slices: list[SliceRef], token: JobToken | None = None, name: str = "",
                 source: str = "") -> Volume:
    """Sort, read and rescale ``slices`` into one Volume (array (k, j, i), geometry in LPS)."""
    if not slices:
        raise InputError(source or None, "no images to load")
    ordered, geo = order_slices(slices)
    warnings = list(geo["warnings"])
    first = ordered[0]
    ps = first.pixel_spacing
    if ps is None or len(ps) < 2 or min(ps) <= 0:
        warnings.append("no PixelSpacing: 1 mm pixels assumed")
        ps = [1.0, 1.0]
    if any(s.pixel_spacing is not None and np.abs(np.subtract(s.pixel_spacing[:2], ps[:2])).max() > 1e-4
           for s in ordered):
        warnings.append("PixelSpacing differs between slices: the first slice's spacing is used")
    step = geo["step"]
    if step <= 0:
        step = 1.0
    direction = np.stack([geo["row"], geo["col"], geo["normal"]], axis=1)
    array, pixel_warnings = read_slices(ordered, token)
    warnings += pixel_warnings
    geom = Geometry(tuple(array.shape), (float(ps[1]), float(ps[0]), step), tuple(geo["origin"]),
                    tuple(map(tuple, direction)))
    h = first.header
    window = first.window
    if window is not None and h.photometric == "MONOCHROME1":
        lo, hi = stored_range(first)
        width, level = window
        window = (width, first.slope * (lo + hi) + 2 * first.intercept - level)
    modality = h.modality
    unit = "HU" if modality == "CT" and (h.rescale_type in ("", "HU")) else (h.rescale_type or "")
    metadata = dicom_metadata(ordered, geo)
    if h.photometric == "MONOCHROME1":
        metadata["inverted_from_monochrome1"] = True
    if h.samples_per_pixel > 1:
        warnings.append(f"colour image ({h.photometric}) converted to grey (luminance)")
    return Volume(array, geom, modality=modality, unit=unit, name=name or h.series_description or h.series_uid,
                  source=source or h.path, metadata=metadata, warnings=warnings, default_window=window)


def dicom_metadata(ordered: list[SliceRef], geo: dict) -> dict:
    """Patient/study/series tags later stages need, as plain JSON-able values."""
    h = ordered[0].header
    return {
        "format": "dicom",
        "PatientName": h.patient_name,
        "PatientID": h.patient_id,
        "StudyInstanceUID": h.study_uid,
        "SeriesInstanceUID": h.series_uid,
        "FrameOfReferenceUID": h.frame_of_reference_uid,
        "Modality": h.modality,
        "SeriesDescription": h.series_description,
        "SeriesNumber": h.series_number,
        "StudyDate": h.study_date,
        "StudyDescription": h.study_description,
        "SliceThickness": ordered[0].slice_thickness,
        "KVP": h.kvp,
        "ConvolutionKernel": h.convolution_kernel,
        "Manufacturer": h.manufacturer,
        "SOPClassUID": h.sop_class_uid,
        "SOPInstanceUIDs": [s.header.sop_instance_uid for s in ordered],
        "frames": [s.frame for s in ordered] if any(s.frame is not None for s in ordered) else None,
        "files": [s.path for s in ordered],
        "ImagePositionPatient": None if geo["positions"] is None else [list(map(float, p)) for p in geo["positions"]],
        "RescaleSlope": [float(s.slope) for s in ordered] if len({s.slope for s in ordered}) > 1 else ordered[0].slope,
        "RescaleIntercept": [float(s.intercept) for s in ordered] if len({s.intercept for s in ordered}) > 1
        else ordered[0].intercept,
        "PhotometricInterpretation": h.photometric,
    }
