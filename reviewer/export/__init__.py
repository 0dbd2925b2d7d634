"""Exports: DICOM SR / SEG / derived series and research formats (NIfTI, PNG), de-identified by default.

Entry points: :func:`reviewer.export.exporter.export_case`, :func:`reviewer.export.study.export_study`,
:class:`reviewer.export.deid.Deidentifier`. Heavy modules (highdicom) are imported by those modules only.
"""

from __future__ import annotations

from typing import Any


def export_case(*args: Any, **kwargs: Any):
    from reviewer.export.exporter import export_case as _export_case

    return _export_case(*args, **kwargs)


def export_study(*args: Any, **kwargs: Any):
    from reviewer.export.study import export_study as _export_study

    return _export_study(*args, **kwargs)
