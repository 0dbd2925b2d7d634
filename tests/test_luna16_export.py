"""The demo phantoms exported as a LUNA16 dataset, read back with SimpleITK and with our reader."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from reviewer.errors import InputError
from reviewer.luna16.dataset import iter_luna16, open_luna16, resolve_luna16
from reviewer.luna16.demo_export import DEMO_CT_SPLITS, demo_direction, export_demo_luna16, is_current, split_seeds
from reviewer.luna16.io import read_annotations, read_seriesuids

SMALL = (40, 64, 64)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("luna16") / "demo"
    return export_demo_luna16(out, "test", n=2, shape=SMALL)


def _mhd_fields(path):
    return dict(line.split(" = ", 1) for line in path.read_text().splitlines())


def test_layout_and_mhd_header(exported):
    uids = read_seriesuids(exported / "seriesuids.csv")
    assert len(uids) == 2
    assert (exported / "seriesuids.csv").read_text().splitlines() == uids  # no header, as in LUNA16
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["seeds"] == [300, 301] and manifest["split"] == "test"
    nodules = json.loads((exported / "nodules.json").read_text())["scans"]
    for uid in uids:
        seed = nodules[uid]["seed"]
        fields = _mhd_fields(exported / "subset0" / f"{uid}.mhd")
        assert fields["ElementType"] == "MET_SHORT"
        assert fields["ElementDataFile"] == f"{uid}.raw"
        assert fields["DimSize"].split() == ["64", "64", "40"]
        # MetaIO lists the axis vectors one after another (the columns of Geometry.direction)
        d = np.array(fields["TransformMatrix"].split(), float).reshape(3, 3).T
        np.testing.assert_array_equal(d, demo_direction(seed))
        img = sitk.ReadImage(str(exported / "subset0" / f"{uid}.mhd"))
        np.testing.assert_allclose(img.GetOrigin(), np.array(fields["Offset"].split(), float))
        np.testing.assert_allclose(img.GetSpacing(), np.array(fields["ElementSpacing"].split(), float))
        # the grid centre sits at the phantom's centre (0, 0, -150) LPS whatever the direction
        centre = img.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in img.GetSize()])
        np.testing.assert_allclose(centre, (0, 0, -150), atol=1e-6)
    assert not np.array_equal(demo_direction(301), np.eye(3)), "seed 301 must be a flipped test phantom"


def test_annotations_land_inside_the_nodules(exported):
    ann = read_annotations(exported / "annotations.csv")
    exc = read_annotations(exported / "annotations_excluded.csv")
    assert exc, "the export must list irrelevant findings (< 3 mm)"
    assert all(a.diameter_mm >= 3.0 for v in ann.values() for a in v)
    assert all(a.diameter_mm < 3.0 for v in exc.values() for a in v)
    kinds = {uid: {tuple(np.round(n["center"], 3)): n["kind"] for n in s["nodules"]}
             for uid, s in json.loads((exported / "nodules.json").read_text())["scans"].items()}
    for uid, items in ann.items():
        img = sitk.ReadImage(str(exported / "subset0" / f"{uid}.mhd"))
        arr = sitk.GetArrayFromImage(img)
        for a in items:
            i, j, k = img.TransformPhysicalPointToIndex(a.center)  # SimpleITK's own world -> index
            hu = float(arr[k, j, i])
            kind = kinds[uid][tuple(np.round(a.center, 3))]
            # solid tissue ~+40 HU, ground glass ~-600 HU, against lung parenchyma at ~-850 HU
            assert hu > (-720 if kind == "ground-glass" else -560), (uid, a, kind, hu)


def test_iter_luna16_matches_simpleitk(exported):
    seen = 0
    for uid, vol, anns in iter_luna16(exported):
        img = sitk.ReadImage(str(exported / "subset0" / f"{uid}.mhd"))
        np.testing.assert_array_equal(vol.array, sitk.GetArrayFromImage(img))
        np.testing.assert_allclose(vol.geometry.direction_matrix.reshape(-1), img.GetDirection())
        assert vol.modality == "CT" and vol.metadata["series_uid"] == uid
        for a in anns:
            k, j, i = vol.geometry.world_to_array_index(a.center)
            assert (i, j, k) == img.TransformPhysicalPointToIndex(a.center)
        seen += 1
    assert seen == 2
    ds = open_luna16(exported)
    assert sum(len(v) for v in ds.excluded.values()) >= 2


def test_split_seeds_and_cache_key(exported, tmp_path):
    assert split_seeds("train") == list(range(100, 140)) and len(split_seeds("all")) == 70
    assert list(DEMO_CT_SPLITS["test"]) == list(range(300, 320))
    assert is_current(exported, "test", n=2, shape=SMALL)
    assert not is_current(exported, "test", n=3, shape=SMALL)
    assert not is_current(exported, "val", n=2, shape=SMALL)
    assert resolve_luna16(exported) == exported
    with pytest.raises(InputError, match="demo:ct-train"):
        resolve_luna16("demo:ct-nope")
    with pytest.raises(InputError, match="not a folder"):
        resolve_luna16(tmp_path / "missing")


def test_demo_spec_is_generated_once_into_the_cache(monkeypatch):
    from reviewer.demo import chest_ct
    from reviewer.luna16 import demo_export

    # a one-scan, small-grid split keeps this fast; the cache logic is what is tested
    monkeypatch.setitem(demo_export.DEMO_CT_SPLITS, "val", range(200, 201))
    monkeypatch.setattr(chest_ct, "DEFAULT_SHAPE", SMALL)
    monkeypatch.setattr(chest_ct, "DEFAULT_SPACING", (5.6, 5.6, 8.0))
    first = resolve_luna16("demo:ct-val")
    assert demo_export.generator_version() in str(first)
    mhd = next((first / "subset0").glob("*.mhd"))
    stamp = mhd.stat().st_mtime_ns
    again = resolve_luna16("demo:ct-val")
    assert again == first and mhd.stat().st_mtime_ns == stamp  # reused, not regenerated
    (uid, vol, anns), = list(iter_luna16("demo:ct-val"))
    assert vol.shape == SMALL and anns and uid == mhd.stem
    monkeypatch.setattr(demo_export, "EXPORT_VERSION", "test-bump")
    bumped = resolve_luna16("demo:ct-val")
    assert bumped != first and "test-bump" in str(bumped)


def test_reader_accepts_the_challenge_layout(exported, tmp_path):
    """subsetN folders and the CSVs in evaluationScript/annotations/, with a listed scan not downloaded."""
    import shutil

    from reviewer.luna16.io import write_seriesuids

    root = tmp_path / "LUNA16"
    uids = read_seriesuids(exported / "seriesuids.csv")
    for n, uid in enumerate(uids):
        sub = root / f"subset{n + 3}"
        sub.mkdir(parents=True)
        for ext in (".mhd", ".raw"):
            shutil.copy(exported / "subset0" / f"{uid}{ext}", sub / f"{uid}{ext}")
    csvs = root / "evaluationScript" / "annotations"
    csvs.mkdir(parents=True)
    for name in ("annotations.csv", "annotations_excluded.csv"):
        shutil.copy(exported / name, csvs / name)
    write_seriesuids(csvs / "seriesuids.csv", uids + ["1.2.3.not.downloaded"])
    ds = open_luna16(root)
    assert ds.seriesuids[-1] == "1.2.3.not.downloaded" and set(ds.scans) == set(uids)
    got = [(uid, len(anns)) for uid, _vol, anns in iter_luna16(root)]
    assert got == [(u, len(ds.annotations.get(u, []))) for u in uids]
    assert ds.load(uids[1]).modality == "CT"  # no sidecar copied: LUNA16 scans are CT
    with pytest.raises(InputError, match="1 listed scan"):
        list(iter_luna16(root, skip_missing=False))
