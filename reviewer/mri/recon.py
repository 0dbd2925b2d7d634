"""Reconstruction pipeline (MONAI-style stages with timings): read -> under-sample -> model -> write.

Inputs: fastMRI single-coil HDF5 (k-space, ``reconstruction_esc`` as the reference), or a magnitude image from
DICOM/NIfTI/... whose k-space is *simulated* by a centred FFT (labelled so everywhere). Multi-coil files are
refused with an explanation (the U-Net here is single-coil).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from reviewer.errors import InputError
from reviewer.jobs import JobToken
from reviewer.mri.fft import fft2c
from reviewer.mri.masks import Mask, create_mask_func
from reviewer.mri.transforms import CROP, center_crop, unet_sample

SIMULATED_LABEL = "simulated k-space"


@dataclass
class ReconInput:
    kspace: np.ndarray  # (slices, rows, cols) complex64
    reference: np.ndarray | None  # (slices, 320, 320) float32
    source: str
    simulated: bool = False
    attrs: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return SIMULATED_LABEL if self.simulated else "acquired k-space"


def read_fastmri_kspace(path: str | Path) -> ReconInput:
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(path, f"not a readable HDF5 file ({exc})") from None
    with f:
        if "kspace" not in f:
            raise InputError(path, "no 'kspace' dataset: not a fastMRI file")
        ks = f["kspace"]
        if ks.ndim == 4:
            raise InputError(path, "multi-coil k-space: the reconstruction models here are single-coil; use the "
                                   "file's reconstruction_rss reference or a single-coil file")
        if ks.ndim != 3 or not np.iscomplexobj(ks[0:1]):
            raise InputError(path, f"'kspace' must be complex (slices, rows, cols), got {ks.shape} {ks.dtype}")
        kspace = ks[()].astype(np.complex64)
        ref = f["reconstruction_esc"][()].astype(np.float32) if "reconstruction_esc" in f else None
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
    return ReconInput(kspace, ref, str(path), False, attrs)


def simulate_kspace(images: np.ndarray, source: str) -> ReconInput:
    """Magnitude images (slices, H, W) -> simulated single-coil k-space; padded to at least 320x320."""
    img = np.asarray(images, dtype=np.float32)
    h, w = img.shape[-2:]
    ph, pw = max(0, CROP[0] - h), max(0, CROP[1] - w)
    if ph or pw:
        img = np.pad(img, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))
    kspace = fft2c(img.astype(np.complex64)).astype(np.complex64)
    return ReconInput(kspace, center_crop(img, CROP).astype(np.float32), source, True)


def read_recon_input(path: str | Path, series_uid: str | None = None) -> ReconInput:
    """fastMRI HDF5 directly; any other image through the I/O layer with simulated k-space."""
    path = Path(path)
    if path.suffix in (".h5", ".hdf5"):
        return read_fastmri_kspace(path)
    from reviewer.io.loader import load_volume

    vol = load_volume(path, series_uid=series_uid)
    return simulate_kspace(vol.array.astype(np.float32), str(path))


@dataclass
class ReconResult:
    zero_filled: np.ndarray  # (slices, 320, 320), de-normalised magnitude
    output: np.ndarray  # (slices, 320, 320), model output de-normalised (out * std + mean)
    mask: Mask
    timings: dict[str, float]


@torch.no_grad()
def reconstruct(model: torch.nn.Module, kspace: np.ndarray, mask: Mask, batch_size: int = 4,
                token: JobToken | None = None) -> ReconResult:
    """Run the single-coil U-Net transform and the model over all slices."""
    device = next(model.parameters()).device
    t = {"preprocess_s": 0.0, "inference_s": 0.0, "postprocess_s": 0.0}
    n = kspace.shape[0]
    zf_out, outs = [], []
    for start in range(0, n, batch_size):
        if token:
            token.progress(start, n, f"slice {start + 1}/{n}")
        t0 = time.perf_counter()
        samples = [unet_sample(kspace[i], mask) for i in range(start, min(n, start + batch_size))]
        x = torch.as_tensor(np.stack([s.image for s in samples]))[:, None].to(device)
        t1 = time.perf_counter()
        y = model(x)[:, 0].float().cpu().numpy()
        t2 = time.perf_counter()
        for s, out in zip(samples, y):
            outs.append(out * s.std + s.mean)
            zf_out.append(s.image * s.std + s.mean)
        t3 = time.perf_counter()
        t["preprocess_s"] += t1 - t0
        t["inference_s"] += t2 - t1
        t["postprocess_s"] += t3 - t2
    if token:
        token.progress(n, n, "done")
    return ReconResult(np.stack(zf_out).astype(np.float32), np.stack(outs).astype(np.float32), mask, t)


def make_mask(kind: str, acceleration: float, center_fraction: float, num_cols: int, seed=None) -> Mask:
    return create_mask_func(kind, [center_fraction], [acceleration])(num_cols, seed=seed)


def write_reconstruction(path: str | Path, reconstruction: np.ndarray, attrs: dict | None = None) -> Path:
    """fastMRI-style output: dataset ``reconstruction`` (slices, 320, 320), scorable with fastMRI's tools."""
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("reconstruction", data=reconstruction.astype(np.float32))
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
    return path
