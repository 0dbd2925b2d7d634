"""Synthetic knee MRI (coronal proton density, fastMRI single-coil style), deterministic from a seed.

Each slice is a 2D coronal section through a knee-like phantom on a readout-oversampled grid (rows = readout =
superior-inferior, cols = phase encode = left-right): femoral shaft flaring into two condyles with an intercondylar
notch, tibial plateau with spines and shaft, fibular head on the lateral side (posterior slices), cortical bone (signal
void), fatty marrow with trabecular texture and a physeal scar, articular cartilage with a thin fluid line, dark
meniscal wedges at both joint margins, collateral and cruciate ligaments, muscle with striations, subcutaneous fat
and skin. Anatomy changes smoothly from slice to slice and varies per seed. The complex image carries a smooth phase
and a smooth receive-sensitivity shading; k-space is the centred orthonormal FFT plus complex Gaussian noise.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from reviewer.mri.fft import fft2c, ifft2c  # noqa: F401  (re-exported for the generators' users)
from reviewer.mri.transforms import center_crop as _center_crop

GENERATOR_VERSION = "4"  # 2: PD contrast with a surface-coil sensitivity profile (fastMRI-like dynamic range)
# 4: near-field hot spots of two coil elements: a heavy-tailed intensity histogram (max/std ~10-12), as in
#    surface-coil knee data, so a 10-pixel feature at the image maximum carries fastMRI-like relative energy
FASTMRI_SHAPE = (640, 368)
FOV_MM = (280.0, 161.0)  # readout (rows) x phase (cols); 0.4375 mm pixels at 640 x 368
RECON_SIZE = 320
SIGNAL_SCALE = 2e-4  # fastMRI-like magnitude scale of single-coil knee data


# ----------------------------------------------------------------------------------------------------------------
def center_crop(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return _center_crop(x, size, allow_smaller=True)


def _soft(d, w):
    return np.clip(0.5 - d / w, 0.0, 1.0)


def _smin(a, b, k):
    """Smooth union of two signed distances (polynomial smooth-min, blend width k mm)."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def _ellipse(u, v, a, b):
    q = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    g = np.sqrt((u / a**2) ** 2 + (v / b**2) ** 2)
    return (q - 1.0) / np.maximum(g / np.maximum(q, 1e-6), 1e-6)


def _box(u, v, hw, hh, r=0.0):
    qu, qv = np.abs(u) - hw + r, np.abs(v) - hh + r
    return np.sqrt(np.maximum(qu, 0) ** 2 + np.maximum(qv, 0) ** 2) + np.minimum(np.maximum(qu, qv), 0) - r


def _segment(u, v, p0, p1):
    d = np.subtract(p1, p0)
    t = np.clip(((u - p0[0]) * d[0] + (v - p0[1]) * d[1]) / float(d @ d), 0, 1)
    return np.hypot(u - p0[0] - t * d[0], v - p0[1] - t * d[1])


def _texture(rng, shape, sigma, lo_sigma=None):
    n = rng.standard_normal(shape).astype(np.float32)
    t = ndimage.gaussian_filter(n, sigma)
    if lo_sigma is not None:
        t -= ndimage.gaussian_filter(n, lo_sigma)
    return t / (t.std() + 1e-9)


# ----------------------------------------------------------------------------------------------------------------
def _knee_params(rng: np.random.Generator) -> dict[str, float]:
    j = lambda s: float(rng.uniform(-s, s))  # noqa: E731
    return {
        "scale": 1.0 + j(0.1),
        "u0": j(6.0),
        "v0": j(12.0),
        "tilt": j(0.06),
        "condyle_sep": 21.0 + j(3),
        "condyle_r": 21.0 + j(2.5),
        "shaft_f": 14.5 + j(2),
        "shaft_t": 15.0 + j(2),
        "plateau": 38.0 + j(4),
        "leg": 58.0 + j(6),
        "fat": 7.0 + j(3),
        "cart": 2.4 + j(0.5),
        "phase_seed": int(rng.integers(1 << 30)),
        "tex_seed": int(rng.integers(1 << 30)),
    }


