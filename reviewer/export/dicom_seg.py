"""Masks and heat maps on the source grid as DICOM Segmentation objects (highdicom).

A label map (integer array, 0 = background) becomes a BINARY segmentation with one segment per label; a heat map
(float array) a FRACTIONAL one (PROBABILITY, 8-bit), its values mapped linearly from ``value_range`` to 0..1.
Frames follow the source images, which are single-frame slices in the volume's k order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import highdicom as hd
import numpy as np
from highdicom.sr import CodedConcept
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

import reviewer
from reviewer.export.dicom_sr import kind_code


@dataclass
class MaskLayer:
    """A mask or heat map on the source grid (array [k, j, i]).

    ``kind``: 'labels' (integers, 0 = background) or 'heatmap' (floats). ``labels`` names label values;
    ``finding_kind`` is what is segmented (nodule, lesion, ...); ``observer`` the reader or model that made it.
    """

    name: str
    array: np.ndarray
    kind: str = "labels"
    labels: dict[int, str] = field(default_factory=dict)
    finding_kind: str = "nodule"
    observer: str = ""
    observer_type: str = "device"
    value_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("labels", "heatmap"):
            raise ValueError(f"mask {self.name!r}: kind must be 'labels' or 'heatmap', got {self.kind!r}")
        self.array = np.asarray(self.array)
        if self.array.ndim != 3:
            raise ValueError(f"mask {self.name!r}: needs a 3D array [k, j, i], got shape {self.array.shape}")

    def fractions(self) -> np.ndarray:
        """Heat map values as fractions in [0, 1]."""
        a = np.nan_to_num(self.array.astype(np.float32))
        lo, hi = self.value_range or (float(a.min()), float(a.max()))
        if hi <= lo:
            return np.zeros_like(a)
        return np.clip((a - lo) / (hi - lo), 0.0, 1.0)


def _algorithm(layer: MaskLayer) -> tuple[hd.seg.SegmentAlgorithmTypeValues, hd.AlgorithmIdentificationSequence | None]:
    if layer.observer_type == "person":
        return hd.seg.SegmentAlgorithmTypeValues.MANUAL, None
    ident = hd.AlgorithmIdentificationSequence(name=(layer.observer or "reviewer")[:64],
                                               family=codes.cid7162.ArtificialIntelligence,
                                               version=reviewer.__version__)
    return hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, ident


def mask_to_seg(layer: MaskLayer, source_images: Sequence[Dataset], *, series_number: int = 960,
                series_uid: str | None = None, sop_instance_uid: str | None = None) -> hd.seg.Segmentation:
    n = len(source_images)
    if layer.array.shape != (n, int(source_images[0].Rows), int(source_images[0].Columns)):
        raise ValueError(f"mask {layer.name!r} has shape {layer.array.shape}; the source grid is "
                         f"{(n, int(source_images[0].Rows), int(source_images[0].Columns))}")
    algo_type, algo_id = _algorithm(layer)
    category = CodedConcept("49755003", "SCT", "Morphologically Altered Structure")
    prop = kind_code(layer.finding_kind)
    if layer.kind == "labels":
        values = sorted(int(v) for v in np.unique(layer.array) if v != 0)
        if not values:
            raise ValueError(f"mask {layer.name!r} is empty")
        pixels = np.stack([layer.array == v for v in values], axis=-1).astype(np.uint8)
        descs = [hd.seg.SegmentDescription(
            segment_number=s, segment_label=(layer.labels.get(v) or f"{layer.name} {v}")[:64],
            segmented_property_category=category, segmented_property_type=prop,
            algorithm_type=algo_type, algorithm_identification=algo_id,
            tracking_uid=generate_uid(), tracking_id=f"{layer.name} {v}"[:64]) for s, v in enumerate(values, 1)]
        seg_type, extra = hd.seg.SegmentationTypeValues.BINARY, {}
    else:
        pixels = layer.fractions()
        descs = [hd.seg.SegmentDescription(
            segment_number=1, segment_label=layer.name[:64], segmented_property_category=category,
            segmented_property_type=prop, algorithm_type=algo_type, algorithm_identification=algo_id)]
        seg_type = hd.seg.SegmentationTypeValues.FRACTIONAL
        extra = {"fractional_type": hd.seg.SegmentationFractionalTypeValues.PROBABILITY,
                 "max_fractional_value": 255}
    return hd.seg.Segmentation(
        source_images=list(source_images), pixel_array=pixels, segmentation_type=seg_type,
        segment_descriptions=descs, series_instance_uid=series_uid or generate_uid(), series_number=series_number,
        sop_instance_uid=sop_instance_uid or generate_uid(), instance_number=1, manufacturer="reviewer",
        manufacturer_model_name="reviewer", software_versions=reviewer.__version__,
        device_serial_number="none", series_description=f"reviewer {layer.name}"[:64], **extra)
