"""A differentiable lung-nodule generator with interpretable parameters.

The nodule is an analytic field evaluated at arbitrary points (mm offsets from its centre, patient LPS axes), so
the same nodule renders into an FPR patch (LPS-aligned, any spacing) and into a scan of any direction matrix.
Everything is torch and differentiable with respect to the normalised parameter vector ``theta`` in [0, 1]^7,
the space PGD searches in (the paper searches a VAE's latent code; ours is interpretable instead).

Shape, with R = diameter / 2 and u the direction from the centre:

* body radius ``r(u) = R (1 + 0.4 lobulation (b(u) - mean b))``, b a sum of 5 smooth bumps exp(k (u.v - 1))
  around seeded directions v; the mean over the sphere is subtracted so the mean radius stays R;
* occupancy ``m_body = sigmoid(4 (r(u) - |x|) / w)``, margin width w = 0.4 + (1 - sharpness) (0.25 R + 1) mm
  (widened by the voxel size for anti-aliasing);
* solid core: the same shape scaled by ``solid_fraction`` (core diameter / nodule diameter, as the demo phantom's
  part-solid nodules); 0 = pure ground glass, 1 = solid;
* spicules: 10 seeded tapered strands from 0.7 R out to R + spiculation * (0.5..1.2) * 1.5 R, solid density,
  faded in over spiculation 0..0.2;
* HU: ``ground_glass_hu`` outside the core, ``density_hu`` in the core and spicules, plus a faint seeded texture
  (random Fourier features, a few HU). Defaults follow ``reviewer.demo.chest_ct`` (solid +40, ground glass -600).

``mask`` is the soft support (union of body and spicules). The paper thresholds the synthetic nodule to get m;
a soft mask keeps the blend differentiable in the nodule's size and shape, and equals the thresholded one away
from the margin.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

# name, low, high: the physical range that the normalised value 0..1 maps to (linearly)
PARAM_SPECS: tuple[tuple[str, float, float], ...] = (
    ("diameter_mm", 3.0, 30.0),
    ("solid_fraction", 0.0, 1.0),
    ("density_hu", -100.0, 150.0),
    ("ground_glass_hu", -800.0, -300.0),
    ("margin_sharpness", 0.0, 1.0),
    ("lobulation", 0.0, 1.0),
    ("spiculation", 0.0, 1.0),
)
PARAM_NAMES = tuple(p[0] for p in PARAM_SPECS)
N_PARAMS = len(PARAM_SPECS)
_LO = np.array([p[1] for p in PARAM_SPECS])
_HI = np.array([p[2] for p in PARAM_SPECS])

N_LOBES = 5
LOBE_KAPPA = 3.0
LOBE_AMPLITUDE = 0.4
N_SPICULES = 10
N_TEXTURE = 16


@dataclass
class NoduleParams:
    """Interpretable nodule parameters in physical units."""

    diameter_mm: float = 10.0
    solid_fraction: float = 1.0  # core diameter / nodule diameter: 0 ground glass, 1 solid
    density_hu: float = 40.0  # solid component
    ground_glass_hu: float = -600.0  # non-solid component
    margin_sharpness: float = 0.8  # 1 = crisp edge, 0 = fuzzy
    lobulation: float = 0.0
    spiculation: float = 0.0

    def __post_init__(self) -> None:
        for name, lo, hi in PARAM_SPECS:
            v = float(getattr(self, name))
            if not math.isfinite(v) or v < lo - 1e-6 or v > hi + 1e-6:
                raise ValueError(f"nodule parameter {name}={v} outside [{lo}, {hi}]")
            setattr(self, name, min(max(v, lo), hi))

    @property
    def kind(self) -> str:
        """'solid', 'part-solid' or 'ground-glass' from the solid fraction (as the demo phantom's kinds)."""
        if self.solid_fraction >= 0.9:
            return "solid"
        if self.solid_fraction <= 0.1:
            return "ground-glass"
        return "part-solid"

    def to_vector(self) -> np.ndarray:
        """Normalised vector in [0, 1]^7 (order: :data:`PARAM_NAMES`)."""
        v = np.array([getattr(self, n) for n in PARAM_NAMES], dtype=np.float64)
        return (v - _LO) / (_HI - _LO)

    @classmethod
    def from_vector(cls, theta: Any) -> "NoduleParams":
        t = np.clip(np.asarray(_to_numpy(theta), dtype=np.float64).reshape(-1), 0.0, 1.0)
        if t.size != N_PARAMS:
            raise ValueError(f"a nodule parameter vector has {N_PARAMS} entries, got {t.size}")
        return cls(**{n: float(v) for n, v in zip(PARAM_NAMES, _LO + t * (_HI - _LO))})

    def to_json(self) -> dict[str, Any]:
        d = {k: round(float(v), 4) for k, v in asdict(self).items()}
        d["kind"] = self.kind
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "NoduleParams":
        return cls(**{k: float(d[k]) for k in PARAM_NAMES if k in d})

    @classmethod
    def from_nodule(cls, nodule: Any) -> "NoduleParams":
        """Parameters resembling a demo phantom :class:`reviewer.demo.chest_ct.Nodule`."""
        kind = nodule.kind
        sf = {"solid": 1.0, "ground-glass": 0.0}.get(kind, float(nodule.solid_fraction))
        return cls(
            diameter_mm=float(np.clip(nodule.diameter_mm, 3.0, 30.0)),
            solid_fraction=sf,
            density_hu=40.0,
            ground_glass_hu=-600.0,
            margin_sharpness=0.3 if kind == "ground-glass" else 0.85,
            lobulation=0.6 if nodule.lobulated else 0.0,
            spiculation=0.6 if nodule.spiculated else 0.0,
        )


def normalise_diameter(diameter_mm: float) -> float:
    lo, hi = PARAM_SPECS[0][1], PARAM_SPECS[0][2]
    return float(np.clip((diameter_mm - lo) / (hi - lo), 0.0, 1.0))


def sample_params(rng: np.random.Generator, min_diameter_mm: float = 6.0, max_diameter_mm: float = 25.0) -> NoduleParams:
    """A random nodule from the prior: log-uniform diameter, uniform other parameters (a 'randomly sampled
    nodule' of the paper's table 4)."""
    lo = max(min_diameter_mm, PARAM_SPECS[0][1])
    d = float(np.exp(rng.uniform(np.log(lo), np.log(max(lo, max_diameter_mm)))))
    t = rng.uniform(0.0, 1.0, N_PARAMS)
    t[0] = normalise_diameter(d)
    return NoduleParams.from_vector(t)


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, NoduleParams):
        return x.to_vector()
    return np.asarray(x)


# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShapeDetails:
    """Seeded, non-differentiable details of one nodule: lobe and spicule directions, texture."""

    lobe_dirs: np.ndarray  # (N_LOBES, 3)
    lobe_weights: np.ndarray  # (N_LOBES,)
    spicule_dirs: np.ndarray  # (N_SPICULES, 3)
    spicule_lengths: np.ndarray  # (N_SPICULES,) in units of 1.5 R at full spiculation
    texture_freqs: np.ndarray  # (N_TEXTURE, 3) cycles per mm
    texture_phases: np.ndarray  # (N_TEXTURE,)

    @classmethod
    def from_seed(cls, seed: int) -> "ShapeDetails":
        rng = np.random.default_rng([int(seed), 4004])

        def dirs(n):
            v = rng.normal(size=(n, 3))
            return v / np.linalg.norm(v, axis=1, keepdims=True)

        f = dirs(N_TEXTURE) * rng.uniform(1 / 4.0, 1 / 1.5, (N_TEXTURE, 1))  # wavelengths 1.5-4 mm
        return cls(dirs(N_LOBES), rng.uniform(0.6, 1.0, N_LOBES), dirs(N_SPICULES), rng.uniform(0.5, 1.2, N_SPICULES),
                   f, rng.uniform(0, 2 * np.pi, N_TEXTURE))


def physical(theta: torch.Tensor) -> torch.Tensor:
    """Normalised (..., 7) -> physical units (..., 7), differentiable (clamped to [0, 1] first)."""
    lo = torch.as_tensor(_LO, dtype=theta.dtype, device=theta.device)
    hi = torch.as_tensor(_HI, dtype=theta.dtype, device=theta.device)
    return lo + theta.clamp(0.0, 1.0) * (hi - lo)


