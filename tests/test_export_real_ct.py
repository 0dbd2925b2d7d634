"""Export of the real chest CT (Lung-PET-CT-Dx, TCIA) with its radiologists' tumour boxes, through the CLI."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from reviewer.cli import main
from reviewer.findings import Finding, findings_to_json
from reviewer.geometry import Volume
from reviewer.io.loader import load_volume
from reviewer.io.writer import write_volume
from tests.export_checks import dcentvfy, dciodvfy, find_values

KIND = {"A": "adenocarcinoma", "B": "small-cell carcinoma", "E": "large-cell carcinoma", "G": "squamous carcinoma"}


def _series(shared_data: Path) -> Path:
    found = sorted((shared_data / "lung-pet-ct-dx").glob("*/*/*B70f*"))
    if not found:
        pytest.skip("the Lung-PET-CT-Dx B70f series is absent")
    return found[0]


@pytest.fixture(scope="module")
def real_export(shared_data, tmp_path_factory):
    series = _series(shared_data)
    vol = load_volume(series)
    sops = vol.metadata["SOPInstanceUIDs"]
    boxes = []
    for k, uid in enumerate(sops):
        xml = shared_data / "lung-pet-ct-dx" / "annotations" / "A0002" / f"{uid}.xml"
        if xml.is_file():
            for obj in ET.parse(xml).getroot().iter("object"):
                b = obj.find("bndbox")
                x0, y0, x1, y1 = (int(b.find(t).text) for t in ("xmin", "ymin", "xmax", "ymax"))
                boxes.append((k, x0, y0, x1, y1, obj.find("name").text))
    if not boxes:
        pytest.skip("no tumour box annotates the B70f series")
    work = tmp_path_factory.mktemp("real")
    mask = np.zeros(vol.shape, np.uint8)
    findings = []
    for n, (k, x0, y0, x1, y1, name) in enumerate(boxes, 1):
        mask[k, y0:y1 + 1, x0:x1 + 1] = 1
        centre = vol.geometry.voxel_to_world(((x0 + x1) / 2, (y0 + y1) / 2, k))
        findings.append(Finding(tuple(centre), kind="lesion", diameter_mm=(x1 - x0) * vol.spacing[0],
                                observer="radiologist", observer_type="person", tracking_id=f"tumour {n}",
                                label=KIND.get(name, name)))
    write_volume(Volume(mask, vol.geometry), work / "boxes.nii.gz", sidecar=False)
    (work / "findings.json").write_text(json.dumps(findings_to_json(findings)))
    bundle = {"source": str(series), "name": "Lung_Dx-A0002", "findings": "findings.json",
              "masks": [{"path": "boxes.nii.gz", "name": "tumour boxes", "finding_kind": "lesion",
                         "observer": "radiologist", "observer_type": "person"}]}
    (work / "case.json").write_text(json.dumps(bundle))
    out = work / "out"
    assert main(["export", str(work / "case.json"), "--out", str(out), "--shift-dates", "-3650"]) == 0
    return series, vol, findings, mask, out


def test_real_ct_export_validates(real_export):
    series, vol, findings, mask, out = real_export
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    files = sorted((out / "dicom").rglob("*.dcm"))
    assert len(files) == vol.shape[0] + 2  # the source series, one SR, one SEG
    for f in files:
        assert dciodvfy(f)[0] == [], f
    errors, warnings = dcentvfy(files)  # one patient, one study, consistent across source, SR and SEG
    assert errors == [] and not [w for w in warnings if "AccessionNumber" not in w], warnings


def test_real_ct_reads_back(real_export):
    series, vol, findings, mask, out = real_export
    from reviewer.export.dicom_sr import sr_to_findings

    (sr_path,) = (out / "dicom" / "sr").glob("*.dcm")
    back = sr_to_findings(hd.sr.srread(sr_path))
    assert [f.tracking_id for f in back] == [f.tracking_id for f in findings]
    for a, b in zip(back, findings):
        np.testing.assert_allclose(a.center_lps, b.center_lps, atol=1e-4)
        assert a.diameter_mm == pytest.approx(b.diameter_mm) and a.observer == "radiologist"
    (seg_path,) = (out / "dicom" / "seg").glob("*.dcm")
    seg = hd.seg.segread(seg_path)
    src = sorted((pydicom.dcmread(p) for p in (out / "dicom" / "source").glob("*.dcm")),
                 key=lambda d: float(d.ImagePositionPatient[2]))
    pixels = seg.get_pixels_by_source_instance([d.SOPInstanceUID for d in src], segment_numbers=[1])
    np.testing.assert_array_equal(pixels[..., 0], mask)
    exported = load_volume(out / "dicom" / "source")
    np.testing.assert_array_equal(exported.array, vol.array)
    np.testing.assert_allclose(exported.geometry.origin, vol.geometry.origin, atol=1e-4)
    assert (out / "png" / "finding-01.png").is_file()
    import SimpleITK as sitk

    img = sitk.ReadImage(str(out / "nifti" / "image.nii.gz"))
    np.testing.assert_allclose(img.GetOrigin(), vol.geometry.origin, atol=1e-4)
    np.testing.assert_allclose(img.GetSpacing(), vol.geometry.spacing, atol=1e-6)
    np.testing.assert_allclose(np.reshape(img.GetDirection(), (3, 3)), vol.geometry.direction_matrix, atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), vol.array)


def test_real_ct_export_holds_no_identifying_value(real_export):
    series, vol, findings, mask, out = real_export
    src = pydicom.dcmread(vol.metadata["files"][0])
    values = [str(src.PatientName), str(src.PatientID), "20070425", "2007-04-25", "04-25-2007",
              str(src.StudyInstanceUID), str(src.SeriesInstanceUID), str(src.FrameOfReferenceUID),
              str(src.SoftwareVersions), series.parent.name, series.name, str(series)]
    values += [str(uid) for uid in vol.metadata["SOPInstanceUIDs"]]
    assert find_values(out, values) == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["identity"]["kept"] is False and manifest["case"] == "[removed]"


def test_enhanced_multiframe_source_keeps_its_study_and_frame(shared_data, tmp_path):
    from reviewer.export.case import CaseExport
    from reviewer.export.deid import Deidentifier
    from reviewer.export.exporter import export_case

    path = shared_data / "dicom-qa-enh" / "In" / "Philips" / "IM_0027_fMAP.dcm"
    if not path.is_file():
        pytest.skip("the enhanced MR sample is absent")
    from reviewer.io.catalog import scan_paths

    uid = scan_paths([path]).image_series()[-1].uid
    vol = load_volume(path, series_uid=uid)
    src = pydicom.dcmread(path, stop_before_pixels=True)
    deid = Deidentifier(key=b"e" * 32)
    centre = tuple(vol.geometry.center_world())
    export_case(CaseExport(vol, findings=[Finding(centre, kind="lesion", observer="r", observer_type="person")]),
                tmp_path / "o", formats=["dicom"], deid=deid)
    images = [pydicom.dcmread(p) for p in sorted((tmp_path / "o" / "dicom" / "source").glob("*.dcm"))]
    assert len(images) == vol.shape[0]
    assert {d.StudyInstanceUID for d in images} == {deid.map_uid(src.StudyInstanceUID)}
    assert {d.FrameOfReferenceUID for d in images} == {deid.map_uid(src.FrameOfReferenceUID)}
    back = load_volume(tmp_path / "o" / "dicom" / "source")
    np.testing.assert_allclose(back.geometry.origin, vol.geometry.origin, atol=1e-3)
    np.testing.assert_allclose(back.geometry.direction_matrix, vol.geometry.direction_matrix, atol=1e-4)
    values = [str(src.StudyInstanceUID), str(src.FrameOfReferenceUID)]
    values += [v for v in (str(src.get("PatientName", "")), str(src.get("PatientID", ""))) if len(v) >= 4]
    assert find_values(tmp_path / "o", values) == []
    if shutil.which("dciodvfy"):
        for p in [sorted((tmp_path / "o" / "dicom" / "source").glob("*.dcm"))[0]] + \
                sorted((tmp_path / "o" / "dicom" / "sr").glob("*.dcm")):
            assert dciodvfy(p)[0] == [], p
