"""Image geometry in patient LPS millimetres, and the one place where world <-> voxel conversion lives.

Conventions (the ITK / DICOM ones):

* A volume's array is indexed ``array[k, j, i]`` (slice, row, column), C-contiguous.
* A voxel index is written ``(i, j, k)`` (column, row, slice), the order of ``spacing``.
* ``direction`` is a 3x3 matrix whose *columns* are the unit vectors, in patient LPS, of the i, j and k axes.
  For DICOM, column 0 is the row direction cosine of ImageOrientationPatient, column 1 the column direction
  cosine, column 2 the slice normal (the direction in which slices were sorted).
* ``world = origin + direction @ (spacing * ijk)``; ``origin`` is the centre of voxel (0, 0, 0).

Nothing here assumes identity directions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

LPS_LABELS = (("R", "L"), ("A", "P"), ("I", "S"))  # (negative, positive) end of the x, y, z patient axes


@dataclass(frozen=True)
class Geometry:
    """Shape and placement of a voxel grid in patient space (LPS, mm)."""

    shape: tuple[int, int, int]  # array shape (k, j, i)
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)  # (i, j, k) mm
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)  # LPS mm of voxel (0, 0, 0)
    direction: tuple[tuple[float, ...], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))

    def __post_init__(self) -> None:
        d = np.asarray(self.direction, dtype=float)
        if d.shape != (3, 3):
            raise ValueError(f"direction must be 3x3, got {d.shape}")
        if not np.all(np.isfinite(d)) or abs(abs(np.linalg.det(d)) - 1.0) > 1e-3:
            raise ValueError("direction must be an orthonormal 3x3 matrix")
        if len(self.shape) != 3 or any(int(s) <= 0 for s in self.shape):
            raise ValueError(f"shape must be three positive sizes, got {self.shape}")
        if any(not np.isfinite(s) or s <= 0 for s in self.spacing):
            raise ValueError(f"spacing must be positive, got {self.spacing}")
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "origin", tuple(float(s) for s in self.origin))
        object.__setattr__(self, "direction", tuple(tuple(float(v) for v in row) for row in d))

    # -- matrices ---------------------------------------------------------------------------------------------
    @property
    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float)

    @property
    def size_ijk(self) -> tuple[int, int, int]:
        """Grid size in (i, j, k) order."""
        return (self.shape[2], self.shape[1], self.shape[0])

    def index_to_world_matrix(self) -> np.ndarray:
        """4x4 affine mapping homogeneous (i, j, k, 1) to (x, y, z, 1) in LPS mm."""
        m = np.eye(4)
        m[:3, :3] = self.direction_matrix * np.asarray(self.spacing)[None, :]
        m[:3, 3] = self.origin
        return m

    def ras_affine(self) -> np.ndarray:
        """The NIfTI-style affine (voxel (i, j, k) -> RAS mm)."""
        flip = np.diag([-1.0, -1.0, 1.0, 1.0])
        return flip @ self.index_to_world_matrix()

    # -- conversions --------------------------------------------------------------------------------------------
    def voxel_to_world(self, ijk: Any) -> np.ndarray:
        """Continuous voxel index (i, j, k), shape (3,) or (N, 3), to LPS mm."""
        p = np.asarray(ijk, dtype=float)
        scaled = p * np.asarray(self.spacing)
        return np.asarray(self.origin) + scaled @ self.direction_matrix.T

    def world_to_voxel(self, xyz: Any) -> np.ndarray:
        """LPS mm, shape (3,) or (N, 3), to continuous voxel index (i, j, k)."""
        p = np.asarray(xyz, dtype=float) - np.asarray(self.origin)
        # direction is orthonormal, so its inverse is its transpose
        return (p @ self.direction_matrix) / np.asarray(self.spacing)

    def world_to_array_index(self, xyz: Any) -> tuple[int, int, int] | None:
        """Nearest array index (k, j, i) of a world point, or None when outside the grid."""
        i, j, k = np.rint(self.world_to_voxel(xyz)).astype(int)
        ks, js, is_ = self.shape
        if 0 <= i < is_ and 0 <= j < js and 0 <= k < ks:
            return (int(k), int(j), int(i))
        return None

    def contains_world(self, xyz: Any, margin_voxels: float = 0.5) -> bool:
        ijk = self.world_to_voxel(xyz)
        hi = np.asarray(self.size_ijk) - 1 + margin_voxels
        return bool(np.all(ijk >= -margin_voxels) and np.all(ijk <= hi))

    def world_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned LPS bounding box of the voxel centres."""
        hi = np.asarray(self.size_ijk) - 1
        corners = np.array([[a, b, c] for a in (0, hi[0]) for b in (0, hi[1]) for c in (0, hi[2])], dtype=float)
        w = self.voxel_to_world(corners)
        return w.min(axis=0), w.max(axis=0)

    def center_world(self) -> np.ndarray:
        return self.voxel_to_world((np.asarray(self.size_ijk) - 1) / 2.0)

    # -- orientation -------------------------------------------------------------------------------------------
    def axis_labels(self) -> list[tuple[str, str]]:
        """For each of the i, j, k axes, the patient-direction letters at its low and high end.

        Oblique axes get combined letters in order of decreasing weight (e.g. "LA"), as viewers show them.
        """
        return [direction_letters(self.direction_matrix[:, a]) for a in range(3)]

    def nearest_orientation_code(self) -> str:
        """Three-letter code (ITK style, e.g. "LPS" for an axial DICOM) of the positive end of i, j, k."""
        return "".join(direction_letters(self.direction_matrix[:, a], max_letters=1)[1] for a in range(3))

    def with_shape(self, shape: tuple[int, int, int]) -> "Geometry":
        return Geometry(shape, self.spacing, self.origin, self.direction)


