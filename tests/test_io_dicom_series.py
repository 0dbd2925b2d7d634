"""Classic single-frame DICOM series: sorting, geometry, warnings, rescale, photometric, fast path."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from reviewer.io.catalog import scan_paths
from reviewer.io.loader import load_volume
from reviewer.io.synthetic import write_series


def _oblique_iop():
    a = np.deg2rad(25)
    row = np.array([np.cos(a), np.sin(a), 0.0])
    col = np.array([0.0, np.cos(0.3), -np.sin(0.3)])
    col -= row * row.dot(col)
    col /= np.linalg.norm(col)
    return row, col


@pytest.mark.parametrize("orientation", ["axial", "oblique", "flipped"])
def test_sorting_and_corners_match_ipp(tmp_path, orientation):
    if orientation == "axial":
        row, col = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    elif orientation == "oblique":
        row, col = _oblique_iop()
    else:  # rows run right-to-left, columns foot-to-head: a coronal-ish flipped stack
        row, col = np.array([-1.0, 0, 0]), np.array([0, 0, -1.0])
    normal = np.cross(row, col)
    origin = np.array([-50.0, 20.0, 100.0])
    step = 2.5
    positions = [origin + normal * step * k for k in range(7)]
    rng = np.random.default_rng(1)
    perm = rng.permutation(7)  # file names and InstanceNumbers shuffled relative to the true order
    names = [f"z{p:02d}.dcm" for p in rng.permutation(7)]
    inst = list(rng.permutation(7) + 1)
    write_series(tmp_path, [positions[p] for p in perm], iop=(*row, *col), names=names, instance_numbers=inst)
    vol = load_volume(tmp_path)
    assert vol.shape == (7, 6, 5)
    assert vol.spacing == pytest.approx((0.9, 0.7, step))
    assert not vol.warnings
    # voxel (0,0,k) is the IPP of the k-th slice along the normal; far corner too
    for k in range(7):
        assert np.allclose(vol.voxel_to_world((0, 0, k)), positions[k], atol=1e-6)
    far = positions[6] + row * 0.9 * 4 + col * 0.7 * 5
    assert np.allclose(vol.voxel_to_world((4, 5, 6)), far, atol=1e-6)
    # pixel content follows: value = 100 * written index + 10 * row + col, minus 1024
    for k in range(7):
        written = int(np.nonzero(perm == k)[0][0])
        assert vol.array[k, 2, 3] == written * 100 + 23 - 1024
    assert vol.array.dtype == np.int16 and vol.unit == "HU"
    assert vol.metadata["ImagePositionPatient"][0] == pytest.approx(list(positions[0]))
    assert len(vol.metadata["SOPInstanceUIDs"]) == 7


def test_uneven_spacing_and_gap_are_reported(tmp_path):
    z = [0.0, 1.0, 2.0, 3.0, 6.0, 7.0, 8.05]
    write_series(tmp_path, [(0, 0, v) for v in z])
    vol = load_volume(tmp_path)
    assert vol.shape[0] == 7
    text = " ".join(vol.warnings)
    assert "uneven slice spacing" in text and "gap" in text and "3 mm after slice 3" in text
    assert "max 3 mm" in text


def test_duplicates_reported(tmp_path):
    write_series(tmp_path, [(0, 0, 0), (0, 0, 1), (0, 0, 1), (0, 0, 2)])
    vol = load_volume(tmp_path)
    assert vol.shape[0] == 3
    assert any("duplicate" in w for w in vol.warnings)


def test_missing_geometry_falls_back_to_instance_number(tmp_path):
    write_series(tmp_path, [(0, 0, k) for k in range(4)], geometry=False, instance_numbers=[3, 1, 4, 2])
    vol = load_volume(tmp_path)
    assert any("InstanceNumber" in w and "NOT reliable" in w for w in vol.warnings)
    # InstanceNumber 1 was written second (index 1)
    assert vol.array[0, 0, 0] == 100 - 1024


def test_monochrome1_inverted_and_float_rescale(tmp_path):
    write_series(tmp_path / "m1", [(0, 0, k) for k in range(3)], photometric="MONOCHROME1", intercept=0)
    vol = load_volume(tmp_path / "m1")
    assert vol.array[1, 2, 3] == 4095 - (100 + 23)
    assert vol.metadata.get("inverted_from_monochrome1")
    write_series(tmp_path / "f", [(0, 0, k) for k in range(3)], slope=0.5, intercept=-10.25)
    vol = load_volume(tmp_path / "f")
    assert vol.array.dtype == np.float32
    assert vol.array[2, 1, 1] == pytest.approx((200 + 11) * 0.5 - 10.25)
    assert vol.default_window == (400.0, 40.0)


def test_int16_out_of_range_becomes_float(tmp_path):
    # stored up to 154 plus intercept 32700 exceeds int16
    write_series(tmp_path, [(0, 0, k) for k in range(2)], intercept=32700, bits_stored=16)
    vol = load_volume(tmp_path)
    assert vol.array.dtype == np.float32
    assert vol.array[1, 0, 0] == 32800


def test_fast_path_equals_pydicom(tmp_path):
    files, _ = write_series(tmp_path, [(0, 0, -k) for k in range(5)], pixel_rep=1, bits_stored=16, rows=16, cols=12)
    vol = load_volume(tmp_path)
    ref = np.stack([pydicom.dcmread(f).pixel_array.astype(np.int32) - 1024 for f in files])
    assert np.array_equal(vol.array, ref[::-1])  # z decreasing in file order: sorted ascending along +z


def test_catalog_splits_by_orientation_and_acquisition(tmp_path):
    uid = "1.2.826.0.1.3680043.8.498.1"
    write_series(tmp_path / "a", [(0, 0, k) for k in range(3)], series_uid=uid, extra={"AcquisitionNumber": 1})
    write_series(tmp_path / "b", [(0, 0, k) for k in range(3)], series_uid=uid, extra={"AcquisitionNumber": 2})
    write_series(tmp_path / "c", [(0, k, 0) for k in range(3)], iop=(1, 0, 0, 0, 0, -1), series_uid=uid)
    cat = scan_paths([tmp_path])
    assert len(cat.series) == 3
    assert {s.n_images for s in cat.series} == {3}
    assert all(s.uid.startswith(uid + "#") for s in cat.series)
    assert any("acq 2" in s.series_description for s in cat.series)
