"""MRI reconstruction and FNAF lab: the Qt-free logic behind the GUI's review panel (Slicer "Logic" style).

``MriLab`` holds one input (fastMRI k-space, or a magnitude image with *simulated* k-space, labelled so), the
mask settings and the selected models, and offers:

* :meth:`MriLab.reconstruct_all` -> :class:`LabResult`: per-slice ground truth, zero-filled and each model's
  output as (slices, 320, 320) float32 volumes, with SSIM / NMSE / PSNR per volume (fastMRI's evaluation,
  ``data_range`` = the volume maximum) and per slice (same ``data_range``);
* :meth:`MriLab.place_feature` -> :class:`FeatureResult`: add an FNAF feature to one ground-truth slice and push
  it through the FNAF forward model (image-domain simulation with a mask on the image's 320 columns, as
  ``reviewer fnaf eval`` does): per model the output, the masked attack loss, hit / miss and the
  information-preservation (IP) MSE with pass / fail;
* :meth:`MriLab.search_features`: the worst features in a slice or around a point (random search, finite
  differences or PGD from :mod:`reviewer.fnaf.search`), sorted by attack loss.

Every long function takes ``token: JobToken | None`` (progress and cancel) so the GUI runs it as a job.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reviewer.fnaf.features import SHAPES, Feature, loss_region, make_feature, relative_intensity
from reviewer.fnaf.forward import HIT_THRESHOLD, IP_EPSILON
from reviewer.geometry import Geometry, Volume
from reviewer.jobs import JobToken
from reviewer.mri import metrics
from reviewer.mri.masks import MASK_TYPES, STANDARD_CENTER_FRACTIONS, validation_seed
from reviewer.mri.recon import SIMULATED_LABEL, ReconInput, make_mask, read_recon_input, simulate_kspace
from reviewer.mri.transforms import CROP, zero_filled

ZERO_FILLED = "zero-filled"
GROUND_TRUTH = "ground truth"
ATTACKS = ("rs", "fd", "pgd")
SIZE_UNITS = ("px", "mm")
INTENSITY_MODES = ("absolute", "relative")


@dataclass
class MaskSettings:
    """Under-sampling mask; ``seed`` None = fastMRI's validation seed of the file name."""

    kind: str = "random"
    acceleration: int = 4
    center_fraction: float = 0.08
    seed: int | None = None

    def validate(self) -> None:
        if self.kind not in MASK_TYPES:
            raise ValueError(f"unknown mask type {self.kind!r}; choose one of {', '.join(MASK_TYPES)}")
        if self.acceleration < 1:
            raise ValueError(f"acceleration must be >= 1, got {self.acceleration}")
        if not 0.0 < self.center_fraction < 1.0:
            raise ValueError(f"centre fraction must be in (0, 1), got {self.center_fraction}")


def standard_center_fraction(acceleration: int) -> float:
    """fastMRI's pairing: 4x -> 0.08, 8x -> 0.04 (else 0.32 / acceleration)."""
    return STANDARD_CENTER_FRACTIONS.get(int(acceleration), round(0.32 / max(acceleration, 1), 4))


@dataclass
class LabResult:
    """Volumes (slices, 320, 320) float32 and their metrics against the ground truth."""

    ground_truth: np.ndarray
    zero_filled: np.ndarray
    outputs: dict[str, np.ndarray]
    metrics: dict[str, dict[str, float]]  # name (ZERO_FILLED or model) -> ssim / nmse / psnr per volume
    slice_metrics: dict[str, dict[str, np.ndarray]]  # name -> ssim / nmse / psnr -> (slices,)
    geometry: Geometry
    simulated: bool
    mask: MaskSettings
    seed_used: Any = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Reconstructions in display order: zero-filled, then the models."""
        return [ZERO_FILLED, *self.outputs]

    def reconstruction(self, name: str) -> np.ndarray:
        return self.zero_filled if name == ZERO_FILLED else self.outputs[name]

    def difference(self, name: str) -> np.ndarray:
        """|reconstruction - ground truth| (slices, 320, 320) float32, computed on demand."""
        return np.abs(self.reconstruction(name) - self.ground_truth).astype(np.float32)

    def volume(self, name: str, array: np.ndarray | None = None, unit: str = "a.u.") -> Volume:
        """A Volume on the ground truth's grid (so every pane shares one world frame)."""
        arr = self.ground_truth if name == GROUND_TRUTH and array is None else array
        if arr is None:
            arr = self.reconstruction(name)
        return Volume(np.ascontiguousarray(arr, dtype=np.float32), self.geometry, modality="MR", unit=unit,
                      name=name, metadata={"mri_lab": name, "simulated_kspace": self.simulated})


