"""fastMRI HDF5 files: k-space plus reference reconstructions, opened as an MR Volume.

The volume shown is the reference reconstruction (``reconstruction_esc``, else ``reconstruction_rss``); without
one, single-coil k-space is reconstructed as the magnitude of the centred orthonormal 2D inverse FFT, cropped
to 320x320 (the fastMRI convention). Pixel size comes from the ISMRMRD header's reconSpace.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import numpy as np

from reviewer.errors import InputError
from reviewer.mri.fft import ifft2c
from reviewer.mri.transforms import center_crop as _center_crop
from reviewer.geometry import Volume
from reviewer.jobs import JobToken

CROP = 320


def _open(path: str):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InputError(path, f"not a readable HDF5 file ({exc})") from None


def _attr(f, key):
    v = f.attrs.get(key)
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, np.generic):
        return v.item()
    return v


def recon_space(header_xml: str | bytes | None) -> tuple[list[float], list[int]] | None:
    """(fieldOfView_mm [x, y, z], matrixSize [x, y, z]) of the ISMRMRD reconSpace, or None."""
    if not header_xml:
        return None
    if isinstance(header_xml, bytes):
        header_xml = header_xml.decode(errors="replace")
    try:
        root = ET.fromstring(header_xml)
    except ET.ParseError:
        return None

    def find(node, name):
        for el in node.iter():
            if el.tag.split("}")[-1] == name:
                return el
        return None

    rs = find(root, "reconSpace")
    if rs is None:
        return None
    fov, mat = find(rs, "fieldOfView_mm"), find(rs, "matrixSize")
    if fov is None or mat is None:
        return None
    try:
        f = [float(find(fov, a).text) for a in ("x", "y", "z")]
        m = [int(find(mat, a).text) for a in ("x", "y", "z")]
    except (AttributeError, TypeError, ValueError):
        return None
    return f, m


def _check(path: str, f) -> None:
    if "kspace" not in f and "reconstruction_esc" not in f and "reconstruction_rss" not in f:
        raise InputError(path, f"HDF5 file is not in fastMRI format (keys: {', '.join(list(f.keys())[:8])})")


def fastmri_info(path: str):
    from reviewer.io.catalog import SeriesInfo

    with _open(path) as f:
        _check(path, f)
        ref = "reconstruction_esc" if "reconstruction_esc" in f else "reconstruction_rss" if "reconstruction_rss" in f \
            else None
        shape = f[ref].shape if ref else (f["kspace"].shape[0], CROP, CROP)
        acq = _attr(f, "acquisition") or ""
        pid = _attr(f, "patient_id") or ""
    return SeriesInfo(uid=os.path.abspath(path), patient_id=str(pid), series_description=f"fastMRI {acq}".strip(),
                      modality="MR", n_images=int(shape[0]), dims=(int(shape[-1]), int(shape[-2]), int(shape[0])),
                      files=[path], kind="image", format="fastmri", sop_class_name="")


def centered_ifft2_magnitude(kspace: np.ndarray) -> np.ndarray:
    """|ifftshift -> ifft2 (ortho) -> fftshift| over the last two axes."""
    return np.abs(ifft2c(kspace))


def center_crop(arr: np.ndarray, h: int, w: int) -> np.ndarray:
    return _center_crop(arr, (h, w), allow_smaller=True)


def read_fastmri(path: str | os.PathLike, token: JobToken | None = None) -> Volume:
    p = os.fspath(path)
    warnings: list[str] = []
    with _open(p) as f:
        _check(p, f)
        keys = sorted(f.keys())
        kshape = tuple(f["kspace"].shape) if "kspace" in f else None
        header = f["ismrmrd_header"][()] if "ismrmrd_header" in f else None
        info = {"path": p, "keys": keys, "kspace_shape": list(kshape) if kshape else None,
                "acquisition": _attr(f, "acquisition"), "max": _attr(f, "max"), "norm": _attr(f, "norm"),
                "patient_id": _attr(f, "patient_id")}
        multicoil = kshape is not None and len(kshape) == 4
        if "reconstruction_esc" in f:
            arr, source = np.asarray(f["reconstruction_esc"], dtype=np.float32), "reconstruction_esc"
        elif "reconstruction_rss" in f:
            arr, source = np.asarray(f["reconstruction_rss"], dtype=np.float32), "reconstruction_rss"
        elif multicoil:
            raise InputError(p, f"multi-coil k-space {kshape} without a reconstruction_rss reference: multi-coil "
                                "reconstruction is not supported")
        elif kshape is not None:
            n = kshape[0]
            arr = np.empty((n, min(CROP, kshape[1]), min(CROP, kshape[2])), dtype=np.float32)
            ks = f["kspace"]
            for s in range(n):
                arr[s] = center_crop(centered_ifft2_magnitude(ks[s]), CROP, CROP)
                if token is not None:
                    token.progress(s + 1, n, f"reconstructing slice {s + 1}/{n}")
            source = "ifft2 magnitude"
            warnings.append("no reference reconstruction in the file: shown is the magnitude of the centred "
                            "inverse FFT of the k-space, cropped to 320x320 (not a reference image)")
        else:
            raise InputError(p, "fastMRI file without k-space or reconstruction")
    if multicoil:
        warnings.append("multi-coil file: showing its reconstruction_rss reference; multi-coil reconstruction "
                        "from k-space is not supported")
    info["shown"] = source
    rs = recon_space(header)
    if rs is not None and rs[1][0] > 0 and rs[1][1] > 0:
        fov, mat = rs
        spacing = (fov[0] / mat[0], fov[1] / mat[1], fov[2] / max(mat[2], 1))
    else:
        spacing = (1.0, 1.0, 1.0)
        warnings.append("no ISMRMRD reconSpace in the file: 1 mm voxels assumed")
    direction = None
    acq = str(info.get("acquisition") or "")
    if acq.upper().startswith("COR"):
        # fastMRI knee protocols (CORPD_FBK, CORPDFS_FBK) are coronal: columns run R->L, rows S->I
        direction = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
        warnings.append(f"fastMRI files carry no patient orientation: shown as coronal (acquisition {acq}); "
                        "left/right is not known")
    elif acq.upper().startswith("AX"):
        warnings.append(f"fastMRI files carry no patient orientation: shown as axial (acquisition {acq}); "
                        "left/right is not known")
    else:
        warnings.append("fastMRI files carry no patient orientation: orientation labels are nominal")
    info["orientation"] = "coronal" if direction is not None else "axial"
    vol = Volume.from_array(np.ascontiguousarray(arr), spacing=spacing, direction=direction, modality="MR", unit="a.u.",
                            name=f"fastMRI {info['acquisition'] or os.path.basename(p)}", source=p,
                            metadata={"format": "fastmri", "fastmri": info}, warnings=warnings)
    return vol
