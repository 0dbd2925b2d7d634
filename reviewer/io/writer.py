"""Write a Volume to NIfTI (.nii, .nii.gz), MHD/RAW (.mhd) or NRRD (.nrrd) with its geometry."""

from __future__ import annotations

import os
from pathlib import Path

import SimpleITK as sitk

from reviewer.errors import InputError
from reviewer.geometry import Volume
from reviewer.io.formats import suffix_of
from reviewer.io.itk_io import volume_to_image

WRITABLE = (".nii", ".nii.gz", ".mhd", ".nrrd")


def write_volume(volume: Volume, path: str | os.PathLike) -> Path:
    """Write ``volume`` to ``path``; the suffix picks the format. Returns the path written."""
    out = Path(path)
    suffix = suffix_of(out)
    if suffix not in WRITABLE:
        raise InputError(out, f"unsupported output format '{suffix or out.name}': use one of {', '.join(WRITABLE)}")
    if not out.parent.exists():
        raise InputError(out, f"output folder {out.parent} does not exist")
    img = volume_to_image(volume)
    try:
        sitk.WriteImage(img, str(out), useCompression=suffix in (".nii.gz", ".nrrd"))
    except RuntimeError as exc:
        raise InputError(out, f"cannot write ({str(exc).strip().splitlines()[-1]})") from None
    return out
