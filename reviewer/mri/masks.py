"""Under-sampling masks with exactly fastMRI's semantics (``fastmri.data.subsample``, v0.3.0).

Columns of k-space (the phase-encode axis, the last axis of a complex array) are kept or dropped.
``num_low = round(num_cols * center_fraction)`` central columns are always kept, starting at
``(num_cols - num_low + 1) // 2``. Random masks keep every other column with probability
``(num_cols / acc - num_low) / (num_cols - num_low)``; equispaced masks keep ``offset::acc`` plus the centre.
With several (center_fraction, acceleration) pairs one pair is drawn per call. The generator is a
``numpy.random.RandomState``; a per-call ``seed`` (an int or a tuple such as ``tuple(map(ord, filename))``, as in
fastMRI's validation) temporarily reseeds it, so the same seed gives fastMRI's mask bit for bit.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

MASK_TYPES = ("random", "equispaced")
STANDARD_CENTER_FRACTIONS = {4: 0.08, 8: 0.04}


@contextlib.contextmanager
def _temp_seed(rng: np.random.RandomState, seed) -> Iterator[None]:
    if seed is None:
        yield
        return
    state = rng.get_state()
    rng.seed(seed)
    try:
        yield
    finally:
        rng.set_state(state)


@dataclass
class Mask:
    """A column mask (1D, float32 0/1) and the number of fully sampled central columns."""

    columns: np.ndarray
    num_low_frequencies: int
    center_fraction: float
    acceleration: float

    @property
    def effective_acceleration(self) -> float:
        return float(self.columns.size / max(1.0, self.columns.sum()))

    def apply(self, kspace: np.ndarray) -> np.ndarray:
        """Zero the dropped columns of complex k-space (..., rows, cols)."""
        if kspace.shape[-1] != self.columns.size:
            raise ValueError(f"mask has {self.columns.size} columns, k-space has {kspace.shape[-1]}")
        return kspace * self.columns.astype(kspace.real.dtype)


class MaskFunc:
    """Base class: draws (center_fraction, acceleration) and builds the centre + acceleration masks."""

    kind = ""

    def __init__(self, center_fractions: Sequence[float], accelerations: Sequence[float],
                 allow_any_combination: bool = False, seed=None):
        if len(center_fractions) != len(accelerations) and not allow_any_combination:
            raise ValueError("the number of center fractions must match the number of accelerations")
        self.center_fractions = list(center_fractions)
        self.accelerations = list(accelerations)
        self.allow_any_combination = allow_any_combination
        self.rng = np.random.RandomState(seed)

    def __call__(self, num_cols: int, offset: int | None = None, seed=None) -> Mask:
        with _temp_seed(self.rng, seed):
            center_fraction, acceleration = self._choose_acceleration()
            num_low = round(num_cols * center_fraction)
            center = np.zeros(num_cols, dtype=np.float32)
            pad = (num_cols - num_low + 1) // 2
            center[pad:pad + num_low] = 1
            accel = self._acceleration_mask(num_cols, acceleration, offset, num_low).astype(np.float32)
        return Mask(np.maximum(center, accel), num_low, center_fraction, acceleration)

    def _choose_acceleration(self) -> tuple[float, float]:
        if self.allow_any_combination:
            return self.rng.choice(self.center_fractions), self.rng.choice(self.accelerations)
        choice = self.rng.randint(len(self.center_fractions))
        return self.center_fractions[choice], self.accelerations[choice]

    def _acceleration_mask(self, num_cols: int, acceleration: float, offset, num_low: int) -> np.ndarray:
        raise NotImplementedError


class RandomMaskFunc(MaskFunc):
    kind = "random"

    def _acceleration_mask(self, num_cols, acceleration, offset, num_low):
        prob = (num_cols / acceleration - num_low) / (num_cols - num_low)
        return self.rng.uniform(size=num_cols) < prob


class EquiSpacedMaskFunc(MaskFunc):
    kind = "equispaced"

    def _acceleration_mask(self, num_cols, acceleration, offset, num_low):
        if offset is None:
            offset = self.rng.randint(0, high=round(acceleration))
        mask = np.zeros(num_cols, dtype=np.float32)
        mask[offset::acceleration] = 1
        return mask


def create_mask_func(kind: str, center_fractions: Sequence[float], accelerations: Sequence[float],
                     seed=None) -> MaskFunc:
    if kind == "random":
        return RandomMaskFunc(center_fractions, accelerations, seed=seed)
    if kind == "equispaced":
        return EquiSpacedMaskFunc(center_fractions, accelerations, seed=seed)
    raise ValueError(f"unknown mask type {kind!r}; choose one of {', '.join(MASK_TYPES)}")


def validation_seed(filename: str) -> tuple[int, ...]:
    """The per-file seed fastMRI uses in validation: ``tuple(map(ord, filename))``."""
    return tuple(map(ord, filename))
