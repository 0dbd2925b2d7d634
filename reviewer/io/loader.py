"""Open one volume from a path (file or folder) or a catalogued series, whatever the format."""

from __future__ import annotations

import os

from reviewer.errors import InputError
from reviewer.geometry import Volume
from reviewer.io.catalog import Catalog, SeriesInfo, scan_paths
from reviewer.io.formats import non_dicom_format
from reviewer.jobs import JobToken


def load_series(info: SeriesInfo, token: JobToken | None = None) -> Volume:
    """Load a series found by :func:`scan_paths` (uses its cached headers when present)."""
    if info.kind != "image":
        raise InputError(info.files[0] if info.files else info.uid,
                         f"series {info.uid} is a {info.sop_class_name or 'non-image'} object, not an image")
    if info.format == "fastmri":
        from reviewer.io.fastmri import read_fastmri

        return read_fastmri(info.files[0], token=token)
    if info.format in ("nifti", "mhd", "nrrd"):
        from reviewer.io.itk_io import read_itk_volume

        return read_itk_volume(info.files[0], info.format)
    slices = info.slices
    if not slices:  # a SeriesInfo that came from elsewhere (e.g. JSON): scan its files again
        again = scan_paths(info.files).find(info.uid)
        if again is None:
            raise InputError(info.files[0] if info.files else None, f"series {info.uid} not found in its files")
        slices = again.slices
    from reviewer.io.dicom_series import build_volume

    vol = build_volume(slices, token=token, name=info.series_description, source=os.path.dirname(info.files[0])
                       if len(info.files) > 1 else info.files[0])
    vol.warnings = list(info.warnings) + vol.warnings
    vol.metadata["series_uid"] = info.uid
    return vol


def _describe(series: list[SeriesInfo]) -> str:
    return "\n".join(f"  {s.uid}  {s.modality} '{s.series_description}' {s.n_images} images "
                     f"{'x'.join(map(str, s.dims))}" for s in series)


def choose_series(catalog: Catalog, path: str, series_uid: str | None = None) -> SeriesInfo:
    if series_uid:
        info = catalog.find(series_uid)
        if info is None:
            raise InputError(path, f"no series {series_uid}; found:\n{_describe(catalog.series)}")
        return info
    images = catalog.image_series()
    if not images:
        if catalog.series:
            s = catalog.series[0]
            raise InputError(s.files[0] if s.files else path,
                             f"is a {s.sop_class_name or 'non-image'} object, not an image")
        detail = "; ".join(catalog.problems) or "no images found"
        raise InputError(path, detail)
    if len(images) > 1:
        raise InputError(path, f"holds {len(images)} image series; choose one with its UID (--series):\n"
                               f"{_describe(images)}")
    return images[0]


def load_volume(path: str | os.PathLike, series_uid: str | None = None, token: JobToken | None = None) -> Volume:
    """Load the one image volume at ``path`` (or the series ``series_uid`` in it)."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise InputError(p, "no such file or folder")
    fmt = non_dicom_format(p) if os.path.isfile(p) else None
    if fmt == "fastmri":
        from reviewer.io.fastmri import read_fastmri

        return read_fastmri(p, token=token)
    if fmt is not None:
        from reviewer.io.itk_io import read_itk_volume

        return read_itk_volume(p, fmt)
    catalog = scan_paths([p], token=token.sub(0, 10, 100) if token is not None else None)
    info = choose_series(catalog, p, series_uid)
    return load_series(info, token=token.sub(10, 100, 100) if token is not None else None)
