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


def write_volume(volume: Volume, path: str | os.PathLike, sidecar: bool = True) -> Path:
    """Write ``volume`` to ``path``; the suffix picks the format. Returns the path written.

    With ``sidecar`` a dcm2niix-style JSON (modality, description, unit, warnings; no patient identifiers) is
    written beside it, so the modality survives formats that cannot store it.
    """
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
    if sidecar:
        import json

        base = str(out)[: -len(suffix)]
        info = {"Modality": volume.modality, "SeriesDescription": volume.name, "Unit": volume.unit,
                "ConversionSoftware": "reviewer", "Warnings": list(volume.warnings)}
        Path(base + ".json").write_text(json.dumps({k: v for k, v in info.items() if v}, indent=2) + "\n")
    return out
