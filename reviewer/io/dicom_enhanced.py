"""Enhanced (and other) multi-frame DICOM: one SliceRef per frame, grouped into stacks that are 3D volumes.

Position, orientation, pixel spacing and rescale come from each frame's functional groups (Per-frame first,
then Shared). Frames that belong to different volumes (echoes, temporal positions, magnitude/phase or field
map image types, several stacks) get different stack keys: the DimensionIndexValues without the in-stack
position, the frame type, the temporal position and the orientation. Frames repeating a position inside one
key are split by order of occurrence.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pydicom

from reviewer.io.dicom_headers import FileHeader
from reviewer.io.slices import SliceRef

IN_STACK_POINTERS = {0x00209057, 0x00200032}  # InStackPositionNumber, ImagePositionPatient
FRAME_TYPE_SEQUENCES = ("MRImageFrameTypeSequence", "CTImageFrameTypeSequence", "XAXRFFrameCharacteristicsSequence")


def _item(groups: list[pydicom.Dataset], keyword: str) -> pydicom.Dataset | None:
    for g in groups:
        if g is not None and keyword in g and len(g[keyword].value) > 0:
            return g[keyword].value[0]
    return None


def _floats(v: Any) -> list[float] | None:
    if v is None:
        return None
    try:
        return [float(x) for x in (v if not isinstance(v, (str, bytes, float, int)) else [v])]
    except (TypeError, ValueError):
        return None


def frame_slices(ds: pydicom.Dataset, header: FileHeader) -> list[tuple[tuple, str, SliceRef]]:
    """(stack key, stack label, slice) for every frame of a multi-frame file."""
    n = header.n_frames
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    dim_pointers = [int(d.DimensionIndexPointer) for d in ds.get("DimensionIndexSequence", []) or []
                    if "DimensionIndexPointer" in d]
    out = []
    for f in range(n):
        pf = per_frame[f] if f < len(per_frame) else None
        groups = [pf, shared]
        pos = _item(groups, "PlanePositionSequence")
        ori = _item(groups, "PlaneOrientationSequence")
        meas = _item(groups, "PixelMeasuresSequence")
        pvt = _item(groups, "PixelValueTransformationSequence")
        voi = _item(groups, "FrameVOILUTSequence")
        content = _item([pf], "FrameContentSequence")
        ipp = _floats(pos.get("ImagePositionPatient")) if pos is not None else None
        iop = _floats(ori.get("ImageOrientationPatient")) if ori is not None else None
        if ipp is None and n > 1 and header.ipp is not None and not per_frame:
            ipp = None  # classic multi-frame (NM/US): positions unknown per frame
        if iop is None:
            iop = header.iop
        ps = _floats(meas.get("PixelSpacing")) if meas is not None else None
        thickness = _floats(meas.get("SliceThickness")) if meas is not None else None
        slope = float(pvt.get("RescaleSlope", 1.0)) if pvt is not None else header.rescale_slope
        intercept = float(pvt.get("RescaleIntercept", 0.0)) if pvt is not None else header.rescale_intercept
        window = None
        if voi is not None and voi.get("WindowWidth") is not None and voi.get("WindowCenter") is not None:
            ww, wc = _floats(voi.get("WindowWidth")), _floats(voi.get("WindowCenter"))
            if ww and wc and ww[0] > 0:
                window = (ww[0], wc[0])
        window = window or header.window
        key: list[Any] = []
        label: list[str] = []
        in_stack = f
        if content is not None:
            div = [int(v) for v in (content.get("DimensionIndexValues") or [])]
            if not isinstance(content.get("DimensionIndexValues"), (list, pydicom.multival.MultiValue)) and \
                    content.get("DimensionIndexValues") is not None:
                div = [int(content.get("DimensionIndexValues"))]
            for ptr, val in zip(dim_pointers, div):
                if ptr in IN_STACK_POINTERS:
                    in_stack = val
                else:
                    key.append((ptr, val))
            for kw, short in (("StackID", "stack"), ("TemporalPositionIndex", "time")):
                v = content.get(kw)
                if v is not None:
                    key.append((kw, str(v)))
                    label.append(f"{short} {v}")
            if content.get("InStackPositionNumber") is not None:
                in_stack = int(content.InStackPositionNumber)
        ftype = None
        for seq in FRAME_TYPE_SEQUENCES:
            it = _item([pf, shared], seq)
            if it is not None and it.get("FrameType") is not None:
                ftype = [str(x) for x in it.FrameType]
                break
        if ftype:
            key.append(("FrameType", tuple(ftype)))
            label.append("/".join(ftype[2:]) if len(ftype) > 2 else "/".join(ftype))
        if iop is not None:
            key.append(("iop", tuple(np.round(np.asarray(iop), 3))))
        ref = SliceRef(header, f, ipp, iop, ps or header.pixel_spacing, slope, intercept, window, in_stack,
                       thickness[0] if thickness else header.slice_thickness)
        out.append((tuple(key), ", ".join(dict.fromkeys(label)), ref))
    return _split_repeated_positions(out)


def _split_repeated_positions(items: list[tuple[tuple, str, SliceRef]]) -> list[tuple[tuple, str, SliceRef]]:
    """Inside one key, the n-th frame at a given position goes to sub-stack n (e.g. unlabelled echoes)."""
    seen: dict[tuple, dict] = defaultdict(dict)
    result = []
    for key, label, ref in items:
        pos = tuple(np.round(ref.ipp, 3)) if ref.ipp is not None else ("frame", ref.frame)
        count = seen[key].get(pos, 0)
        seen[key][pos] = count + 1
        if count:
            result.append((key + (("repeat", count),), f"{label} #{count + 1}".strip(", "), ref))
        else:
            result.append((key, label, ref))
    return result


def classic_multiframe_positions(ds: pydicom.Dataset, header: FileHeader, refs: list[SliceRef]) -> None:
    """Give frames of a multi-frame file without per-frame positions positions along the normal.

    Uses the top-level IPP and SpacingBetweenSlices (or SliceThickness); NM/US style objects.
    """
    if all(r.ipp is not None for r in refs) or header.ipp is None or header.iop is None:
        return
    row, col = np.asarray(header.iop[:3]), np.asarray(header.iop[3:])
    normal = np.cross(row, col)
    step = header.spacing_between_slices or header.slice_thickness
    if not step:
        return
    for r in refs:
        r.ipp = list(np.asarray(header.ipp) + normal * step * r.frame)