@dataclass
class ModelScore:
    """One model on one feature: the output slice and the FNAF measurements."""

    output: np.ndarray  # (320, 320) de-normalised model output on (ground truth + feature)
    loss: float  # attack loss in the loss region
    hit: bool  # loss >= hit threshold: the model lost the feature
    ip: float
    ip_ok: bool


@dataclass
class FeatureResult:
    slice_index: int
    feature: Feature
    image: np.ndarray  # (320, 320) ground truth + feature
    zero_filled: np.ndarray  # (320, 320) zero-filled (image-domain simulation) of ground truth + feature
    region: np.ndarray  # (320, 320) bool loss region (feature pixels and their 8 neighbours)
    scores: dict[str, ModelScore]
    ip: float
    ip_ok: bool
    hit_threshold: float = HIT_THRESHOLD
    ip_epsilon: float = IP_EPSILON
    attack: str = "placed"
    searched_model: str | None = None

    @property
    def center(self) -> tuple[int, int]:
        return self.feature.center

    @property
    def loss(self) -> float:
        """The attack loss against the searched model (or the largest over models for a placed feature)."""
        if self.searched_model is not None and self.searched_model in self.scores:
            return self.scores[self.searched_model].loss
        return max((s.loss for s in self.scores.values()), default=0.0)

    def region_bounds(self) -> tuple[int, int, int, int]:
        """(row0, row1, col0, col1) inclusive bounding box of the loss region."""
        rows, cols = np.nonzero(self.region)
        if rows.size == 0:
            r, c = self.center
            return r, r, c, c
        return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())


