"""``reviewer export STUDY``: one SR per reader per case image, observer = the reader, truth as its own SR."""

from __future__ import annotations

import json

import highdicom as hd
import numpy as np
import pytest

from reviewer.cli import main
from reviewer.export.dicom_sr import sr_case_score, sr_to_findings
from reviewer.geometry import Volume
from reviewer.io.writer import write_volume


@pytest.fixture
def study_json(tmp_path):
    """A study export as ``reviewer study export --format json`` writes it: one case read under two conditions."""
    study = tmp_path / "Quixotez-study"
    (study / "images").mkdir(parents=True)
    rng = np.random.default_rng(3)
    vol = None
    for cond in ("standard", "robust"):
        arr = (rng.random((4, 14, 12)) * 100).astype(np.float32)
        vol = Volume.from_array(arr, spacing=(1.0, 1.0, 3.0), origin=(-6.0, -7.0, 0.0), modality="MR")
        write_volume(vol, study / "images" / f"case1-{cond}.nii.gz")
    lesion = [float(v) for v in vol.geometry.voxel_to_world((6, 7, 2))]
    near = [lesion[0] + 1.0, lesion[1], lesion[2]]
    reads = []
    for cond in ("standard", "robust"):
        reads.append({"reader_id": "R1", "simulated": False, "case_id": "case1", "condition": cond,
                      "image_path": f"images/case1-{cond}.nii.gz", "case_rating": 4 if cond == "robust" else 2,
                      "marks": [{"mark_id": 1, "world_lps": near, "rating": 4,
                                 "finding": {"center_lps": near, "kind": "reader-mark", "score": 4,
                                             "score_kind": "rating", "observer": "R1", "observer_type": "person",
                                             "source": str(study / "images" / f"case1-{cond}.nii.gz"),
                                             "label": f"case1 / {cond}", "extra": {"case_id": "case1"}}}]
                      if cond == "robust" else []})
        reads.append({"reader_id": "sim-1", "simulated": True, "case_id": "case1", "condition": cond,
                      "image_path": f"images/case1-{cond}.nii.gz", "case_rating": None,
                      "marks": [{"mark_id": 7, "world_lps": lesion, "rating": 3}]})
    data = {"format": "reviewer-study-export", "version": 1, "coordinates": "world LPS mm",
            "study_dir": str(study),
            "truth": [{"case_id": "case1", "normal": False,
                       "lesions": [{"lesion_id": "L1", "center_lps": lesion, "diameter_mm": 3.0, "kind": "fnaf"}],
                       "images": {"standard": "images/case1-standard.nii.gz",
                                  "robust": "images/case1-robust.nii.gz"}}],
            "reads": reads}
    path = study / "export.json"
    path.write_text(json.dumps(data))
    return path, lesion, near


def test_study_export_writes_one_sr_per_reader_per_case_image(study_json, tmp_path):
    path, lesion, near = study_json
    out = tmp_path / "out"
    assert main(["export", str(path.parent), "--out", str(out), "--format", "dicom"]) == 0
    assert main(["export", str(path.parent), "--out", str(out), "--format", "dicom"]) == 0  # replaces the first
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(c["case_id"], c["condition"]) for c in manifest["cases"]] == [("case1", "standard"),
                                                                          ("case1", "robust")]
    for cond in ("standard", "robust"):
        srs = {}
        for p in sorted((out / "case1" / cond / "dicom" / "sr").glob("*.dcm")):
            sr = hd.sr.srread(p)
            findings = sr_to_findings(sr)
            observer = next(iter({f.observer for f in findings}), None) or sr.SeriesDescription
            srs[observer] = (sr, findings)
        assert len(srs) == 3  # the truth, reader R1 (even without marks) and the simulated reader
        truth = next(f for k, (_, fs) in srs.items() for f in fs if f.observer == "reference standard")
        np.testing.assert_allclose(truth.center_lps, lesion)
        assert truth.kind == "fnaf" and truth.diameter_mm == 3.0
        sim = [f for _, fs in srs.values() for f in fs if f.observer == "sim-1"]
        assert len(sim) == 1 and sim[0].observer_type == "device" and sim[0].score == 3.0
        r1 = [(sr, fs) for sr, fs in srs.values() if "R1" in sr.SeriesDescription]
        assert len(r1) == 1
        sr, fs = r1[0]
        assert sr_case_score(sr) == (4.0 if cond == "robust" else 2.0)
        if cond == "robust":
            (mark,) = fs
            assert mark.observer == "R1" and mark.observer_type == "person" and mark.score == 4.0
            assert mark.kind == "fnaf"  # what the study looks for
            np.testing.assert_allclose(mark.center_lps, near)
        else:
            assert fs == []
    # one patient across the study: one pseudonym; the study folder's name is nowhere in the export
    import pydicom

    names = {str(pydicom.dcmread(p).PatientName) for p in out.rglob("IMG_0001.dcm")}
    assert len(names) == 1
    for p in out.rglob("*"):
        if p.is_file():
            assert b"Quixotez" not in p.read_bytes(), p
    import shutil

    if shutil.which("dciodvfy"):  # reports with no finding and with a case rating are valid too
        from tests.export_checks import dciodvfy

        for p in sorted(out.rglob("SR_*.dcm")) + [next(out.rglob("IMG_0001.dcm"))]:
            assert dciodvfy(p)[0] == [], p
        from tests.export_checks import dcentvfy

        # the case's two condition images and all SRs: one patient, one study (shared pseudonym and study UID)
        errors, warnings = dcentvfy(sorted(out.rglob("*.dcm")))
        assert errors == [] and not [w for w in warnings if "AccessionNumber" not in w], warnings