def _knee_slice(p: dict[str, float], t: float, shape: tuple[int, int], fov: tuple[float, float],
                rng: np.random.Generator) -> np.ndarray:
    """Magnitude (tissue PD, ~0..1) of one coronal slice; t in [-1, 1] runs posterior -> anterior."""
    rows, cols = shape
    pr, pc = fov[0] / rows, fov[1] / cols
    w = 0.5 * (pr + pc)
    s = p["scale"]
    vv = ((np.arange(rows) - (rows - 1) / 2) * pr)[:, None].astype(np.float32)
    uu = ((np.arange(cols) - (cols - 1) / 2) * pc)[None, :].astype(np.float32)
    # patient coordinates: u left-right, v superior(+)-inferior(-); small in-plane tilt
    ct, st = math.cos(p["tilt"]), math.sin(p["tilt"])
    u = (((uu - p["u0"]) * ct - (-vv - p["v0"]) * st) / s).astype(np.float32)
    v = (((uu - p["u0"]) * st + (-vv - p["v0"]) * ct) / s).astype(np.float32)
    img = np.zeros(shape, np.float32)

    def paint(d, val, wd=w):
        nonlocal img
        m = _soft(d, wd / s)
        img = img * (1 - m) + val * m

    tex_rng = np.random.default_rng([p["tex_seed"], int(round((t + 1) * 1000))])
    tex_fine = _texture(tex_rng, shape, 1.2, 4.0)
    tex_musc = _texture(tex_rng, shape, (6.0, 0.9))

    # leg envelope: thigh above, calf below, a little wider at the knee
    lat = abs(t)
    hw = p["leg"] * (1.0 - 0.12 * lat ** 2) + 6.0 * np.exp(-((v / 40.0) ** 2)) + 0.04 * np.clip(v, 0, None)
    leg = np.abs(u) - hw
    paint(leg, 0.15)  # skin
    paint(leg + 1.5, 0.42 + 0.04 * tex_fine)  # subcutaneous fat
    # muscles: thigh (vastus) above, gastrocnemius heads below, stronger in posterior slices
    musc_w = hw - p["fat"]
    mw = musc_w - 2.0
    lat_w = 0.45 * mw * (1.0 - 0.5 * np.clip(t, 0, 1))
    bellies = [
        _ellipse(u - 0.55 * mw, v - 125.0, lat_w, 95.0),  # vastus lateralis
        _ellipse(u + 0.55 * mw, v - 120.0, lat_w * 0.95, 85.0),  # vastus medialis
        _ellipse(u - 0.5 * mw, v + 120.0 - 30.0 * min(t, 0), lat_w, 80.0),  # gastrocnemius heads
        _ellipse(u + 0.5 * mw, v + 125.0 - 30.0 * min(t, 0), lat_w, 85.0),
    ]
    for b in bellies:
        paint(np.maximum(b, np.abs(u) - musc_w), 0.11 + 0.03 * tex_musc)

    # femur: shaft flaring into two condyles, notch between them (deeper posteriorly)
    sep, cr = p["condyle_sep"], p["condyle_r"]
    c_v = 2.5 + cr
    cond = np.minimum(_ellipse(u - sep, v - c_v, cr * 1.05, cr), _ellipse(u + sep, v - c_v, cr * 1.05, cr))
    flare = p["shaft_f"] + (sep + cr - 4 - p["shaft_f"]) * np.clip(1 - (v - c_v) / 55.0, 0, 1) ** 1.6
    shaft = np.maximum(np.abs(u) - flare, c_v - v)
    femur = _smin(cond, shaft, 6.0)
    notch_w = (7.0 + 6.0 * np.clip(-t, 0, 1)) * (1 if t < 0.7 else 0.3)
    notch_h = c_v + 4 + 10 * np.clip(-t, 0, 1)
    notch = np.minimum(_ellipse(u, v - (notch_h - notch_w), notch_w, notch_w),
                       np.maximum(np.abs(u) - notch_w, v - (notch_h - notch_w)))
    femur = np.maximum(femur, -notch)
    # tibia: plateau, spines, flaring to shaft
    tp = -2.5
    pl = p["plateau"] * (1 - 0.1 * lat)
    tflare = p["shaft_t"] + (pl - p["shaft_t"]) * np.clip(1 + (v - tp + 8) / 50.0, 0, 1) ** 1.4
    tibia = np.maximum(np.abs(u) - tflare, v - tp)
    spines = np.maximum(np.abs(np.abs(u) - 4.5) - 3.0, v - (tp + 4.0 - 0.3 * np.abs(np.abs(u) - 4.5)))
    if abs(t) < 0.6:
        tibia = np.minimum(tibia, spines)
    # fibular head, lateral (patient left = image right here), posterior slices
    fu, fv = pl + 3.0, tp - 34.0
    fib = _ellipse(u - fu, v - fv, 9.0, 10.0) if t < 0.1 else np.full_like(img, 1e3)
    fib = _smin(fib, np.maximum(np.abs(u - fu - 1.0) - 6.0, v - fv), 3.0) if t < 0.1 else fib

    # cartilage (under the bone so bone paints over it), fluid line in the joint
    cart = p["cart"]
    paint(np.maximum(femur - cart, v - c_v), 0.3 + 0.03 * tex_fine)
    paint(np.maximum(np.maximum(tibia - cart, tp - cart - 2 - v), np.abs(u) - pl + 2), 0.3 + 0.03 * tex_fine)
    joint = np.maximum(np.abs(v - (tp + cart + 0.4 + 0.15 * cart * np.cos(u / 12))) - 0.45, np.abs(u) - pl + 6)
    paint(joint, 0.85)
    for bone, marrow in ((femur, 0.24), (tibia, 0.22), (fib, 0.22)):
        paint(bone, 0.05)  # cortex
        paint(bone + 1.8, marrow + 0.04 * tex_fine)
    # physeal scars: thin dark lines across the metaphyses
    paint(np.maximum(np.abs(v - (c_v + 22 + 3 * np.cos(u / 9))) - 0.6, femur + 2.5), 0.18)
    paint(np.maximum(np.abs(v - (tp - 20 + 2 * np.cos(u / 8))) - 0.6, tibia + 2.5), 0.18)

    # menisci: dark wedges at both joint margins, longer towards the centre in posterior slices
    for side in (-1, 1):
        outer = pl + 1.0
        inner = outer - (14.0 + 7.0 * np.clip(-t, 0, 1)) * (0.5 if t > 0.6 else 1.0)
        base_v = tp + 0.2
        h = 7.5
        uu_ = side * u
        frac = np.clip((uu_ - inner) / (outer - inner), 0, 1)
        top = base_v + h * frac
        wedge = np.maximum(np.maximum(inner - uu_, uu_ - outer), np.maximum(base_v - v, v - top))
        paint(wedge, 0.07 + 0.02 * tex_fine)
    # collateral ligaments and cruciates
    for side, (a, b) in ((-1, (c_v + 8, tp - 28)), (1, (c_v + 8, tp - 18))):
        x0 = side * (sep + cr * 1.05 + 1.2)
        x1 = side * (pl + 1.0)
        paint(_segment(u, v, (x0, a - 6), (x1, b + 8)) - 1.2, 0.1)
    if abs(t) < 0.55:
        paint(_segment(u, v, (-notch_w + 2.5, notch_h - 6), (3.0, tp + 1)) - 2.4, 0.14)  # ACL
        paint(_segment(u, v, (notch_w - 2.5, notch_h - 5), (-2.0, tp - 3)) - 2.6, 0.1)  # PCL
    return np.clip(img, 0, None).astype(np.float32)


