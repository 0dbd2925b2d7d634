"""Export a whole reader study: one folder per case, one SR per reader per case (observer = the reader).

Input: the JSON written by ``reviewer study export STUDY --format json`` (reviewer.studies). Every case is
exported through :func:`reviewer.export.exporter.export_case` with one shared :class:`Deidentifier`, so one
patient keeps one pseudonym and UIDs stay consistent across the study's cases.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from reviewer.errors import InputError
from reviewer.jobs import JobToken

STUDY_JSON_NAMES = ("study_export.json", "study.json", "export.json")


def find_study_json(path: str | os.PathLike) -> Path | None:
    """The study export JSON at ``path`` (a file, or a folder holding one), or None if it is not one."""
    p = Path(path)
    candidates = [p] if p.is_file() else [p / n for n in STUDY_JSON_NAMES] + sorted(p.glob("*.json")) \
        if p.is_dir() else []
    for c in candidates:
        if not c.is_file() or c.suffix.lower() != ".json":
            continue
        try:
            data = json.loads(c.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("cases"), list) and ("marks" in data or any(
                isinstance(cs, dict) and "marks" in cs for cs in data["cases"])):
            return c
    return None


def export_study(path: str | os.PathLike, out_dir: str | os.PathLike, formats: Sequence[str] = ("dicom", "nifti", "png"),
                 keep_phi: bool = False, shift_days: int | None = None, token: JobToken | None = None) -> Any:
    raise InputError(path, "study export is not available yet")
