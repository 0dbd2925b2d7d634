"""NIfTI/MHD/NRRD round trips, fastMRI HDF5, catalog messages and series choice."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

from reviewer.errors import InputError
from reviewer.geometry import Volume
from reviewer.io.catalog import format_catalog, scan_paths
from reviewer.io.loader import load_volume
from reviewer.io.synthetic import write_series
from reviewer.io.writer import write_volume


def _oblique_flipped_volume():
    a = np.deg2rad(30)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    d = rot @ np.diag([1.0, -1.0, 1.0])  # det -1: a flipped axis
    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    return Volume.from_array(arr, spacing=(0.5, 0.75, 2.0), origin=(10.0, -20.0, 30.0), direction=d)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mhd", ".nrrd"])
def test_write_read_round_trip(tmp_path, suffix):
    vol = _oblique_flipped_volume()
    out = write_volume(vol, tmp_path / f"v{suffix}")
    back = load_volume(out)
    assert np.array_equal(back.array, vol.array)
    assert back.spacing == pytest.approx(vol.spacing)
    for corner in [(0, 0, 0), (5, 4, 3), (5, 0, 3)]:
        assert np.allclose(back.voxel_to_world(corner), vol.voxel_to_world(corner), atol=1e-4)
    img = sitk.ReadImage(str(out))  # an independent reader agrees on the world position of a corner voxel
    assert np.allclose(img.TransformIndexToPhysicalPoint((5, 4, 3)), vol.voxel_to_world((5, 4, 3)), atol=1e-4)
    cat = scan_paths([out])
    assert cat.series[0].dims == (6, 5, 4)


def _fastmri_file(path, with_esc=True, multicoil=False):
    rng = np.random.default_rng(0)
    shape = (3, 4, 40, 36) if multicoil else (3, 400, 360)
    ks = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    header = ("<ismrmrdHeader xmlns='http://www.ismrm.org/ISMRMRD'><encoding><reconSpace><matrixSize><x>320</x>"
              "<y>320</y><z>1</z></matrixSize><fieldOfView_mm><x>160</x><y>160</y><z>3</z></fieldOfView_mm>"
              "</reconSpace></encoding></ismrmrdHeader>")
    with h5py.File(path, "w") as f:
        f["kspace"] = ks
        if with_esc:
            f["reconstruction_esc"] = np.ones((3, 320, 320), np.float32) * 2
        if multicoil:
            f["reconstruction_rss"] = np.ones((3, 320, 320), np.float32)
        f["ismrmrd_header"] = header
        f.attrs["acquisition"] = "CORPD_FBK"
        f.attrs["max"] = 2.0
        f.attrs["norm"] = 10.0
        f.attrs["patient_id"] = "abc"
    return ks


def test_fastmri_reference_and_ifft(tmp_path):
    _fastmri_file(tmp_path / "a.h5")
    vol = load_volume(tmp_path / "a.h5")
    assert vol.shape == (3, 320, 320) and vol.modality == "MR"
    assert vol.spacing == pytest.approx((0.5, 0.5, 3.0))
    fm = vol.metadata["fastmri"]
    assert fm["kspace_shape"] == [3, 400, 360] and fm["acquisition"] == "CORPD_FBK" and fm["max"] == 2.0
    ks = _fastmri_file(tmp_path / "b.h5", with_esc=False)
    vol = load_volume(tmp_path / "b.h5")
    img = np.abs(np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(ks[1]), norm="ortho")))
    assert np.allclose(vol.array[1], img[40:360, 20:340], atol=1e-5)
    assert any("inverse FFT" in w for w in vol.warnings)
    _fastmri_file(tmp_path / "c.h5", with_esc=False, multicoil=True)
    vol = load_volume(tmp_path / "c.h5")
    assert any("multi-coil reconstruction from k-space is not supported" in w for w in vol.warnings)
    cat = scan_paths([tmp_path])
    assert {s.format for s in cat.series} == {"fastmri"}


def test_empty_folder_junk_and_non_image(tmp_path):
    (tmp_path / "empty").mkdir()
    cat = scan_paths([tmp_path / "empty"])
    assert cat.problems and "empty folder" in cat.problems[0]
    with pytest.raises(InputError, match="empty folder"):
        load_volume(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.bin").write_bytes(b"\x00" * 500)
    with pytest.raises(InputError, match="x.bin"):
        load_volume(tmp_path / "junk")
    rtplan = get_testdata_file("rtplan.dcm", download=False)
    with pytest.raises(InputError, match="not an image"):
        load_volume(rtplan)
    assert scan_paths([rtplan]).series[0].kind == "non-image"


def test_several_series_need_a_uid(tmp_path):
    write_series(tmp_path / "a", [(0, 0, k) for k in range(2)], series_uid="1.2.3.1")
    write_series(tmp_path / "b", [(0, 0, k) for k in range(3)], series_uid="1.2.3.2")
    with pytest.raises(InputError, match="1.2.3.1") as err:
        load_volume(tmp_path)
    assert "1.2.3.2" in str(err.value)
    assert load_volume(tmp_path, series_uid="1.2.3.2").shape[0] == 3
    text = format_catalog(scan_paths([tmp_path]))
    assert "Test^Synth" in text and "5x6x3" in text and "2024-01-02" in text


def test_modality_from_sidecar_metaimage_tag_or_hu_intensities(tmp_path):
    import json

    import SimpleITK as sitk

    from reviewer.io.catalog import scan_paths
    from reviewer.io.loader import load_volume

    ct = np.full((4, 8, 8), -1000, np.int16)
    ct[:, 2:6, 2:6] = 400
    img = sitk.GetImageFromArray(ct)
    sitk.WriteImage(img, str(tmp_path / "luna.mhd"))
    vol = load_volume(tmp_path / "luna.mhd")
    assert (vol.modality, vol.unit) == ("CT", "HU") and "modality_inferred" in vol.metadata

    mr = sitk.GetImageFromArray(np.random.default_rng(0).random((4, 8, 8)).astype(np.float32))
    sitk.WriteImage(mr, str(tmp_path / "brain.nii.gz"))
    (tmp_path / "brain.json").write_text(json.dumps({"Modality": "MR", "SeriesDescription": "T1 MPRAGE",
                                                     "PatientName": "Doe^Jane"}))
    vol = load_volume(tmp_path / "brain.nii.gz")
    assert vol.modality == "MR" and vol.unit == "" and vol.name == "T1 MPRAGE"
    info = next(s for s in scan_paths([tmp_path]).series if s.uid.endswith("brain.nii.gz"))
    assert (info.modality, info.series_description, info.patient_name) == ("MR", "T1 MPRAGE", "Doe^Jane")

    (tmp_path / "meta.mhd").write_text((tmp_path / "luna.mhd").read_text().replace(
        "ElementSpacing", "Modality = MET_MOD_MR\nElementSpacing").replace("luna.raw", "luna.raw"))
    assert load_volume(tmp_path / "meta.mhd").modality == "MR"
