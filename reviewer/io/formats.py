"""Recognise a file's format from its name (non-DICOM formats) or its first bytes (DICOM)."""

from __future__ import annotations

import os
from pathlib import Path

ITK_SUFFIXES = {".nii": "nifti", ".nii.gz": "nifti", ".mhd": "mhd", ".mha": "mhd", ".nrrd": "nrrd", ".nhdr": "nrrd"}
HDF5_SUFFIXES = (".h5", ".hdf5")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

# Files that live next to images and are not images themselves: skipped quietly during a scan.
COMPANION_SUFFIXES = {".raw", ".zraw", ".img", ".json", ".bval", ".bvec", ".txt", ".md", ".xml", ".csv", ".tsv",
                      ".py", ".html", ".pdf", ".log", ".ini", ".yaml", ".yml", ".zip", ".gz", ".png", ".jpg"}
COMPANION_NAMES = {"license", "licence", "readme", "dicomdir", "copying", "notice", "thumbs.db", ".ds_store"}


def suffix_of(path: str | os.PathLike) -> str:
    name = Path(path).name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return Path(name).suffix


def non_dicom_format(path: str | os.PathLike) -> str | None:
    """'nifti' | 'mhd' | 'nrrd' | 'fastmri' by name, or None."""
    suf = suffix_of(path)
    if suf in ITK_SUFFIXES:
        return ITK_SUFFIXES[suf]
    if suf in HDF5_SUFFIXES:
        return "fastmri"
    return None


def is_companion(path: str | os.PathLike) -> bool:
    p = Path(path)
    name = p.name.lower()
    return name.startswith(".") or name in COMPANION_NAMES or p.stem.lower() in COMPANION_NAMES or \
        suffix_of(p) in COMPANION_SUFFIXES


def has_dicm_preamble(path: str | os.PathLike) -> bool:
    """True when the file has the 128-byte preamble followed by 'DICM' (Part 10 file)."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"