def nodule_field(theta: Any, offsets_mm: Any, seed: int | list[int] = 0, voxel_mm: float = 0.0,
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Evaluate nodules at points.

    ``theta``: (7,) or (B, 7) normalised; ``offsets_mm``: (N, 3) LPS mm from the nodule centre; ``seed``: one or B
    seeds for the shape details; ``voxel_mm``: sampling distance, widens edges for anti-aliasing.
    Returns ``(hu, mask, solid)``, each (N,) or (B, N): the nodule's own HU (meaningful where mask > 0), its soft
    support in [0, 1], and the solid-component share of the support.
    """
    th = theta if isinstance(theta, torch.Tensor) else torch.as_tensor(np.asarray(theta, dtype=np.float32))
    single = th.dim() == 1
    th = th.reshape(-1, N_PARAMS)
    dtype, dev = th.dtype, th.device
    x = offsets_mm if isinstance(offsets_mm, torch.Tensor) else torch.as_tensor(np.asarray(offsets_mm))
    x = x.to(dtype=dtype, device=dev).reshape(-1, 3)
    seeds = [int(seed)] * th.shape[0] if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]
    if len(seeds) != th.shape[0]:
        raise ValueError(f"{th.shape[0]} parameter vectors but {len(seeds)} seeds")
    hus, masks, solids = [], [], []
    for b in range(th.shape[0]):
        h, m, s = _field_one(physical(th[b]), x, ShapeDetails.from_seed(seeds[b]), float(voxel_mm))
        hus.append(h)
        masks.append(m)
        solids.append(s)
    hu, mask, solid = torch.stack(hus), torch.stack(masks), torch.stack(solids)
    if single:
        return hu[0], mask[0], solid[0]
    return hu, mask, solid


def _t(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(a, dtype=like.dtype, device=like.device)


def _field_one(p: torch.Tensor, x: torch.Tensor, det: ShapeDetails, voxel_mm: float):
    diam, sf, dens, ggo, sharp, lob, spic = (p[i] for i in range(N_PARAMS))
    R = diam / 2
    aa = 0.5 * voxel_mm  # anti-aliasing width added to every edge
    rho = torch.sqrt((x * x).sum(-1) + 1e-12)
    u = x / rho[:, None]

    # lobulated body radius, mean radius R
    k = LOBE_KAPPA
    w = _t(det.lobe_weights, x)
    bumps = torch.exp(k * (u @ _t(det.lobe_dirs, x).T - 1.0)) @ w
    mean_b = float(det.lobe_weights.sum()) * (1.0 - math.exp(-2 * k)) / (2 * k)
    r_u = R * (1.0 + LOBE_AMPLITUDE * lob * (bumps - mean_b))

    width = torch.sqrt((0.4 + (1.0 - sharp) * (0.25 * R + 1.0)) ** 2 + aa**2)
    m_body = torch.sigmoid(4.0 * (r_u - rho) / width)

    # solid core: same shape scaled by the solid fraction; fades out as the core vanishes
    w_core = math.sqrt(0.5**2 + aa**2)
    rc = sf * r_u
    m_core = torch.sigmoid(4.0 * (rc - rho) / w_core) * torch.tanh(sf * R / w_core)

    # spicules: tapered segments from 0.7 R to R + L along seeded directions (solid strands)
    V = _t(det.spicule_dirs, x)  # (S, 3)
    a = 0.7 * R
    b = R + spic * 1.5 * R * _t(det.spicule_lengths, x)  # (S,)
    proj = x @ V.T  # (N, S)
    L = (b - a).clamp_min(1e-3)
    t = ((proj - a) / L).clamp(0.0, 1.0)
    foot = (a + t * L)  # distance along the axis of the closest point
    d2 = (rho[:, None] ** 2 - 2 * proj * foot + foot**2).clamp_min(1e-12)
    dist = torch.sqrt(d2)
    rs = torch.clamp(0.08 * R, min=0.5) * (1.0 - 0.7 * t)
    w_sp = math.sqrt(0.4**2 + aa**2)
    gate = torch.clamp(spic * 5.0, max=1.0)
    m_sp = torch.sigmoid(4.0 * (rs - dist) / w_sp) * (1.0 - 0.4 * t) * gate
    none_sp = torch.prod(1.0 - m_sp, dim=1)

    mask = 1.0 - (1.0 - m_body) * none_sp
    solid_mass = 1.0 - (1.0 - m_core * m_body) * none_sp
    solid = (solid_mass / mask.clamp_min(1e-6)).clamp(0.0, 1.0)

    tex = torch.cos(2 * math.pi * (x @ _t(det.texture_freqs, x).T) + _t(det.texture_phases, x)).sum(-1)
    tex = tex * math.sqrt(2.0 / N_TEXTURE)  # unit variance
    amp = 4.0 + 8.0 * (1.0 - solid)  # HU: ground glass is more heterogeneous
    hu = ggo + (dens - ggo) * solid + amp * tex
    return hu, mask, solid


def patch_offsets(patch_size: int, spacing_mm: float) -> np.ndarray:
    """(P^3, 3) LPS offsets (mm) of an FPR patch's voxels, array order [z, y, x] (as the detector's patches)."""
    P = int(patch_size)
    ax = (np.arange(P, dtype=np.float64) - (P - 1) / 2.0) * float(spacing_mm)
    z, y, xx = np.meshgrid(ax, ax, ax, indexing="ij")
    return np.stack([xx, y, z], axis=-1).reshape(-1, 3)


def render_nodule(theta: Any, patch_size: int, spacing_mm: float, seed: int | list[int] = 0,
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The nodule on a ``patch_size``^3 patch at ``spacing_mm`` isotropic, centred: ``(hu, mask)``, each (P, P, P)
    (or (B, P, P, P) for a (B, 7) ``theta``), differentiable in ``theta``."""
    th = theta if isinstance(theta, torch.Tensor) else torch.as_tensor(_to_numpy(theta), dtype=torch.float32)
    offs = torch.as_tensor(patch_offsets(patch_size, spacing_mm), dtype=th.dtype, device=th.device)
    hu, mask, _ = nodule_field(th, offs, seed, voxel_mm=float(spacing_mm))
    shape = (int(patch_size),) * 3
    return hu.reshape(*hu.shape[:-1], *shape), mask.reshape(*mask.shape[:-1], *shape)


def equivalent_diameter_mm(mask: Any, voxel_volume_mm3: float, threshold: float = 0.5) -> float:
    """Diameter of the sphere with the volume of ``mask >= threshold``."""
    n = float((_to_numpy(mask) >= threshold).sum())
    return float((6.0 * n * voxel_volume_mm3 / math.pi) ** (1.0 / 3.0))
