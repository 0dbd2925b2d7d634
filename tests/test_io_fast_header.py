"""The fast header parser gives exactly the pydicom path's FileHeader, or declines and lets pydicom read the file."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from reviewer.io import dicom_headers, fast_header
from reviewer.io.bench_io import write_ct_series
from reviewer.io.catalog import scan_paths
from reviewer.io.synthetic import write_series

PYDICOM_TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def _outcome(path, fast: bool):
    old = dicom_headers.USE_FAST_PARSER
    dicom_headers.USE_FAST_PARSER = fast
    try:
        header, _ = dicom_headers.read_header(path)
        return dataclasses.asdict(header)
    except Exception as exc:  # noqa: BLE001 - both paths must fail alike (InputError, or pydicom's own error)
        return f"{type(exc).__name__}: {exc}"
    finally:
        dicom_headers.USE_FAST_PARSER = old


def _accepted(path) -> bool:
    return fast_header.parse(os.fspath(path), dicom_headers._FAST_WANTED) is not None


def _check_same(paths) -> int:
    """Assert both paths agree on every file; return how many the fast parser read itself."""
    accepted = 0
    for p in paths:
        p = os.fspath(p)
        assert _outcome(p, True) == _outcome(p, False), p
        accepted += _accepted(p)
    return accepted


def test_synthetic_series_equal_and_fast(tmp_path):
    files = []
    files += write_series(tmp_path / "a", [(0, 0, z) for z in range(3)])[0]
    files += write_series(tmp_path / "b", [(0, 0, z) for z in range(2)], photometric="MONOCHROME1", pixel_rep=1,
                          slope=0.5, intercept=3.25, iop=(0, 1, 0, 0, 0, -1))[0]
    files += write_series(tmp_path / "c", [(0, 0, z) for z in range(2)], geometry=False,
                          extra={"AcquisitionNumber": 2, "TemporalPositionIdentifier": 4, "EchoNumbers": 1,
                                 "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"], "ConvolutionKernel": ["B", "C"]})[0]
    files += write_ct_series(tmp_path / "ct", n_slices=3, size=16)
    assert _check_same(files) == len(files)
    h, ds = dicom_headers.read_header(files[0])
    assert ds is None and h.pixel_offset is not None and h.ipp == [0.0, 0.0, 0.0]


def test_real_ct_equal_and_fast(shared_data):
    files = sorted(p for p in (shared_data / "lung-pet-ct-dx").rglob("*") if p.is_file())
    dcm = [p for p in files if p.suffix == ".dcm"]
    assert dcm
    assert _check_same(dcm) == len(dcm)  # real CT (explicit VR LE): all parsed by the fast path
    enhanced = [p for p in (shared_data / "dicom-qa-enh").rglob("*") if p.is_file() and p.suffix.lower() in
                (".dcm", "")]
    _check_same(enhanced)


def test_pydicom_test_files_equal():
    files = sorted(p for p in PYDICOM_TEST_FILES.rglob("*") if p.is_file() and p.suffix.lower() in (".dcm", ""))
    if not files:
        pytest.skip("pydicom's test files are not installed")
    accepted = _check_same(files)
    assert accepted >= 5  # e.g. CT_small, MR_small, MR_small_implicit, rtplan ...
    for name in ("CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm"):
        assert _accepted(PYDICOM_TEST_FILES / name), name
    for name in ("MR_small_bigendian.dcm", "image_dfl.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm"):
        assert not _accepted(PYDICOM_TEST_FILES / name), name


def _dataset(**kw) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = pydicom.uid.CTImageStorage
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesInstanceUID = "1.2.3.4.5\x00"
    ds.PatientName = "Doe^Jane "
    ds.Modality = "CT"
    ds.ImagePositionPatient = ["1.5", " -2", "3e1"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.Rows, ds.Columns = 4, 3
    ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation = 16, 12, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.RescaleSlope, ds.RescaleIntercept = "1", "-1024"
    ds.WindowCenter, ds.WindowWidth = ["40", "50"], ["400", "500"]
    ds.ImageType = ["DERIVED", "SECONDARY"]
    for k, v in kw.items():
        setattr(ds, k, v)
    ds.PixelData = np.arange(12, dtype="<u2").tobytes()
    return ds


def _save(ds: Dataset, path: Path, syntax) -> Path:
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = syntax
    ds.save_as(path, enforce_file_format=True)
    return path


def _sequences(undefined: bool) -> Dataset:
    inner = Dataset()
    inner.CodeValue, inner.CodeMeaning = "X", "with \xfe\xff\xdd\xe0 delimiter-like bytes"
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2"
    item.ConceptNameCodeSequence = Sequence([inner])
    ds = _dataset()
    ds.ReferencedImageSequence = Sequence([item, Dataset()])
    ds.add_new(0x00091010, "LO", "PRIVATE")
    ds.add_new(0x00091011, "SQ", Sequence([inner]))
    big = Dataset()
    big.add_new(0x00091020, "OB", b"\x00" * 40000)  # pushes the rest beyond the first read chunk
    ds.add_new(0x00091012, "SQ", Sequence([big]))
    if undefined:
        for tag in ("ReferencedImageSequence", 0x00091011, 0x00091012):
            ds[tag].is_undefined_length = True
            for it in ds[tag].value:
                it.is_undefined_length_sequence_item = True
        item["ConceptNameCodeSequence"].is_undefined_length = True
        inner.is_undefined_length_sequence_item = True
    return ds


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_odd_but_valid_files(tmp_path, syntax):
    cases = {
        "plain": lambda: _dataset(),
        "seq_defined": lambda: _sequences(False),
        "seq_undefined": lambda: _sequences(True),
        "empty_values": lambda: _dataset(SeriesDescription="", SliceThickness=None, InstanceNumber=None, ImageType=""),
        "padded_multi": lambda: _dataset(ImageType=" ORIGINAL\\ PRIMARY ", ConvolutionKernel="B30f\\ sharp"),
        "latin1": lambda: _dataset(SpecificCharacterSet="ISO_IR 100", PatientName="Müller^Jürgen", StudyDescription="Thörax"),
        "utf8": lambda: _dataset(SpecificCharacterSet="ISO_IR 192", PatientName="Ærø^Æ", SeriesDescription="Ωmega"),
        "multi_name": lambda: _dataset(PatientName="A^B\\C^D"),
        "bad_numbers": lambda: _dataset(SliceThickness="12345.6", InstanceNumber="987654", SeriesNumber=" 7"),
        "multiframe": lambda: _dataset(NumberOfFrames="2"),
        "non_image": lambda: _dataset(SOPClassUID="1.2.840.10008.5.1.4.1.1.88.11", Rows=0),
    }
    paths = []
    for name, make in cases.items():
        try:
            paths.append(_save(make(), tmp_path / f"{name}.dcm", syntax))
        except Exception:  # pydicom refuses to write some odd values in some encodings
            continue
    assert len(paths) >= 10
    bad = tmp_path / "bad_numbers.dcm"  # values pydicom will not write: patched into the file
    bad.write_bytes(bad.read_bytes().replace(b"12345.6 ", b"abc     ").replace(b"987654", b"1.5   "))
    bad2 = tmp_path / "bad_numbers2.dcm"
    bad2.write_bytes(bad.read_bytes().replace(b"abc     ", b"1e2\\x   "))
    paths.append(bad2)
    _check_same(paths)
    for name in ("plain", "seq_defined", "seq_undefined"):
        assert _accepted(tmp_path / f"{name}.dcm"), name


def test_damaged_files_fall_back(tmp_path):
    src = _save(_sequences(True), tmp_path / "src.dcm", ExplicitVRLittleEndian)
    data = src.read_bytes()
    paths = []
    for cut in (100, 140, 300, 1000, len(data) // 2, len(data) - 10):
        p = tmp_path / f"cut{cut}.dcm"
        p.write_bytes(data[:cut])
        paths.append(p)
    (tmp_path / "junk.dcm").write_bytes(b"junk" * 100)
    (tmp_path / "nopreamble.dcm").write_bytes(data[128:])
    paths += [tmp_path / "junk.dcm", tmp_path / "nopreamble.dcm"]
    flipped = bytearray(data)
    flipped[200:260] = b"\xff" * 60
    (tmp_path / "flipped.dcm").write_bytes(bytes(flipped))
    paths.append(tmp_path / "flipped.dcm")
    _check_same(paths)
    for p in paths:
        assert not _accepted(p) or _outcome(p, False) == _outcome(p, True)


def test_scan_catalog_same_with_and_without_fast_parser(tmp_path):
    write_series(tmp_path / "s", [(0, 0, z) for z in range(4)])
    (tmp_path / "s2").mkdir()
    _save(_sequences(True), tmp_path / "s2" / "x.dcm", ImplicitVRLittleEndian)
    try:
        a = scan_paths([tmp_path]).to_json()
        dicom_headers.USE_FAST_PARSER = False
        b = scan_paths([tmp_path]).to_json()
    finally:
        dicom_headers.USE_FAST_PARSER = True
    assert a == b