def direction_letters(vec: Any, max_letters: int = 3, threshold: float = 0.1) -> tuple[str, str]:
    """Letters for the negative and positive end of a direction vector in LPS."""
    v = np.asarray(vec, dtype=float)
    order = np.argsort(-np.abs(v))
    pos, neg = [], []
    for axis in order[:max_letters]:
        if abs(v[axis]) < threshold and pos:
            break
        lo, hi = LPS_LABELS[axis]
        pos.append(hi if v[axis] > 0 else lo)
        neg.append(lo if v[axis] > 0 else hi)
    return "".join(neg), "".join(pos)


@dataclass
class Volume:
    """A 3D image with its geometry and where it came from.

    ``array`` is (k, j, i); for CT it holds HU (int16 when the rescale is integral, else float32).
    ``warnings`` collects things a reader must know (uneven spacing, missing geometry, domain problems).
    """

    array: np.ndarray
    geometry: Geometry
    modality: str = ""
    unit: str = ""
    name: str = ""
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    default_window: tuple[float, float] | None = None  # (width, level) from the file, when it has one

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"{self.source or self.name}: volume array must be 3D, got shape {self.array.shape}")
        if tuple(self.array.shape) != tuple(self.geometry.shape):
            raise ValueError(
                f"{self.source or self.name}: array shape {self.array.shape} does not match geometry {self.geometry.shape}"
            )

    @classmethod
    def from_array(
        cls,
        array: np.ndarray,
        spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
        origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
        direction: Any = None,
        **kwargs: Any,
    ) -> "Volume":
        d = np.eye(3) if direction is None else np.asarray(direction, dtype=float)
        geom = Geometry(tuple(array.shape), tuple(spacing), tuple(origin), tuple(map(tuple, d)))
        return cls(np.ascontiguousarray(array), geom, **kwargs)

    # conveniences delegating to the geometry
    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.geometry.spacing

    @property
    def origin(self) -> tuple[float, float, float]:
        return self.geometry.origin

    @property
    def direction(self) -> np.ndarray:
        return self.geometry.direction_matrix

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.geometry.shape

    def voxel_to_world(self, ijk: Any) -> np.ndarray:
        return self.geometry.voxel_to_world(ijk)

    def world_to_voxel(self, xyz: Any) -> np.ndarray:
        return self.geometry.world_to_voxel(xyz)

    def value_at_world(self, xyz: Any) -> float | None:
        idx = self.geometry.world_to_array_index(xyz)
        return None if idx is None else float(self.array[idx])

    def robust_range(self, lo: float = 0.1, hi: float = 99.9, max_samples: int = 2_000_000) -> tuple[float, float]:
        """Percentile intensity range, computed on a strided subsample for speed."""
        flat = self.array.reshape(-1)
        step = max(1, flat.size // max_samples)
        sample = flat[::step].astype(np.float32)
        sample = sample[np.isfinite(sample)]
        if sample.size == 0:
            return (0.0, 1.0)
        a, b = np.percentile(sample, [lo, hi])
        if b <= a:
            b = a + 1.0
        return (float(a), float(b))

    def describe(self) -> dict[str, Any]:
        g = self.geometry
        return {
            "name": self.name,
            "source": self.source,
            "modality": self.modality,
            "unit": self.unit,
            "shape_kji": list(g.shape),
            "size_ijk": list(g.size_ijk),
            "spacing": list(g.spacing),
            "origin": list(g.origin),
            "direction": [list(r) for r in g.direction],
            "orientation": g.nearest_orientation_code(),
            "dtype": str(self.array.dtype),
            "warnings": list(self.warnings),
        }
