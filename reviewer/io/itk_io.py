"""NIfTI, MHD/RAW and NRRD through SimpleITK, geometry preserved exactly.

SimpleITK reports origin, spacing and direction in LPS, in (x, y, z) = (i, j, k) order, and its direction is a
row-major 3x3 whose columns are the axis vectors: the same matrix as ``Geometry.direction``. Its arrays are
(z, y, x) = our (k, j, i).
"""

from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk

from reviewer.errors import InputError
from reviewer.geometry import Geometry, Volume


MET_MODALITIES = {"MET_MOD_CT": "CT", "MET_MOD_MR": "MR", "MET_MOD_NM": "NM", "MET_MOD_US": "US"}


def sidecar(path: str) -> dict:
    """The JSON sidecar beside an image (dcm2niix / BIDS convention: same name, ``.json``), or {}."""
    import json

    base = path
    for ext in (".nii.gz", ".nii", ".mhd", ".mha", ".nrrd", ".nhdr"):
        if base.lower().endswith(ext):
            base = base[: -len(ext)]
            break
    p = base + ".json"
    if not os.path.isfile(p):
        return {}
    try:
        data = json.loads(open(p, encoding="utf-8").read())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _modality(path: str, meta: dict) -> str:
    side = sidecar(path)
    if side.get("Modality"):
        return str(side["Modality"])
    return MET_MODALITIES.get(meta.get("Modality", ""), "")


def looks_like_ct(arr: np.ndarray) -> bool:
    """Integer data with air near -1000 and values well above water: HU, as in LUNA16 files."""
    if arr.dtype.kind not in "iu" or arr.size == 0:
        return False
    sample = arr.reshape(-1)[:: max(1, arr.size // 500_000)]
    lo, hi = np.percentile(sample, [0.5, 99.9])
    return -1200 <= lo <= -850 and hi >= 200


def _reader(path: str) -> sitk.ImageFileReader:
    r = sitk.ImageFileReader()
    r.SetFileName(path)
    return r


def itk_info(path: str, fmt: str):
    """SeriesInfo for a NIfTI/MHD/NRRD file from its header only."""
    from reviewer.io.catalog import SeriesInfo

    r = _reader(path)
    try:
        r.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(path, f"cannot read {fmt} header ({_first_line(exc)})") from None
    size = list(r.GetSize()) + [1, 1]
    warnings = []
    if r.GetDimension() > 3:
        warnings.append(f"{r.GetDimension()}D image {tuple(r.GetSize())}: only the first 3D volume is loaded")
    meta = {k: r.GetMetaData(k) for k in r.GetMetaDataKeys()}
    side = sidecar(path)
    return SeriesInfo(uid=os.path.abspath(path),
                      series_description=str(side.get("SeriesDescription") or os.path.basename(path)),
                      patient_name=str(side.get("PatientName", "")), patient_id=str(side.get("PatientID", "")),
                      study_description=str(side.get("StudyDescription", "")),
                      modality=_modality(path, meta), geometry=_itk_geometry(r),
                      n_images=int(size[2]), dims=(int(size[0]), int(size[1]), int(size[2])), files=[path],
                      kind="image", format=fmt, sop_class_name="", warnings=warnings)


def _itk_geometry(r: sitk.ImageFileReader) -> dict | None:
    from reviewer.io.catalog import geometry_summary

    dim = r.GetDimension()
    if dim < 3:
        return None
    d = np.asarray(r.GetDirection(), dtype=float).reshape(dim, dim)[:3, :3]
    return geometry_summary(r.GetSpacing()[:3], r.GetOrigin()[:3], d)


def _first_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


def image_to_volume(img: sitk.Image, source: str = "", name: str = "") -> Volume:
    """Convert a SimpleITK image (2D, 3D or 4D; scalar or vector) to a Volume, geometry kept."""
    warnings: list[str] = []
    if img.GetNumberOfComponentsPerPixel() > 1:
        img = sitk.VectorMagnitude(img) if img.GetNumberOfComponentsPerPixel() != 3 else \
            sitk.Cast(sitk.VectorIndexSelectionCast(img, 0) * 0.299 + sitk.VectorIndexSelectionCast(img, 1) * 0.587
                      + sitk.VectorIndexSelectionCast(img, 2) * 0.114, sitk.sitkFloat32)
        warnings.append("multi-component image converted to one grey value per voxel")
    dim = img.GetDimension()
    if dim == 4:
        size = list(img.GetSize())
        warnings.append(f"4D image with {size[3]} volumes: only volume 1 is loaded")
        img = sitk.Extract(img, size[:3] + [0], [0, 0, 0, 0])
        dim = 3
    arr = sitk.GetArrayFromImage(img)
    spacing = list(img.GetSpacing())
    origin = list(img.GetOrigin())
    direction = np.asarray(img.GetDirection(), dtype=float).reshape(dim, dim)
    if dim == 2:
        arr = arr[None]
        spacing += [1.0]
        origin += [0.0]
        d3 = np.eye(3)
        d3[:2, :2] = direction
        direction = d3
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    geom = Geometry(tuple(arr.shape), tuple(spacing), tuple(origin), tuple(map(tuple, direction)))
    return Volume(np.ascontiguousarray(arr), geom, name=name or os.path.basename(source), source=source,
                  metadata={"format": "itk", "path": source}, warnings=warnings)


def read_itk_volume(path: str | os.PathLike, fmt: str = "") -> Volume:
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise InputError(p, "no such file")
    try:
        img = sitk.ReadImage(p)
    except RuntimeError as exc:
        raise InputError(p, f"cannot read image ({_first_line(exc)})") from None
    vol = image_to_volume(img, source=p)
    vol.metadata["format"] = fmt or "itk"
    meta = {k: img.GetMetaData(k) for k in img.GetMetaDataKeys()}
    side = sidecar(p)
    vol.modality = _modality(p, meta)
    if side.get("SeriesDescription"):
        vol.name = str(side["SeriesDescription"])
    if not vol.modality and looks_like_ct(vol.array):
        vol.modality = "CT"
        vol.metadata["modality_inferred"] = "intensities look like Hounsfield units"
    if vol.modality == "CT":
        vol.unit = "HU"
    if side:
        vol.metadata["sidecar"] = side
    return vol


def volume_to_image(volume: Volume) -> sitk.Image:
    arr = volume.array
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    g = volume.geometry
    img.SetSpacing(g.spacing)
    img.SetOrigin(g.origin)
    img.SetDirection(tuple(g.direction_matrix.reshape(-1)))
    return img
