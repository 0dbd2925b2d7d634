"""End-to-end exports: DICOM SR / SEG / derived series validated by dciodvfy and read back by highdicom,
NIfTI by SimpleITK, and no identifying value of the source anywhere in a de-identified export."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from reviewer.export.case import CaseExport, DerivedImage
from reviewer.export.dicom_seg import MaskLayer
from reviewer.export.exporter import export_case, sha256_file
from reviewer.findings import Finding
from reviewer.geometry import Volume
from reviewer.io.loader import load_volume
from tests.export_checks import (
    DATE_FORMS,
    PHI,
    PRIVATE_PHI,
    dcentvfy,
    dciodvfy,
    find_values,
    identifying_values,
    write_phi_series,
)

HAVE_DCIODVFY = shutil.which("dciodvfy") is not None


def _findings(vol: Volume) -> list[Finding]:
    g = vol.geometry
    c1 = tuple(g.voxel_to_world((8.0, 10.0, 2.0)))
    c2 = tuple(g.voxel_to_world((12.5, 6.0, 4.0)))
    return [
        Finding(c1, kind="nodule", diameter_mm=6.5, score=0.83, score_kind="probability", uncertainty=0.12,
                observer="demo-fpr", observer_type="device", tracking_id="cand 1"),
        Finding(c2, kind="synthetic-nodule", diameter_mm=4.0, score=0.41, score_kind="probability",
                observer="demo-fpr", observer_type="device", tracking_id="cand 2"),
        Finding(c1, kind="nodule", diameter_mm=7.0, score=4, score_kind="rating", observer="reader-07",
                observer_type="person", tracking_id="mark 1", label="seen by Quixotez's doctor"),
    ]


def _case(vol: Volume) -> CaseExport:
    labels = np.zeros(vol.shape, np.uint8)
    labels[1:4, 8:13, 6:11] = 1
    labels[4, 3:6, 12:16] = 2
    heat = np.zeros(vol.shape, np.float32)
    heat[2:5, 4:20, 2:18] = np.linspace(0.0, 1.0, 16, dtype=np.float32)[None, None, :]
    derived = vol.array.astype(np.int16).copy()
    derived[1:4, 8:13, 6:11] = 60  # an inserted "nodule"
    dvol = Volume(derived, vol.geometry, modality=vol.modality, unit=vol.unit)
    return CaseExport(
        volume=vol, findings=_findings(vol), name="Quixotez case",
        masks=[MaskLayer("nodule masks", labels, labels={1: "nodule 1", 2: "nodule 2"}, observer="demo-fpr"),
               MaskLayer("nodule probability", heat, kind="heatmap", observer="demo-fpr", value_range=(0.0, 1.0))],
        derived=[DerivedImage(dvol, "synthetic 6 mm nodule inserted at cand 1", kind="synthetic-nodule")])


@pytest.fixture(scope="module")
def phi_source(tmp_path_factory) -> tuple[Path, list[pydicom.Dataset]]:
    folder = tmp_path_factory.mktemp("src") / "Quixotez_Dulcinea_PID-8675309-QX_19990817"
    files = write_phi_series(folder)
    return folder, [pydicom.dcmread(f) for f in files]


@pytest.fixture(scope="module")
def shifted_export(phi_source, tmp_path_factory):
    folder, _ = phi_source
    vol = load_volume(folder)
    case = _case(vol)
    out = tmp_path_factory.mktemp("out-shifted")
    result = export_case(case, out, shift_days=-45)
    return case, out, result


def _dicoms(out: Path, sub: str = "") -> list[Path]:
    return sorted((out / "dicom" / sub).rglob("*.dcm"))


def test_export_writes_every_format_with_a_manifest(shifted_export):
    case, out, result = shifted_export
    manifest = json.loads((out / "manifest.json").read_text())
    kinds = {f["kind"] for f in manifest["files"]}
    assert {"dicom-image", "dicom-derived-image", "dicom-sr", "dicom-seg", "nifti", "json", "png"} <= kinds
    assert len(_dicoms(out, "sr")) == 2  # one per observer: the model and the reader
    assert len(_dicoms(out, "seg")) == 2
    for f in manifest["files"]:  # every file listed with its true SHA-256
        assert sha256_file(out / f["path"]) == f["sha256"]
    listed = {f["path"] for f in manifest["files"]}
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert written == listed
    assert manifest["identity"]["kept"] is False
    codes = manifest["deidentification"]["options"]
    assert any("113100" in c for c in codes) and any("113107" in c for c in codes)
    assert any("BurnedInAnnotation=YES" in w for w in manifest["warnings"])
    assert any("BurnedInAnnotation=YES" in w for w in result.warnings)
    scan = manifest["phi_scan"]
    assert scan["performed"] and scan["found"] == 0 and scan["identifying_values"] > 20 and scan["source_uids"] > 6


@pytest.mark.skipif(not HAVE_DCIODVFY, reason="dciodvfy (dicom3tools) is not installed")
def test_every_dicom_object_passes_dciodvfy(shifted_export, phi_source):
    _, out, _ = shifted_export
    folder, _ = phi_source
    assert dciodvfy(sorted(folder.glob("*.dcm"))[0])[0] == []  # the source is valid to begin with
    files = _dicoms(out, "sr") + _dicoms(out, "seg") + _dicoms(out, "source") + _dicoms(out, "derived-1")
    assert len(files) >= 16
    for f in files:
        errors, _ = dciodvfy(f)
        assert errors == [], f"{f.name}: {errors}"
    if shutil.which("dcentvfy"):  # patient / study attributes agree across the source, SR, SEG and derived
        errors, warnings = dcentvfy(files)
        assert errors == [] and not [w for w in warnings if "AccessionNumber" not in w], warnings


def test_sr_reads_back_to_the_same_findings(shifted_export):
    case, out, _ = shifted_export
    from reviewer.export.dicom_sr import sr_to_findings

    source_uids = {pydicom.dcmread(p).SOPInstanceUID for p in _dicoms(out, "source")}
    source = pydicom.dcmread(_dicoms(out, "source")[0])
    got = []
    for p in _dicoms(out, "sr"):
        sr = hd.sr.srread(p)
        assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
        assert sr.StudyInstanceUID == source.StudyInstanceUID
        evidence = {i.ReferencedSOPInstanceUID for s in sr.CurrentRequestedProcedureEvidenceSequence
                    for r in s.ReferencedSeriesSequence for i in r.ReferencedSOPSequence}
        assert evidence == source_uids  # the references resolve to the exported source images
        groups = sr.content.get_planar_roi_measurement_groups()
        for g in groups:
            assert g.roi.frame_of_reference_uid == source.FrameOfReferenceUID
            assert g.roi.graphic_type == hd.sr.GraphicTypeValues3D.POINT
        got += sr_to_findings(sr)
    want = {f.tracking_uid: f for f in case.findings}
    assert len(got) == len(want)
    for f in got:
        w = want[f.tracking_uid]
        np.testing.assert_allclose(f.center_lps, w.center_lps, atol=1e-4)
        assert (f.kind, f.diameter_mm, f.score, f.score_kind) == (w.kind, w.diameter_mm, float(w.score), w.score_kind)
        assert (f.observer, f.observer_type, f.tracking_id) == (w.observer, w.observer_type, w.tracking_id)
        assert f.uncertainty == w.uncertainty
    nodule_codes = [g.finding_type for p in _dicoms(out, "sr") for g in
                    hd.sr.srread(p).content.get_planar_roi_measurement_groups()]
    assert hd.sr.CodedConcept("27925004", "SCT", "Nodule") in nodule_codes


def test_seg_reads_back_to_the_masks(shifted_export):
    case, out, _ = shifted_export
    source = sorted((pydicom.dcmread(p) for p in _dicoms(out, "source")), key=lambda d: int(d.InstanceNumber))
    src_uids = [d.SOPInstanceUID for d in source]
    binary, fractional = [hd.seg.segread(p) for p in _dicoms(out, "seg")]
    assert binary.SegmentationType == "BINARY" and fractional.SegmentationType == "FRACTIONAL"
    assert binary.FrameOfReferenceUID == source[0].FrameOfReferenceUID
    labels, heat = case.masks[0].array, case.masks[1].array
    for number, value in ((1, 1), (2, 2)):
        vol = binary.get_pixels_by_source_instance(src_uids, segment_numbers=[number])
        np.testing.assert_array_equal(vol[..., 0], (labels == value).astype(vol.dtype))
    frac = fractional.get_pixels_by_source_instance(src_uids, segment_numbers=[1], rescale_fractional=True)
    np.testing.assert_allclose(frac[..., 0], heat, atol=1.0 / 255 + 1e-6)


def test_derived_series_is_marked_derived_and_references_its_source(shifted_export):
    case, out, _ = shifted_export
    source = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in _dicoms(out, "source")}
    derived = [pydicom.dcmread(p) for p in _dicoms(out, "derived-1")]
    first = next(iter(source.values()))
    assert len(derived) == case.volume.shape[0]
    for ds in derived:
        assert list(ds.ImageType[:2]) == ["DERIVED", "SECONDARY"]
        assert "synthetic" in ds.SeriesDescription and "not an original" in ds.DerivationDescription
        assert ds.SeriesInstanceUID != first.SeriesInstanceUID and ds.StudyInstanceUID == first.StudyInstanceUID
        ref = ds.SourceImageSequence[0].ReferencedSOPInstanceUID
        assert ref in source
        np.testing.assert_allclose([float(v) for v in source[ref].ImagePositionPatient],
                                   [float(v) for v in ds.ImagePositionPatient], atol=1e-3)
    back = load_volume(out / "dicom" / "derived-1")
    np.testing.assert_array_equal(back.array, case.derived[0].volume.array)
    np.testing.assert_allclose(back.geometry.origin, case.volume.geometry.origin, atol=1e-4)


def test_nifti_keeps_the_source_geometry_and_findings_in_world_mm(shifted_export):
    case, out, _ = shifted_export
    img = sitk.ReadImage(str(out / "nifti" / "image.nii.gz"))
    g = case.volume.geometry
    np.testing.assert_allclose(img.GetOrigin(), g.origin, atol=1e-4)
    np.testing.assert_allclose(img.GetSpacing(), g.spacing, atol=1e-6)
    np.testing.assert_allclose(np.reshape(img.GetDirection(), (3, 3)), g.direction_matrix, atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), case.volume.array)
    side = json.loads((out / "nifti" / "image.json").read_text())
    items = side["Findings"]["items"]
    for f, d in zip(case.findings, items):
        np.testing.assert_allclose(d["center_lps"], f.center_lps)
        # the sidecar's voxel index is where SimpleITK puts the same world point
        np.testing.assert_allclose(img.TransformContinuousIndexToPhysicalPoint(d["voxel_ijk"]), f.center_lps,
                                   atol=1e-3)
    assert side["ModelCards"][0]["name"] == "demo-fpr"
    mask = sitk.ReadImage(str(out / "nifti" / "mask-1.nii.gz"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(mask), case.masks[0].array)


def test_dates_are_shifted_keeping_intervals(shifted_export, phi_source):
    _, out, _ = shifted_export
    ds = pydicom.dcmread(_dicoms(out, "source")[0])
    study = dt.datetime.strptime(ds.StudyDate, "%Y%m%d").date()
    series = dt.datetime.strptime(ds.SeriesDate, "%Y%m%d").date()
    assert study == dt.date(1999, 8, 17) - dt.timedelta(days=45)
    assert (series - study).days == 3
    assert ds.PatientBirthDate == ""
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    codes = [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]
    assert "113100" in codes and "113107" in codes and ds.PatientIdentityRemoved == "YES"


def test_no_identifying_value_of_the_source_in_the_export(shifted_export, phi_source):
    _, out, _ = shifted_export
    folder, datasets = phi_source
    # every identifying value except the study time, which the modified-dates option keeps
    values = [v for k, v in PHI.items() if k != "StudyTime"] + [PRIVATE_PHI, folder.name, str(folder)]
    values += [part for v in (PHI["PatientName"], PHI["ReferringPhysicianName"], PHI["OperatorsName"])
               for part in v.split("^")]
    values += list(DATE_FORMS) + sorted(identifying_values(datasets))
    hits = find_values(out, values)
    assert hits == [], hits
    # the same search finds them when identity is kept: the search can fail
    kept = export_case(CaseExport(load_volume(folder), findings=_findings(load_volume(folder))), out.parent / "kept",
                       formats=["dicom", "nifti"], keep_phi=True)
    found = {v for _, v in find_values(kept.out_dir, values)}
    assert {PHI["PatientName"], PHI["PatientID"], PHI["AccessionNumber"], PHI["InstitutionName"],
            PHI["DeviceSerialNumber"], PHI["StudyDate"]} <= found
    manifest = json.loads(kept.manifest.read_text())
    assert manifest["identity"]["kept"] is True and manifest["deidentification"]["enabled"] is False


def test_without_date_shift_dates_and_times_are_removed(phi_source, tmp_path):
    folder, datasets = phi_source
    vol = load_volume(folder)
    result = export_case(CaseExport(vol, findings=_findings(vol)[:1]), tmp_path / "o", formats=["dicom", "nifti"])
    ds = pydicom.dcmread(_dicoms(result.out_dir, "source")[0])
    assert ds.StudyDate == "" and ds.StudyTime == "" and "SeriesDate" not in ds
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert find_values(result.out_dir, list(DATE_FORMS) + ["081522", PHI["PatientID"]]) == []


def test_uids_are_replaced_consistently(phi_source, tmp_path):
    folder, datasets = phi_source
    vol = load_volume(folder)
    a = export_case(CaseExport(vol), tmp_path / "a", formats=["dicom"])
    src = [pydicom.dcmread(p) for p in _dicoms(a.out_dir, "source")]
    assert len({d.StudyInstanceUID for d in src}) == 1 and len({d.SeriesInstanceUID for d in src}) == 1
    own = {d.SOPInstanceUID for d in src}
    for d in src:  # a reference between source images still resolves after the replacement
        assert d.ReferencedImageSequence[0].ReferencedSOPInstanceUID in own
        assert d.file_meta.MediaStorageSOPInstanceUID == d.SOPInstanceUID
    b = export_case(CaseExport(vol), tmp_path / "b", formats=["dicom"])
    other = {pydicom.dcmread(p).SOPInstanceUID for p in _dicoms(b.out_dir, "source")}
    assert not own & other  # a new export draws a new key


def test_nifti_source_is_built_into_a_dicom_series(tmp_path):
    from reviewer.io.writer import write_volume

    theta = np.deg2rad(20)
    direction = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    rng = np.random.default_rng(0)
    arr = rng.integers(-1000, 400, size=(5, 16, 18)).astype(np.int16)
    vol = Volume.from_array(arr, spacing=(0.7, 0.8, 2.0), origin=(10.0, -20.0, 30.0), direction=direction,
                            modality="CT", unit="HU")
    src = tmp_path / "Quixotez_PID-8675309-QX.nii.gz"
    write_volume(vol, src)
    loaded = load_volume(src)
    mask = np.zeros(loaded.shape, np.uint8)
    mask[1:3, 4:9, 5:10] = 1
    case = CaseExport(loaded, findings=_findings(loaded)[:1], masks=[MaskLayer("m", mask)])
    result = export_case(case, tmp_path / "out")
    images = [pydicom.dcmread(p) for p in _dicoms(result.out_dir, "source")]
    assert len({d.StudyInstanceUID for d in images}) == 1 and len({d.FrameOfReferenceUID for d in images}) == 1
    (seg,) = [hd.seg.segread(p) for p in _dicoms(result.out_dir, "seg")]
    order = sorted(images, key=lambda d: int(d.InstanceNumber))
    got = seg.get_pixels_by_source_instance([d.SOPInstanceUID for d in order], segment_numbers=[1])
    np.testing.assert_array_equal(got[..., 0], mask)
    assert "built by reviewer" in images[0].SeriesDescription and images[0].Modality == "CT"
    assert list(images[0].ImageType[:2]) == ["DERIVED", "PRIMARY"]
    back = load_volume(result.out_dir / "dicom" / "source")
    np.testing.assert_allclose(back.geometry.origin, loaded.geometry.origin, atol=1e-4)
    np.testing.assert_allclose(back.geometry.direction_matrix, loaded.geometry.direction_matrix, atol=1e-5)
    np.testing.assert_allclose(back.geometry.spacing, loaded.geometry.spacing, atol=1e-5)
    np.testing.assert_array_equal(back.array, loaded.array)
    assert find_values(result.out_dir, ["Quixotez", "PID-8675309-QX", str(src)]) == []
    if HAVE_DCIODVFY:
        for p in _dicoms(result.out_dir, "source")[:1] + _dicoms(result.out_dir, "sr") + _dicoms(result.out_dir, "seg"):
            assert dciodvfy(p)[0] == [], p


def test_mr_series_built_from_float_volume_passes_dciodvfy(tmp_path):
    rng = np.random.default_rng(1)
    vol = Volume.from_array(rng.random((3, 12, 10)).astype(np.float32) * 300, spacing=(0.5, 0.5, 3.0),
                            modality="MR")
    result = export_case(CaseExport(vol, findings=[Finding(tuple(vol.geometry.center_world()), kind="fnaf",
                                                           observer="reader-1", observer_type="person")]),
                         tmp_path / "o", formats=["dicom", "png"])
    first = pydicom.dcmread(_dicoms(result.out_dir, "source")[0])
    assert first.SOPClassUID == pydicom.uid.MRImageStorage
    if HAVE_DCIODVFY:
        for p in [_dicoms(result.out_dir, "source")[0]] + _dicoms(result.out_dir, "sr"):
            assert dciodvfy(p)[0] == [], p
    from reviewer.export.dicom_sr import sr_to_findings

    (f,) = sr_to_findings(hd.sr.srread(_dicoms(result.out_dir, "sr")[0]))
    assert f.kind == "fnaf" and f.observer == "reader-1" and f.observer_type == "person"