def _smooth_phase(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    rows, cols = shape
    y = np.linspace(-1, 1, rows)[:, None]
    x = np.linspace(-1, 1, cols)[None, :]
    c = rng.normal(size=6) * np.array([1.0, 0.8, 0.8, 0.5, 0.4, 0.4])
    return (c[0] + c[1] * x + c[2] * y + c[3] * x * y + c[4] * x**2 + c[5] * y**2 + 0.6 * np.sin(2.1 * y + c[0])).astype(np.float32)


def make_mri_slices(seed: int = 0, n_slices: int = 14, shape: tuple[int, int] = FASTMRI_SHAPE,
                    fov_mm: tuple[float, float] = FOV_MM) -> np.ndarray:
    """Noise-free complex coronal knee images (n_slices, rows, cols) complex64, fastMRI magnitude scale.

    Anatomy varies with ``seed``; slices run posterior -> anterior through the joint.
    """
    rng = np.random.default_rng([int(seed), 4242])
    p = _knee_params(rng)
    out = np.empty((n_slices,) + tuple(shape), np.complex64)
    rows, _ = shape
    vv = ((np.arange(rows) - (rows - 1) / 2) * fov_mm[0] / rows)[:, None]
    uu = ((np.arange(shape[1]) - (shape[1] - 1) / 2) * fov_mm[1] / shape[1])[None, :]
    # receive sensitivity: a knee coil is most sensitive near the skin, so lateral tissue is brightest
    surface = 1.0 + 3.0 * np.clip(np.abs(uu) / 62.0, 0, 1.2) ** 6
    erng = np.random.default_rng([int(seed), 4343])
    for side in (-1.0, 1.0):  # one element each side at the skin, at a random height
        ue, ve = side * erng.uniform(66.0, 72.0), erng.uniform(-30.0, 30.0)
        surface = surface + 12.0 * np.exp(-((uu - ue) ** 2 + (vv - ve) ** 2) / (2 * 10.0 ** 2))
    bias = (np.exp(-((vv / 150.0) ** 2)) * (1.0 + 0.12 * uu / 80.0 + 0.05 * vv / 140.0) * surface).astype(np.float32)
    prng = np.random.default_rng(p["phase_seed"])
    base_phase = _smooth_phase(prng, shape)
    ts = np.linspace(-0.9, 0.9, n_slices) if n_slices > 1 else np.zeros(1)
    for i, t in enumerate(ts):
        mag = _knee_slice(p, float(t), shape, fov_mm, rng) * bias
        phase = base_phase + 0.15 * float(t) * np.linspace(-1, 1, shape[1])[None, :]
        out[i] = (SIGNAL_SCALE * mag * np.exp(1j * phase)).astype(np.complex64)
    return out


def simulate_kspace(images: np.ndarray, noise_level: float = 0.03, seed: int = 0) -> np.ndarray:
    """Fully sampled single-coil k-space of complex images plus complex Gaussian noise.

    ``noise_level`` is the per-component noise std relative to ``SIGNAL_SCALE`` (the orthonormal FFT keeps it
    the same in image space, so the image noise floor is about ``noise_level * SIGNAL_SCALE``).
    """
    k = fft2c(images.astype(np.complex64))
    if noise_level > 0:
        rng = np.random.default_rng([int(seed), 99])
        sd = noise_level * SIGNAL_SCALE
        k = k + (rng.standard_normal(k.shape, dtype=np.float32) + 1j * rng.standard_normal(k.shape, dtype=np.float32)) * sd
    return k.astype(np.complex64)


def ismrmrd_header(rows: int, cols: int, fov_mm: tuple[float, float] = FOV_MM, n_slices: int = 1,
                   slice_mm: float = 3.0, recon_size: tuple[int, int] = (RECON_SIZE, RECON_SIZE)) -> str:
    """A valid ISMRMRD XML header with encoded/recon matrix sizes and fields of view."""
    pr = fov_mm[0] / rows
    rfov = (recon_size[0] * pr, recon_size[1] * pr)
    c1 = cols // 2
    return f"""<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://www.ismrm.org/ISMRMRD ismrmrd.xsd">
  <measurementInformation>
    <patientPosition>FFS</patientPosition>
    <protocolName>CORPD_FBK</protocolName>
  </measurementInformation>
  <acquisitionSystemInformation>
    <systemVendor>reviewer-demo</systemVendor>
    <systemModel>synthetic knee phantom v{GENERATOR_VERSION}</systemModel>
    <systemFieldStrength_T>3.0</systemFieldStrength_T>
    <receiverChannels>1</receiverChannels>
  </acquisitionSystemInformation>
  <experimentalConditions>
    <H1resonanceFrequency_Hz>123251815</H1resonanceFrequency_Hz>
  </experimentalConditions>
  <encoding>
    <encodedSpace>
      <matrixSize><x>{rows}</x><y>{cols}</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>{fov_mm[0]:.4f}</x><y>{fov_mm[1]:.4f}</y><z>{slice_mm:.4f}</z></fieldOfView_mm>
    </encodedSpace>
    <reconSpace>
      <matrixSize><x>{recon_size[0]}</x><y>{recon_size[1]}</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>{rfov[0]:.4f}</x><y>{rfov[1]:.4f}</y><z>{slice_mm:.4f}</z></fieldOfView_mm>
    </reconSpace>
    <encodingLimits>
      <kspace_encoding_step_0><minimum>0</minimum><maximum>{rows - 1}</maximum><center>{rows // 2}</center></kspace_encoding_step_0>
      <kspace_encoding_step_1><minimum>0</minimum><maximum>{cols - 1}</maximum><center>{c1}</center></kspace_encoding_step_1>
      <kspace_encoding_step_2><minimum>0</minimum><maximum>0</maximum><center>0</center></kspace_encoding_step_2>
      <slice><minimum>0</minimum><maximum>{n_slices - 1}</maximum><center>{n_slices // 2}</center></slice>
    </encodingLimits>
    <trajectory>cartesian</trajectory>
  </encoding>
  <sequenceParameters>
    <TR>2750</TR>
    <TE>27</TE>
    <TI>100</TI>
    <flipAngle_deg>90</flipAngle_deg>
  </sequenceParameters>
</ismrmrdHeader>
"""


def make_fastmri_file(path: str | Path, seed: int = 0, n_slices: int = 14,
                      shape: tuple[int, int] = FASTMRI_SHAPE, noise_level: float = 0.03,
                      fov_mm: tuple[float, float] = FOV_MM, token=None) -> Path:
    """Write a fastMRI-format single-coil knee HDF5 file (kspace, reconstruction_esc/_rss, ismrmrd_header, attrs).

    ``shape`` = (rows, cols) of k-space; reconstructions are the magnitude of ``ifft2c(kspace)`` centre-cropped to
    320 x 320 (or the image size when smaller).
    """
    import h5py

    path = Path(path)
    if token is not None:
        token.progress(0, 3, "MRI phantom")
    imgs = make_mri_slices(seed, n_slices, shape, fov_mm)
    if token is not None:
        token.progress(1, 3, "MRI k-space")
    k = simulate_kspace(imgs, noise_level, seed)
    recon = np.abs(center_crop(ifft2c(k), (RECON_SIZE, RECON_SIZE))).astype(np.float32)
    if token is not None:
        token.progress(2, 3, "writing HDF5")
    header = ismrmrd_header(shape[0], shape[1], fov_mm, n_slices, recon_size=recon.shape[-2:])
    with h5py.File(path, "w", track_order=True) as f:
        f.create_dataset("kspace", data=k)
        f.create_dataset("reconstruction_esc", data=recon)
        f.create_dataset("reconstruction_rss", data=recon)
        f.create_dataset("ismrmrd_header", data=np.bytes_(header.encode()))
        f.attrs["acquisition"] = "CORPD_FBK"
        f.attrs["max"] = float(recon.max())
        f.attrs["norm"] = float(np.linalg.norm(recon))
        f.attrs["patient_id"] = f"demo-knee-{seed:04d}"
        f.attrs["generator"] = f"reviewer.demo.mri v{GENERATOR_VERSION}"
    if token is not None:
        token.progress(3, 3, "MRI done")
    return path


def make_fastmri_dataset(out_dir: str | Path, n_files: int = 8, first_seed: int = 0, n_slices: int = 14,
                         shape: tuple[int, int] = FASTMRI_SHAPE, noise_level: float = 0.03, token=None) -> list[Path]:
    """Write ``n_files`` fastMRI-format files (one synthetic knee per seed) for training/validation demos."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_files):
        if token is not None:
            token.progress(i, n_files, f"knee {i + 1}/{n_files}")
        seed = first_seed + i
        paths.append(make_fastmri_file(out / f"demo_knee_{seed:04d}.h5", seed=seed, n_slices=n_slices, shape=shape,
                                       noise_level=noise_level))
    if token is not None:
        token.progress(n_files, n_files, "done")
    return paths


def describe_fastmri(path: str | Path) -> dict[str, Any]:
    import h5py

    with h5py.File(path, "r") as f:
        return {
            "datasets": {k: (f[k].shape, str(f[k].dtype)) for k in f.keys()},
            "attrs": {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()},
        }