def test_export_a_study_folder_read_through_the_studies_store(tmp_path):
    """A study built, read by a person and simulated readers through reviewer.studies, exported from its folder."""
    pytest.importorskip("reviewer.studies.store")
    from reviewer.studies.create import StudyBuilder, StudySettings
    from reviewer.studies.definition import Lesion
    from reviewer.studies.simulate import simulate_readers
    from reviewer.studies.store import open_store

    rng = np.random.default_rng(5)
    builder = StudyBuilder(tmp_path / "study", ["standard", "robust"])
    lesions = {}
    for case_id in ("c1", "c2"):
        arr = (rng.normal(-800, 30, (6, 20, 20))).astype(np.int16)
        vol = Volume.from_array(arr, spacing=(1.0, 1.0, 2.0), origin=(-10.0, -10.0, 0.0), modality="CT", unit="HU")
        les = [Lesion(1, tuple(float(v) for v in vol.geometry.voxel_to_world((10, 10, 3))), 6.0, "nodule")] \
            if case_id == "c1" else []
        lesions[case_id] = les
        builder.add_case(case_id, les, {"standard": vol, "robust": vol})
    builder.write(StudySettings(name="export test", readers=["R1"], paradigm="both"))
    store = open_store(tmp_path / "study")
    try:
        simulate_readers(store, 1, seed=1)
        session = store.start_session("R1")
        while (view := session.current()) is not None:
            vol = session.load_image()
            session.add_mark(world_lps=tuple(vol.geometry.center_world()), rating=3)
            session.set_case_rating(2)
            session.submit_case()
        results = store.results()
    finally:
        store.close()
    out = tmp_path / "out"
    assert main(["export", str(tmp_path / "study"), "--out", str(out), "--format", "dicom"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["cases"]) == 4  # 2 cases x 2 conditions
    reads = {(r.case_id, r.condition, r.reader_id): r for r in results}
    for entry in manifest["cases"]:
        srs = [hd.sr.srread(p) for p in sorted((out / entry["folder"] / "dicom" / "sr").glob("*.dcm"))]
        readers = {r for (c, cond, r) in reads if (c, cond) == (entry["case_id"], entry["condition"])}
        truth = 1 if lesions[entry["case_id"]] else 0
        assert len(srs) == len(readers) + truth  # one SR per reader per case image (+ the truth)
        got = [f for sr in srs for f in sr_to_findings(sr)]
        for reader in readers:
            want = reads[(entry["case_id"], entry["condition"], reader)].marks
            mine = [f for f in got if f.observer == reader]
            assert sorted(tuple(np.round(f.center_lps, 3)) for f in mine) == \
                sorted(tuple(np.round(m["world_lps"], 3)) for m in want)
            assert all(f.kind == "nodule" for f in mine)
        r1 = [sr for sr in srs if "R1" in sr.SeriesDescription]
        assert len(r1) == 1 and sr_case_score(r1[0]) == 2.0


def test_study_with_2d_png_images(tmp_path):
    """FNAF studies show MRI slices as PNG: each becomes a one-slice MR series with the study's pixel spacing."""
    pytest.importorskip("reviewer.studies.images")
    import pydicom
    from PIL import Image

    study = tmp_path / "s"
    (study / "images").mkdir(parents=True)
    arr = (np.arange(32 * 24).reshape(32, 24) % 251).astype(np.uint8)
    Image.fromarray(arr).save(study / "images" / "a.png")
    mark = [10.0 * 0.5, 12.0 * 0.7, 0.0]  # column 10, row 12 at 0.7 mm rows x 0.5 mm columns
    data = {"format": "reviewer-study-export", "version": 1, "study_dir": str(study),
            "definition": {"cases": [{"id": "k1", "images": {"robust": {"path": "images/a.png",
                                                                       "spacing_mm": [0.7, 0.5]}}}]},
            "truth": [{"case_id": "k1", "lesions": [], "images": {"robust": "images/a.png"}}],
            "reads": [{"reader_id": "R9", "simulated": False, "case_id": "k1", "condition": "robust",
                       "image_path": "images/a.png", "case_rating": None,
                       "marks": [{"mark_id": 1, "world_lps": mark, "rating": 5}]}]}
    (study / "export.json").write_text(json.dumps(data))
    out = tmp_path / "out"
    assert main(["export", str(study / "export.json"), "--out", str(out)]) == 0
    (img,) = (out / "k1" / "robust" / "dicom" / "source").glob("*.dcm")
    ds = pydicom.dcmread(img)
    assert ds.Modality == "MR" and [float(v) for v in ds.PixelSpacing] == [0.7, 0.5]
    np.testing.assert_array_equal(ds.pixel_array, arr)
    (sr,) = (out / "k1" / "robust" / "dicom" / "sr").glob("*.dcm")
    (f,) = sr_to_findings(hd.sr.srread(sr))
    np.testing.assert_allclose(f.center_lps, mark)
    assert (out / "k1" / "robust" / "png" / "finding-01.png").is_file()
