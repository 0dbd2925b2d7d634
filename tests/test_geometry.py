"""World <-> voxel conversion with non-identity directions, against an independent 4x4-affine computation."""

from __future__ import annotations

import numpy as np
import pytest

from reviewer.geometry import Geometry, Volume, direction_letters


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


DIRECTIONS = {
    "identity": np.eye(3),
    "flipped": np.diag([-1.0, 1.0, -1.0]),
    "sagittal": np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]], dtype=float),  # i->P... a permuted acquisition
    "oblique": _rotation(0.2, -0.35, 0.5),
}


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_world_voxel_round_trip_and_affine(name):
    d = DIRECTIONS[name]
    g = Geometry((7, 9, 11), (0.7, 0.8, 2.5), (-120.0, 35.5, 410.0), d)
    rng = np.random.default_rng(1)
    ijk = rng.uniform(-2, 12, size=(50, 3))
    world = g.voxel_to_world(ijk)
    # independent: explicit 4x4 affine built element by element
    a = np.eye(4)
    for r in range(3):
        for c in range(3):
            a[r, c] = d[r, c] * g.spacing[c]
        a[r, 3] = g.origin[r]
    expected = (a @ np.c_[ijk, np.ones(len(ijk))].T).T[:, :3]
    np.testing.assert_allclose(world, expected, atol=1e-9)
    np.testing.assert_allclose(g.world_to_voxel(world), ijk, atol=1e-9)
    np.testing.assert_allclose(g.index_to_world_matrix(), a, atol=1e-12)


def test_ras_affine_flips_x_and_y():
    g = Geometry((2, 3, 4), (1.0, 2.0, 3.0), (10.0, 20.0, 30.0))
    ras = g.ras_affine()
    np.testing.assert_allclose(ras[:3, 3], [-10.0, -20.0, 30.0])
    np.testing.assert_allclose(np.diag(ras)[:3], [-1.0, -2.0, 3.0])


def test_array_index_and_bounds_with_flipped_direction():
    g = Geometry((5, 6, 7), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), np.diag([-1.0, -1.0, 1.0]))
    # voxel i=3, j=2, k=4 sits at x=-3, y=-2, z=8
    assert g.world_to_array_index((-3.0, -2.0, 8.0)) == (4, 2, 3)
    assert g.world_to_array_index((3.0, 2.0, 8.0)) is None
    lo, hi = g.world_bounds()
    np.testing.assert_allclose(lo, [-6, -5, 0])
    np.testing.assert_allclose(hi, [0, 0, 8])


def test_orientation_codes_and_labels():
    assert Geometry((2, 2, 2)).nearest_orientation_code() == "LPS"
    assert Geometry((2, 2, 2), direction=np.diag([-1.0, -1.0, 1.0])).nearest_orientation_code() == "RAS"
    assert direction_letters([1, 0, 0]) == ("R", "L")
    assert direction_letters([0, -1, 0]) == ("P", "A")
    neg, pos = direction_letters([0.8, 0.6, 0.0])
    assert pos == "LP" and neg == "RA"


def test_invalid_geometry_is_rejected():
    with pytest.raises(ValueError):
        Geometry((2, 2, 2), direction=np.ones((3, 3)))
    with pytest.raises(ValueError):
        Geometry((2, 2, 2), spacing=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError):
        Volume(np.zeros((2, 3, 4)), Geometry((2, 3, 5)))


def test_volume_value_at_world_uses_geometry():
    arr = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    v = Volume.from_array(arr, spacing=(0.5, 0.5, 2.0), origin=(10, 10, 10), direction=np.diag([1.0, -1.0, 1.0]))
    # voxel (i=3, j=1, k=1) -> x=11.5, y=9.5, z=12
    assert v.value_at_world((11.5, 9.5, 12.0)) == arr[1, 1, 3]
