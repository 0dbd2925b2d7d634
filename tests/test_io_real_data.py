"""Real data: the Lung-PET-CT-Dx chest CT (with radiologists' boxes) and dcm2niix's enhanced DICOM references."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import SimpleITK as sitk

from reviewer.io.catalog import scan_paths
from reviewer.io.loader import load_series


@pytest.fixture(scope="module")
def lung(shared_data):
    cat = scan_paths([shared_data / "lung-pet-ct-dx"])
    return cat, {s.series_description.split()[-1]: load_series(s) for s in cat.image_series()}


def test_lung_ct_series(lung):
    cat, vols = lung
    assert set(vols) == {"B70f", "B40f"} and not cat.problems
    for vol in vols.values():
        assert vol.shape == (30, 512, 512) and vol.array.dtype == np.int16
        assert vol.spacing == pytest.approx((0.646484375, 0.646484375, 8.0))
        assert vol.geometry.nearest_orientation_code() == "LPS"
        assert not vol.warnings
        air = vol.array[:, :20, :20].mean()
        assert -1100 < air < -900
        assert vol.array.max() > 700
        assert vol.metadata["ConvolutionKernel"] in ("B70f", "B40f")


def test_lesion_boxes_land_on_their_slice(lung, shared_data):
    _, vols = lung
    xmls = sorted((shared_data / "lung-pet-ct-dx" / "annotations" / "A0002").glob("*.xml"))
    assert xmls
    checked = 0
    for x in xmls:
        uid = x.stem
        hits = [(v, v.metadata["SOPInstanceUIDs"].index(uid)) for v in vols.values()
                if uid in v.metadata["SOPInstanceUIDs"]]
        assert hits, f"{uid} not found in any series"
        root = ET.parse(x).getroot()
        for vol, k in hits:
            for box in root.iter("bndbox"):
                x0, y0, x1, y1 = (int(float(box.find(t).text)) for t in ("xmin", "ymin", "xmax", "ymax"))
                inside = vol.array[k, y0:y1 + 1, x0:x1 + 1].astype(float)
                assert inside.mean() > -600, f"{uid}: box mean {inside.mean():.0f} HU is not denser than lung"
                checked += 1
    assert checked >= len(xmls)


def _world_matched_values(vol, ref: sitk.Image):
    """Reference voxel values at our voxels' world positions (must fall on reference voxel centres)."""
    ours = vol.geometry.index_to_world_matrix()
    d = np.asarray(ref.GetDirection()).reshape(3, 3)
    ref_m = np.eye(4)
    ref_m[:3, :3] = d * np.asarray(ref.GetSpacing())
    ref_m[:3, 3] = ref.GetOrigin()
    k, j, i = np.indices(vol.shape).reshape(3, -1)
    ijk = np.stack([i, j, k, np.ones_like(i)])
    ref_idx = (np.linalg.inv(ref_m) @ ours @ ijk)[:3]
    assert np.abs(ref_idx - np.rint(ref_idx)).max() < 1e-2, "voxel grids are not aligned in world space"
    ri = np.rint(ref_idx).astype(int)
    arr = sitk.GetArrayFromImage(ref)
    return arr[ri[2], ri[1], ri[0]].reshape(vol.shape), vol.array


def test_siemens_xa10_enhanced_matches_dcm2niix(shared_data):
    """4 files of one fMRI run (one temporal position each) -> 4 volumes; each equals the matching volume of
    dcm2niix's 4D NIfTI voxel by voxel, compared at the same world (LPS) positions (dcm2niix flips rows)."""
    base = shared_data / "dicom-qa-enh"
    side = json.loads((base / "Ref" / "Siemens_REST1_w_SMS_PF7-8_6.json").read_text())
    cat = scan_paths([base / "In" / "Siemens"])
    series = cat.image_series()
    assert len(series) == 4 and all(s.series_number == side["SeriesNumber"] for s in series)
    ref4 = sitk.ReadImage(str(base / "Ref" / "Siemens_REST1_w_SMS_PF7-8_6.nii"))
    for t, info in enumerate(series):
        vol = load_series(info)
        ref = sitk.Extract(ref4, list(ref4.GetSize()[:3]) + [0], [0, 0, 0, t])
        theirs, ours = _world_matched_values(vol, ref)
        assert np.array_equal(ours, theirs)


def test_philips_fieldmap_enhanced_matches_dcm2niix(shared_data):
    """IM_0027_fMAP.dcm: 64 frames = 32 magnitude + 32 field-map frames -> two volumes. The field map equals
    dcm2niix's e2_fieldmaphz (Hz, RescaleSlope/Intercept applied) ; the magnitude equals dcm2niix's e1 divided
    by its Philips float scaling (sidecar UsePhilipsFloatNotDisplayScaling: value / (RescaleSlope * ScaleSlope))."""
    base = shared_data / "dicom-qa-enh"
    cat = scan_paths([base / "In" / "Philips"])
    series = {("FIELD_MAP" if "FIELD_MAP" in s.series_description else "M"): s for s in cat.image_series()}
    assert set(series) == {"FIELD_MAP", "M"}
    fmap = load_series(series["FIELD_MAP"])
    ref = sitk.ReadImage(str(base / "Ref" / "Philips_WIP_B0_NS_801_e2_fieldmaphz.nii"))
    theirs, ours = _world_matched_values(fmap, ref)
    assert np.abs(ours - theirs).max() < 0.2442 * 0.5  # dcm2niix stores int16 + scl_slope: within half a step
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.9999
    mag = load_series(series["M"])
    side = json.loads((base / "Ref" / "Philips_WIP_B0_NS_801_e1.json").read_text())
    ref = sitk.ReadImage(str(base / "Ref" / "Philips_WIP_B0_NS_801_e1.nii"))
    theirs, ours = _world_matched_values(mag, ref)
    scale = side["PhilipsRescaleSlope"] * side["PhilipsScaleSlope"]
    assert np.allclose(ours / scale, theirs, rtol=1e-4, atol=1e-2)
    assert mag.spacing == pytest.approx((4.0, 4.0, 4.0))
