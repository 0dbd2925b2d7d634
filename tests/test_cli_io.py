"""`reviewer info` and `reviewer convert` through reviewer.cli.main."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from reviewer.cli import main
from reviewer.io.loader import load_volume
from reviewer.io.synthetic import write_series


@pytest.fixture()
def series(tmp_path):
    write_series(tmp_path / "dcm", [(1.0, 2.0, 3.0 + 2 * k) for k in range(4)], iop=(0, 1, 0, 0, 0, -1),
                 series_uid="1.2.3.9")
    return tmp_path / "dcm"


def test_info_table_and_json(series, capsys):
    assert main(["info", str(series)]) == 0
    assert "1.2.3.9" in capsys.readouterr().out
    assert main(["info", str(series), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["series"][0]["dims"] == [5, 6, 4]


@pytest.mark.parametrize("suffix", [".nii.gz", ".mhd", ".nrrd"])
def test_convert_keeps_geometry(series, tmp_path, suffix, capsys):
    out = tmp_path / f"out{suffix}"
    assert main(["convert", str(series), str(out), "--series", "1.2.3.9"]) == 0
    vol = load_volume(series)
    img = sitk.ReadImage(str(out))
    assert np.array_equal(sitk.GetArrayFromImage(img), vol.array)
    assert np.allclose(img.GetOrigin(), vol.origin) and np.allclose(img.GetSpacing(), vol.spacing)
    assert np.allclose(np.reshape(img.GetDirection(), (3, 3)), vol.direction)
    assert np.allclose(img.TransformIndexToPhysicalPoint((4, 5, 3)), vol.voxel_to_world((4, 5, 3)))


def test_bad_path_fails_with_message(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "nope"), str(tmp_path / "o.nii.gz")]) != 0
    assert "nope" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "nope")]) != 0


def test_info_geometry_equals_loaded_geometry(tmp_path, capsys):
    """The geometry `reviewer info --json` reports from headers alone is the geometry the loader builds."""
    c, s = np.cos(0.3), np.sin(0.3)
    row, col = np.array([c, s, 0.0]), np.array([0.0, 0.0, -1.0])  # oblique coronal-ish
    normal = np.cross(row, col)
    positions = [list(np.array([10.0, -20.0, 30.0]) + k * 2.5 * normal) for k in (3, 0, 2, 1)]  # shuffled
    write_series(tmp_path / "obl", positions, iop=tuple(row) + tuple(col))
    assert main(["info", str(tmp_path / "obl"), "--json"]) == 0
    g = json.loads(capsys.readouterr().out)["series"][0]["geometry"]
    vol = load_volume(tmp_path / "obl")
    np.testing.assert_allclose(g["spacing"], vol.spacing, atol=1e-5)
    np.testing.assert_allclose(g["origin"], vol.origin, atol=1e-5)
    np.testing.assert_allclose(g["direction"], vol.direction, atol=1e-5)
    assert g["orientation"] == vol.geometry.nearest_orientation_code()
