"""Every transfer syntax decodes (pydicom's bundled test files), compared with uncompressed references."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

from reviewer.io.loader import load_volume


def _local(name):
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} not installed")
    return path


def _mr_small_reference():
    ds = pydicom.dcmread(_local("MR_small.dcm"))
    return ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))


@pytest.mark.parametrize("name,syntax", [
    ("MR_small_RLE.dcm", pydicom.uid.RLELossless),
    ("MR_small_jpeg_ls_lossless.dcm", pydicom.uid.JPEGLSLossless),
    ("MR_small_bigendian.dcm", pydicom.uid.ExplicitVRBigEndian),
    ("MR_small_implicit.dcm", pydicom.uid.ImplicitVRLittleEndian),
    ("MR_small_jp2klossless.dcm", pydicom.uid.JPEG2000Lossless),
    ("MR_small.dcm", pydicom.uid.ExplicitVRLittleEndian),
])
def test_mr_small_variants_match_uncompressed(name, syntax):
    path = _local(name)
    assert pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID == syntax
    vol = load_volume(path)
    assert vol.shape == (1, 64, 64)
    assert np.array_equal(vol.array[0].astype(np.float64), _mr_small_reference())


@pytest.mark.parametrize("name,syntax", [
    ("image_dfl.dcm", pydicom.uid.DeflatedExplicitVRLittleEndian),
    ("JPEG2000.dcm", pydicom.uid.JPEG2000),
    ("SC_rgb_jpeg_dcmtk.dcm", pydicom.uid.JPEGBaseline8Bit),
    ("JPGExtended.dcm", pydicom.uid.JPEGExtended12Bit),
])
def test_other_syntaxes_decode_like_pydicom(name, syntax):
    path = _local(name)
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == syntax
    vol = load_volume(path)
    ref = ds.pixel_array.astype(np.float64)
    if ref.ndim == 3 and ds.SamplesPerPixel == 3:
        ref = ref[..., 0] * 0.299 + ref[..., 1] * 0.587 + ref[..., 2] * 0.114
        assert any("grey" in w for w in vol.warnings)
    ref = ref * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    assert vol.array.shape[1:] == ref.shape[-2:]
    assert np.allclose(vol.array[0], ref, atol=1e-3)


def test_jpeg_lossless_process14_sv1(tmp_path):
    """No bundled JPEG lossless SV1 file: GDCM (through SimpleITK) writes one, pylibjpeg must decode it."""
    ref = (np.arange(64 * 48, dtype=np.uint16).reshape(1, 48, 64) * 7) % 4000
    out = tmp_path / "jpeg_lossless.dcm"
    writer = sitk.ImageFileWriter()
    writer.SetFileName(str(out))
    writer.SetImageIO("GDCMImageIO")
    writer.SetUseCompression(True)
    writer.SetCompressor("JPEG")
    writer.Execute(sitk.GetImageFromArray(ref))
    assert pydicom.dcmread(out, stop_before_pixels=True).file_meta.TransferSyntaxUID == pydicom.uid.JPEGLosslessSV1
    vol = load_volume(out)
    assert np.array_equal(vol.array.astype(np.int64), ref.astype(np.int64))


def test_truncated_and_junk_files_named(tmp_path):
    src = _local("CT_small.dcm")
    data = open(src, "rb").read()
    (tmp_path / "trunc.dcm").write_bytes(data[:300])
    (tmp_path / "half.dcm").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.dcm").write_bytes(b"this is not dicom" * 20)
    shutil.copy(src, tmp_path / "good.dcm")
    from reviewer.io.catalog import scan_paths

    cat = scan_paths([tmp_path])
    assert len(cat.image_series()) == 1
    problems = "\n".join(cat.problems)
    for name in ("trunc.dcm", "half.dcm", "junk.dcm"):
        assert str(tmp_path / name) in problems, problems
    assert "not a DICOM file" in problems and "truncated" in problems
