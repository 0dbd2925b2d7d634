"""Loading a study's case images as volumes: volumes through reviewer.io, 2D images (PNG/TIFF) as one-slice volumes.

A 2D image becomes a (1, rows, columns) volume with the given (row, column) spacing (default 1 mm), origin 0 and
identity directions, so marks on it still have world coordinates (LPS mm) like every other finding.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from reviewer.errors import InputError
from reviewer.geometry import Volume
from reviewer.studies.definition import IMAGE_SUFFIXES_2D


def load_study_image(path: str | os.PathLike, spacing_mm: tuple[float, float] | None = None) -> Volume:
    p = Path(path)
    if p.suffix.lower() in IMAGE_SUFFIXES_2D:
        from PIL import Image

        try:
            with Image.open(p) as im:
                arr = np.asarray(im.convert("F") if im.mode not in ("I;16", "I", "F") else im, dtype=np.float32)
        except (OSError, ValueError) as exc:
            raise InputError(p, f"cannot read the image ({exc})") from None
        if arr.ndim != 2:
            raise InputError(p, f"expected a 2D grey-scale image, got shape {arr.shape}")
        rs, cs = spacing_mm or (1.0, 1.0)
        return Volume.from_array(arr[None], spacing=(cs, rs, 1.0), source=str(p))
    from reviewer.io.loader import load_volume

    return load_volume(p)


def blinded(volume: Volume, label: str) -> Volume:
    """The same pixels and geometry with every name, source, description and header field removed."""
    return Volume(volume.array, volume.geometry, modality=volume.modality, unit=volume.unit, name=label, source="",
                  metadata={}, warnings=[], default_window=volume.default_window)
