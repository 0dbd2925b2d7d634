"""The Qt-free detection lab: merging two models' findings, threshold, ground truth and hits, synthetic nodules."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reviewer.detection.lab import (DetectionLab, filter_rows, ground_truth_of, hit_nodules, merge_findings,
                                    nodule_params, row_truth)
from reviewer.findings import Finding
from reviewer.geometry import Geometry, Volume


def _f(c, p, model, d=8.0, u=None):
    return Finding(center_lps=c, diameter_mm=d, score=p, score_kind="probability", uncertainty=u, observer=model)


def test_merge_rows_match_by_distance_one_to_one():
    std = [_f((0, 0, 0), 0.9, "std", u=0.1), _f((30, 0, 0), 0.4, "std"), _f((0, 40, 0), 0.7, "std")]
    rob = [_f((1.0, 0, 0), 0.6, "rob", u=0.3), _f((30, 2.0, 0), 0.8, "rob"), _f((0, -50, 0), 0.2, "rob"),
           _f((0.5, 0.5, 0), 0.95, "rob")]  # two robust findings near (0, 0, 0): only the nearer pairs
    rows = merge_findings({"std": std, "rob": rob})
    assert len(rows) == 5
    by = {(round(r.center_lps[0]), round(r.center_lps[1])): r for r in rows}
    r0 = [r for r in rows if r.probability["std"] == 0.9][0]
    assert r0.probability["rob"] == 0.95  # the nearer robust finding (0.71 mm) wins over the one at 1 mm
    assert np.allclose(r0.center_lps, (0.25, 0.25, 0))  # mean of the paired findings
    assert r0.uncertainty == {"std": 0.1, "rob": None}
    assert r0.difference("std", "rob") == pytest.approx(0.05)
    r1 = by[(30, 1)]
    assert r1.difference("std", "rob") == pytest.approx(0.4)
    lone_rob = [r for r in rows if r.probability["std"] is None]
    assert sorted(r.probability["rob"] for r in lone_rob) == [0.2, 0.6]
    lone_std = [r for r in rows if r.probability["rob"] is None]
    assert [r.probability["std"] for r in lone_std] == [0.7]
    assert lone_std[0].difference("std", "rob") == pytest.approx(-0.7)  # unreported counts 0
    # sorted by the highest probability of either model
    assert [r.max_score() for r in rows] == sorted((r.max_score() for r in rows), reverse=True)


def test_merge_respects_nodule_size():
    # 7 mm apart: separate for 8 mm candidates (match radius 5 mm), one for 20 mm ones (radius 10 mm)
    small = merge_findings({"a": [_f((0, 0, 0), 0.9, "a")], "b": [_f((7, 0, 0), 0.9, "b")]})
    big = merge_findings({"a": [_f((0, 0, 0), 0.9, "a", d=20)], "b": [_f((7, 0, 0), 0.9, "b", d=20)]})
    assert len(small) == 2 and len(big) == 1


def test_threshold_and_hits():
    rows = merge_findings({"std": [_f((0, 0, 0), 0.9, "std"), _f((50, 0, 0), 0.3, "std")],
                           "rob": [_f((0, 0, 0), 0.4, "rob"), _f((50, 4.0, 0), 0.8, "rob")]})
    assert len(filter_rows(rows, 0.5)) == 2
    assert len(filter_rows(rows, 0.85)) == 1
    assert len(filter_rows(rows, 0.85, ["rob"])) == 0
    gt = [Finding(center_lps=(0, 0, 3.0), diameter_mm=10.0),  # 3 mm from the marks: inside the 5 mm radius
          Finding(center_lps=(50, 0, 0), diameter_mm=6.0),  # std mark at 0 mm, rob mark (50, 4): 2 mm -> inside 3
          Finding(center_lps=(-40, 0, 0), diameter_mm=None)]  # nobody marks it
    assert hit_nodules(gt, rows, "std", 0.5) == [True, False, False]  # std scores the 2nd only 0.3
    assert hit_nodules(gt, rows, "rob", 0.5) == [False, True, False]
    assert hit_nodules(gt, rows, "std", 0.2) == [True, True, False]
    assert hit_nodules(gt, rows, "rob", 0.9) == [False, False, False]
    assert row_truth(gt, rows[0]) in (0, 1)
    # a mark exactly at the radius is not a hit (strictly inside, as LUNA16)
    edge = merge_findings({"m": [_f((5.0, 0, 0), 0.9, "m")]})
    assert hit_nodules([Finding(center_lps=(0, 0, 0), diameter_mm=10.0)], edge, "m", 0.5) == [False]


def _lung_volume(direction=None, origin=(100.0, 80.0, -200.0), shape=(40, 48, 48), spacing=(1.5, 1.5, 2.0)):
    rng = np.random.default_rng(0)
    arr = (-850 + rng.normal(0, 15, shape)).astype(np.int16)
    d = np.eye(3) if direction is None else np.asarray(direction, float)
    g = Geometry(shape, spacing, origin, tuple(map(tuple, d)))
    return Volume(arr, g, modality="CT", unit="HU", name="lung phantom")


def test_insert_nodule_at_world_point_with_flipped_directions():
    flip = np.diag([-1.0, -1.0, 1.0])  # i runs right-to-left, j anterior-ward: as some LUNA16 scans
    vol = _lung_volume(direction=flip)
    lab = DetectionLab(vol)
    # voxel (i, j, k) = (30, 12, 20) by hand: x = ox - i sx, y = oy - j sy, z = oz + k sz
    ox, oy, oz = vol.geometry.origin
    world = (ox - 30 * 1.5, oy - 12 * 1.5, oz + 20 * 2.0)
    new, finding = lab.insert_nodule(world, nodule_params(diameter_mm=8.0, composition="solid", density_hu=40.0))
    assert lab.volume is new and lab.original is vol and new is not vol
    assert np.array_equal(vol.array, _lung_volume(direction=flip).array)  # the source is untouched
    assert finding.kind == "synthetic-nodule" and np.allclose(finding.center_lps, world)
    changed = new.array.astype(int) - vol.array.astype(int)
    dense = np.argwhere(changed > 300)  # (k, j, i) voxels the solid nodule raised
    assert len(dense) > 20
    kc, jc, ic = dense.mean(axis=0)
    assert abs(ic - 30) < 1.0 and abs(jc - 12) < 1.0 and abs(kc - 20) < 1.0
    gt = lab.ground_truth()
    assert len(gt) == 1 and np.allclose(gt[0].center_lps, world) and gt[0].diameter_mm == pytest.approx(8.0)
    assert gt[0].label == "synthetic solid 8 mm"
    lab.revert()
    assert lab.volume is vol and lab.ground_truth() == []


def test_ground_truth_from_demo_json_and_luna16_csv(tmp_path):
    from reviewer.io.writer import write_volume
    from reviewer.io.loader import load_volume

    vol = _lung_volume(shape=(8, 10, 12))
    uid = "1.2.3.4"
    d1 = tmp_path / "demo"
    d1.mkdir()
    write_volume(vol, d1 / f"{uid}.mhd", sidecar=False)
    (d1 / "nodules.json").write_text(json.dumps({"seriesuid": uid, "nodules": [
        {"id": 1, "center_lps_mm": [101.0, 82.0, -195.0], "diameter_mm": 7.5, "kind": "part-solid"}]}))
    gt, src = ground_truth_of(load_volume(d1 / f"{uid}.mhd"))
    assert [g.center_lps for g in gt] == [(101.0, 82.0, -195.0)] and gt[0].diameter_mm == 7.5
    assert "part-solid" in gt[0].label and src and src[0].endswith("nodules.json")

    root = tmp_path / "luna"
    (root / "subset0").mkdir(parents=True)
    write_volume(vol, root / "subset0" / f"{uid}.mhd", sidecar=False)
    (root / "annotations.csv").write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n"
                                          f"{uid},100.5,81.5,-196.0,5.2\nother,0,0,0,9\n{uid},103,84,-190,12\n")
    gt, src = ground_truth_of(load_volume(root / "subset0" / f"{uid}.mhd"))
    assert [g.diameter_mm for g in gt] == [5.2, 12.0] and gt[0].center_lps == (100.5, 81.5, -196.0)
    assert src[0].endswith("annotations.csv")
    # a scan the CSV does not list has no known nodules, and a loose volume none at all
    write_volume(vol, root / "subset0" / "9.9.mhd", sidecar=False)
    assert ground_truth_of(load_volume(root / "subset0" / "9.9.mhd"))[0] == []
    assert ground_truth_of(vol) == ([], [])


def test_perturbation_is_derived_and_revertible():
    vol = _lung_volume()
    lab = DetectionLab(vol)
    lab.insert_nodule(vol.geometry.center_world(), nodule_params(diameter_mm=6.0))
    with_nodule = lab.volume
    pr = lab.perturb("uniform-0.6")
    assert lab.volume is pr.volume and "uniform noise 0.6" in pr.volume.name
    delta = pr.volume.array.astype(float) - with_nodule.array.astype(float)
    # magnitude 0.6 on the [-1000, 400] window: U(-0.3, 0.3) * 1400 HU, clipped at 0 (-1000 HU); lung at x ~ 0.107
    # gains E[max(x + u, 0)] - x = (x + 0.3)^2 / 1.2 - x on average
    assert 380 < np.abs(delta).max() <= 421
    x = (with_nodule.array.astype(float) + 1000) / 1400
    expected = np.mean(np.where(x < 0.3, (x + 0.3) ** 2 / 1.2 - x, 0.0)) * 1400
    assert delta.mean() == pytest.approx(expected, abs=3.0)
    assert len(lab.ground_truth()) == 1  # the inserted nodule stays ground truth under the perturbation
    pr2 = lab.perturb("poisson-5")  # replaces the noise, applied to the un-perturbed volume
    assert lab.unperturbed() is with_nodule and "uniform" not in pr2.volume.name
    lab.clear_perturbation()
    assert lab.volume is with_nodule
    with pytest.raises(ValueError, match="unknown perturbation"):
        lab.perturb("gamma")
    with pytest.raises(ValueError, match="load the detection models"):
        lab.perturb("pgd-vanish", center_lps=vol.geometry.center_world())


def test_ground_truth_from_lung_pet_ct_dx_boxes(shared_data):
    """The real chest CT's radiologist boxes (PASCAL-VOC per slice, named by SOPInstanceUID) become one lesion,
    placed where pydicom's own geometry (IPP + IOP + PixelSpacing of each annotated file) puts the boxes."""
    import pydicom

    from reviewer.detection.lab import _voc_boxes
    from reviewer.io.loader import load_volume

    series = next((shared_data / "lung-pet-ct-dx" / "Lung_Dx-A0002").glob("*/*B70f*"))
    vol = load_volume(series)
    gt, src = ground_truth_of(vol)
    assert len(gt) == 1 and src and src[0].endswith("annotations")
    lesion = gt[0]
    assert lesion.kind == "lesion" and lesion.label.startswith("adenocarcinoma")
    # independent world positions of the box centres, slice by slice
    ann = shared_data / "lung-pet-ct-dx" / "annotations"
    centres, sides = [], []
    for f in sorted(series.glob("*.dcm")):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        xml = next(ann.rglob(f"{ds.SOPInstanceUID}.xml"), None)
        if xml is None:
            continue
        (_name, x0, y0, x1, y1), = _voc_boxes(xml)
        ipp = np.array(ds.ImagePositionPatient, float)
        iop = np.array(ds.ImageOrientationPatient, float)
        dr, dc = (float(v) for v in ds.PixelSpacing)  # row spacing, column spacing
        col, row = (x0 + x1) / 2, (y0 + y1) / 2
        centres.append(ipp + iop[:3] * dc * col + iop[3:] * dr * row)
        sides.append(max((x1 - x0) * dc, (y1 - y0) * dr))
    assert len(centres) == len(lesion.extra["slices"]) >= 2
    assert np.allclose(lesion.center_lps, np.mean(centres, axis=0), atol=1e-3)
    assert lesion.diameter_mm == pytest.approx(max(sides), abs=0.06)
