"""One 2D image of a DICOM series: a whole classic file, or one frame of a multi-frame file."""

from __future__ import annotations

from dataclasses import dataclass

from reviewer.io.dicom_headers import FileHeader


@dataclass
class SliceRef:
    header: FileHeader  # the file it lives in
    frame: int | None = None  # frame index in a multi-frame file (0-based); None for single-frame files
    ipp: list[float] | None = None
    iop: list[float] | None = None
    pixel_spacing: list[float] | None = None  # [row spacing, column spacing]
    slope: float = 1.0
    intercept: float = 0.0
    window: tuple[float, float] | None = None
    order: int = 0  # InstanceNumber (or in-stack position) for fallback ordering
    slice_thickness: float | None = None

    @classmethod
    def from_header(cls, h: FileHeader) -> "SliceRef":
        return cls(h, None, h.ipp, h.iop, h.pixel_spacing, h.rescale_slope, h.rescale_intercept, h.window,
                   h.instance_number if h.instance_number is not None else 0, h.slice_thickness)

    @property
    def path(self) -> str:
        return self.header.path

    def label(self) -> str:
        return self.path if self.frame is None else f"{self.path} (frame {self.frame + 1})"