def _crop_offsets(shape_hw: tuple[int, int], crop: tuple[int, int] = CROP) -> tuple[int, int]:
    """Index in the original image of the pixel (0, 0) of simulate_kspace's padded + centre-cropped image."""
    out = []
    for n, c in zip(shape_hw, crop):
        pad = max(0, c - n)
        padded = n + pad
        out.append((padded - c) // 2 - pad // 2)
    return out[0], out[1]


class MriLab:
    """One reconstruction / FNAF session. Build with :meth:`from_file` or :meth:`from_volume`."""

    def __init__(self, data: ReconInput, geometry: Geometry, name: str = "", file_name: str = ""):
        self.data = data
        self.geometry = geometry
        self.name = name or Path(data.source).name
        self.file_name = file_name or Path(data.source).name
        self.mask = MaskSettings()
        self.models: dict[str, Any] = {}  # name -> torch module (eval mode)
        self.hit_threshold = HIT_THRESHOLD
        self.ip_epsilon = IP_EPSILON
        self.result: LabResult | None = None
        self._reference: np.ndarray | None = None

    # -- construction ----------------------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path, series_uid: str | None = None, token: JobToken | None = None) -> "MriLab":
        """fastMRI HDF5 (acquired k-space), or any image the I/O layer reads (simulated k-space)."""
        path = Path(path)
        if path.suffix in (".h5", ".hdf5"):
            data = read_recon_input(path)
            from reviewer.io.fastmri import read_fastmri

            n = data.kspace.shape[0]
            try:
                vol = read_fastmri(path)
                geom = vol.geometry if tuple(vol.shape) == (n, *CROP) else None
            except Exception:  # noqa: BLE001 - geometry is a nicety; the reconstruction does not need it
                vol, geom = None, None
            if geom is None:
                spacing = vol.geometry.spacing if vol is not None else (1.0, 1.0, 1.0)
                geom = Geometry((n, *CROP), spacing)
            return cls(data, geom, name=vol.name if vol is not None else path.name, file_name=path.name)
        from reviewer.io.loader import load_volume

        vol = load_volume(path, series_uid=series_uid)
        lab = cls.from_volume(vol)
        lab.file_name = path.name
        return lab

    @classmethod
    def from_volume(cls, volume: Volume, token: JobToken | None = None) -> "MriLab":
        """A magnitude image volume (slices along k) -> simulated k-space, labelled as such."""
        arr = np.asarray(volume.array, dtype=np.float32)
        data = simulate_kspace(arr, volume.source or volume.name)
        r_off, c_off = _crop_offsets(arr.shape[-2:])
        g = volume.geometry
        origin = g.voxel_to_world((c_off, r_off, 0))
        geom = Geometry((arr.shape[0], *CROP), g.spacing, tuple(np.asarray(origin, dtype=float).reshape(3)),
                        g.direction)
        name = volume.name or Path(volume.source).name or "image"
        return cls(data, geom, name=name, file_name=Path(volume.source).name if volume.source else name)

    # -- properties ------------------------------------------------------------------------------------------
    @property
    def simulated(self) -> bool:
        return self.data.simulated

    @property
    def input_label(self) -> str:
        """'acquired k-space' or 'simulated k-space' (the latter must be shown wherever results are)."""
        return self.data.label

    @property
    def n_slices(self) -> int:
        return int(self.data.kspace.shape[0])

    @property
    def pixel_spacing_mm(self) -> tuple[float, float]:
        """(row, column) pixel spacing of the 320 x 320 grid."""
        si, sj, _ = self.geometry.spacing
        return float(sj), float(si)

    def reference(self) -> np.ndarray:
        """Ground truth (slices, 320, 320): reconstruction_esc, the image for simulated input, else |ifft|."""
        if self._reference is None:
            if self.data.reference is not None:
                self._reference = np.asarray(self.data.reference, dtype=np.float32)
            else:
                self._reference = zero_filled(self.data.kspace, None).astype(np.float32)
        return self._reference

    def ground_truth_source(self) -> str:
        if self.simulated:
            return f"magnitude image ({SIMULATED_LABEL})"
        return "reconstruction_esc" if self.data.reference is not None else "fully sampled |ifft| (no reference)"

    def seed(self):
        """The mask seed in use: the given one, else fastMRI's validation seed of the file name."""
        return self.mask.seed if self.mask.seed is not None else validation_seed(self.file_name)

    # -- models ----------------------------------------------------------------------------------------------
    def set_models(self, models: dict[str, Any]) -> None:
        self.models = dict(models)

    def load_models(self, cards, device=None, token: JobToken | None = None) -> dict[str, Any]:
        """Build each card's model (weights checked and loaded); replaces the selection."""
        from reviewer.models.cards import build_model

        models = {}
        for i, card in enumerate(cards):
            if token:
                token.progress(i, len(cards), f"loading {card.name}")
            models[card.name] = build_model(card, device=device)
        self.models = models
        return models

    def _model(self, name: str | None):
        if not self.models:
            raise ValueError("no model selected")
        if name is None:
            return next(iter(self.models.items()))
        if name not in self.models:
            raise ValueError(f"no model named {name!r}; selected: {', '.join(self.models)}")
        return name, self.models[name]

    # -- reconstruction --------------------------------------------------------------------------------------
    def kspace_mask(self):
        m = self.mask
        return make_mask(m.kind, m.acceleration, m.center_fraction, self.data.kspace.shape[-1], seed=self.seed())

    def image_mask_columns(self) -> np.ndarray:
        """The FNAF simulation's mask on the image's 320 columns (same settings and seed)."""
        m = self.mask
        return make_mask(m.kind, m.acceleration, m.center_fraction, CROP[1], seed=self.seed()).columns

    def reconstruct_all(self, token: JobToken | None = None) -> LabResult:
        """Zero-filled and every selected model over all slices, with per-volume and per-slice metrics."""
        from reviewer.mri.recon import reconstruct

        settings = copy.copy(self.mask)
        settings.validate()
        models = dict(self.models)
        seed = self.seed()
        kmask = make_mask(settings.kind, settings.acceleration, settings.center_fraction,
                          self.data.kspace.shape[-1], seed=seed)
        gt = self.reference()
        steps = max(1, len(models)) + 1
        outputs: dict[str, np.ndarray] = {}
        timings: dict[str, float] = {}
        zf = None
        if not models:
            from reviewer.mri.transforms import zero_filled as zf_fn

            zf = np.stack([zf_fn(k, kmask) for k in self.data.kspace]).astype(np.float32)
        for i, (name, model) in enumerate(models.items()):
            sub = token.sub(i, i + 1, steps) if token else None
            res = reconstruct(model, self.data.kspace, kmask, token=sub)
            outputs[name] = res.output.astype(np.float32)
            if zf is None:
                zf = res.zero_filled.astype(np.float32)
            timings[name] = sum(res.timings.values())
        if token:
            token.progress(steps - 1, steps, "metrics")
        vol_metrics: dict[str, dict[str, float]] = {}
        slice_metrics: dict[str, dict[str, np.ndarray]] = {}
        for name, rec in [(ZERO_FILLED, zf), *outputs.items()]:
            if token:
                token.check()
            vol_metrics[name] = metrics.all_metrics(gt, rec)
            slice_metrics[name] = per_slice_metrics(gt, rec)
        if token:
            token.progress(steps, steps, "done")
        self.result = LabResult(gt, zf, outputs, vol_metrics, slice_metrics, self.geometry, self.simulated,
                                settings, seed, timings)
        return self.result

    # -- FNAF ------------------------------------------------------------------------------------------------
    def make_feature(self, slice_index: int, row: int, col: int, shape: str = "disk", size: float = 2.0,
                     size_unit: str = "px", intensity: float = 0.5, intensity_mode: str = "relative",
                     seed: int | None = 0) -> Feature:
        """The feature only (no model): ``size`` = radius (disk), sigma (Gaussian) or walk length (random walk);
        ``intensity`` absolute, or a fraction of the slice's range (max - min) when relative."""
        if shape not in SHAPES:
            raise ValueError(f"unknown feature shape {shape!r}; choose one of {', '.join(SHAPES)}")
        if size_unit not in SIZE_UNITS:
            raise ValueError(f"size unit must be one of {', '.join(SIZE_UNITS)}, got {size_unit!r}")
        if intensity_mode not in INTENSITY_MODES:
            raise ValueError(f"intensity mode must be one of {', '.join(INTENSITY_MODES)}, got {intensity_mode!r}")
        image = self.reference()[self._check_slice(slice_index)]
        h, w = image.shape
        if not (0 <= row < h and 0 <= col < w):
            raise ValueError(f"feature position ({row}, {col}) is outside the {h}x{w} image")
        size_px = float(size)
        if size_unit == "mm":
            size_px = float(size) / float(np.mean(self.pixel_spacing_mm))
        if size_px <= 0:
            raise ValueError(f"feature size must be positive, got {size} {size_unit}")
        if shape == "random-walk":
            size_px = max(1, int(round(size_px)))
        value = relative_intensity(image, intensity) if intensity_mode == "relative" else float(intensity)
        feat = make_feature(shape, (h, w), (int(row), int(col)), size_px, value, rng=np.random.default_rng(seed))
        feat.params.update({"size": size, "size_unit": size_unit, "intensity": intensity,
                            "intensity_mode": intensity_mode, "intensity_value": value})
        return feat

    def place_feature(self, slice_index: int, row: int, col: int, shape: str = "disk", size: float = 2.0,
                      size_unit: str = "px", intensity: float = 0.5, intensity_mode: str = "relative",
                      seed: int | None = 0, token: JobToken | None = None) -> FeatureResult:
        """Add a feature to the ground-truth slice and measure what every selected model does with it."""
        feat = self.make_feature(slice_index, row, col, shape, size, size_unit, intensity, intensity_mode, seed)
        return self.evaluate_feature(slice_index, feat, token=token)

    def evaluate_feature(self, slice_index: int, feature: Feature, token: JobToken | None = None,
                         attack: str = "placed", searched_model: str | None = None) -> FeatureResult:
        import torch

        from reviewer.fnaf.forward import forward, score_features, zero_filled_batch

        k = self._check_slice(slice_index)
        image = self.reference()[k]
        cols = self.image_mask_columns()
        values = np.asarray(feature.values, dtype=np.float32)
        with_feature = (image + values).astype(np.float32)
        scores: dict[str, ModelScore] = {}
        ip, ip_ok = None, None
        for i, (name, model) in enumerate(self.models.items()):
            if token:
                token.progress(i, len(self.models), f"FNAF forward: {name}")
            sc = score_features(model, image, values[None], cols, 1, self.hit_threshold, self.ip_epsilon)[0]
            device = next(model.parameters()).device
            with torch.no_grad():
                res = forward(model, torch.as_tensor(with_feature, device=device)[None],
                              torch.as_tensor(cols, dtype=torch.float32, device=device))
                out = (res.output * res.std + res.mean)[0].float().cpu().numpy()
            scores[name] = ModelScore(out.astype(np.float32), sc.loss, sc.hit, sc.ip, sc.ip_ok)
            ip, ip_ok = sc.ip, sc.ip_ok
        if ip is None:
            from reviewer.fnaf.search import ip_of

            ip = ip_of(image, values, cols)
            ip_ok = ip >= self.ip_epsilon
        t = torch.as_tensor
        zf = zero_filled_batch(t(with_feature)[None], t(cols, dtype=torch.float32))[0].numpy().astype(np.float32)
        if token:
            token.progress(len(self.models), len(self.models), "done")
        return FeatureResult(k, feature, with_feature, zf, loss_region(feature.support), scores, float(ip),
                             bool(ip_ok), self.hit_threshold, self.ip_epsilon, attack, searched_model)

    def search_region(self, region: tuple[int, int, int, int] | None = None,
                      around: tuple[int, int, int] | None = None) -> tuple[int, int, int, int]:
        """(row0, row1, col0, col1): around (row, col, radius) when given, else ``region``, else the official
        central window [50, 270] scaled to the image."""
        from reviewer.fnaf.search import default_region

        h, w = CROP
        if around is not None:
            r, c, rad = (int(v) for v in around)
            return (max(0, r - rad), min(h - 1, r + rad), max(0, c - rad), min(w - 1, c + rad))
        return tuple(int(v) for v in region) if region is not None else default_region((h, w))

    def search_features(self, slice_index: int, attack: str = "rs", tries: int = 11,
                        region: tuple[int, int, int, int] | None = None, model: str | None = None,
                        around: tuple[int, int, int] | None = None, top: int = 5, seed: int | None = 0,
                        n_steps: int = 10, token: JobToken | None = None) -> list[FeatureResult]:
        """The worst IP-valid features (official random walks) against ``model`` in the region, sorted by its
        attack loss (largest first); each is evaluated on every selected model."""
        from reviewer.fnaf.search import SearchSettings, search

        if attack not in ATTACKS:
            raise ValueError(f"unknown attack {attack!r}; choose one of {', '.join(ATTACKS)}")
        name, net = self._model(model)
        k = self._check_slice(slice_index)
        image = self.reference()[k]
        settings = SearchSettings(n_steps=n_steps, tries=int(tries), region=self.search_region(region, around),
                                  hit_threshold=self.hit_threshold, ip_epsilon=self.ip_epsilon)
        sub = token.sub(0, 0.7, 1.0) if token else None
        found = search(net, image, self.image_mask_columns(), attack, settings, np.random.default_rng(seed), top,
                       token=sub)
        results = []
        for i, cand in enumerate(found):
            if token:
                token.progress(0.7 + 0.3 * i / max(1, len(found)), 1.0, f"evaluating feature {i + 1}/{len(found)}")
            results.append(self.evaluate_feature(k, cand.feature, attack=attack, searched_model=name))
        results.sort(key=lambda r: -r.loss)
        if token:
            token.progress(1.0, 1.0, "done")
        return results

    def _check_slice(self, slice_index: int) -> int:
        k = int(slice_index)
        if not 0 <= k < self.n_slices:
            raise ValueError(f"slice {slice_index} is outside 0..{self.n_slices - 1}")
        return k


def per_slice_metrics(gt: np.ndarray, rec: np.ndarray) -> dict[str, np.ndarray]:
    """SSIM / NMSE / PSNR of each slice, with the volume's maximum as data_range (as the per-volume metrics)."""
    maxval = float(gt.max())
    return {
        "ssim": np.array([metrics.ssim(g, r, maxval=maxval) for g, r in zip(gt, rec)]),
        "nmse": np.array([metrics.nmse(g, r) for g, r in zip(gt, rec)]),
        "psnr": np.array([metrics.psnr(g, r, maxval=maxval) for g, r in zip(gt, rec)]),
    }


def format_metrics(m: dict[str, float]) -> str:
    return f"SSIM {m['ssim']:.3f}  NMSE {m['nmse']:.4f}  PSNR {m['psnr']:.1f} dB"


def format_score(s: ModelScore) -> str:
    return (f"attack loss {s.loss:.2e} {'HIT (lost)' if s.hit else 'MISS (kept)'}  "
            f"IP {s.ip:.1e} {'PASS' if s.ip_ok else 'FAIL'}")
