"""LUNA16 CSV reading/writing, clear errors on malformed files, and world <-> voxel conversion of annotations
with flipped and permuted direction matrices checked against SimpleITK on a written .mhd."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from reviewer.errors import InputError
from reviewer.findings import Finding
from reviewer.geometry import Volume
from reviewer.io.writer import write_volume
from reviewer.luna16.io import (
    Annotation,
    SubmissionRow,
    annotation_to_finding,
    annotations_to_array_index,
    annotations_to_voxel,
    finding_to_annotation,
    findings_to_submission,
    read_annotations,
    read_seriesuids,
    read_submission,
    submission_to_findings,
    voxel_to_annotation,
    write_annotations,
    write_seriesuids,
    write_submission,
)

UID = "1.3.6.1.4.1.14519.5.2.1.6279.6001.100225287222365663678666836860"


def test_roundtrip_and_official_layout(tmp_path):
    ann = {UID: [Annotation(-128.6994211, -175.3192718, -298.3875064, 5.651470635)], "1.2.3": [Annotation(1, 2, 3, -1)]}
    p = write_annotations(tmp_path / "annotations.csv", ann)
    assert p.read_text().splitlines()[0] == "seriesuid,coordX,coordY,coordZ,diameter_mm"
    assert read_annotations(p) == ann
    rows = [SubmissionRow(UID, -128.7, -175.3, -298.4, 0.93), (UID, 10.0, 20.0, 30.0, 0.1),
            {"seriesuid": "1.2.3", "coordX": 1, "coordY": 2, "coordZ": 3, "probability": 0.5}]
    s = write_submission(tmp_path / "sub.csv", rows)
    back = read_submission(s)
    assert back[0] == rows[0] and back[1] == SubmissionRow(*rows[1]) and back[2].probability == 0.5
    write_seriesuids(tmp_path / "seriesuids.csv", [UID, "1.2.3"])
    assert read_seriesuids(tmp_path / "seriesuids.csv") == [UID, "1.2.3"]


def test_reads_the_challenge_formatting(tmp_path):
    # columns in another order plus an extra one, Windows line ends, a BOM and a blank line
    p = tmp_path / "a.csv"
    p.write_bytes(("\ufeffdiameter_mm,seriesuid,coordZ,coordY,coordX,reader\r\n"
                   f"5.0,{UID},-3,-2,-1,r1\r\n\r\n").encode("utf-8"))
    assert read_annotations(p) == {UID: [Annotation(-1.0, -2.0, -3.0, 5.0)]}
    q = tmp_path / "uids.csv"
    q.write_text(f"seriesuid\n{UID}\n1.2.3\n")
    assert read_seriesuids(q) == [UID, "1.2.3"]


@pytest.mark.parametrize("text, message", [
    ("", "empty file"),
    ("seriesuid,coordX,coordY,diameter_mm\n1,2,3,4\n", "lacks column(s) coordZ"),
    ("seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2,1,2,3,4\n1.2,1,2,abc,4\n", "line 3: coordZ 'abc' is not a number"),
    ("seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2,1,2,3\n", "line 2: 4 field(s), the header has 5"),
    ("seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2,1,2,3,4,5\n", "line 2: 6 field(s), the header has only 5"),
    ("seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2,1,2,nan,4\n", "line 2: coordZ 'nan' is not a finite number"),
    ("seriesuid,coordX,coordY,coordZ,diameter_mm\n,1,2,3,4\n", "line 2: empty seriesuid"),
])
def test_malformed_annotations_name_file_and_line(tmp_path, text, message):
    p = tmp_path / "annotations.csv"
    p.write_text(text)
    with pytest.raises(InputError) as exc:
        read_annotations(p)
    assert str(p) in str(exc.value) and message in str(exc.value)


def test_malformed_submission_and_series_list(tmp_path):
    p = tmp_path / "sub.csv"
    p.write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n1,2,3,4,5\n")
    with pytest.raises(InputError, match="lacks column.*probability"):
        read_submission(p)
    p.write_text("seriesuid,coordX,coordY,coordZ,probability\n1,2,3,4,high\n")
    with pytest.raises(InputError, match=r"sub.csv: line 2: probability 'high'"):
        read_submission(p)
    q = tmp_path / "uids.csv"
    q.write_text("1.2\n1.3\n1.2\n")
    with pytest.raises(InputError, match="line 3: seriesuid 1.2 repeats line 1"):
        read_seriesuids(q)
    q.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InputError, match="uids.csv"):
        read_seriesuids(q)
    with pytest.raises(InputError, match="no such file"):
        read_annotations(tmp_path / "missing.csv")


def test_findings_conversion():
    a = Annotation(10.5, -20.0, 30.25, 6.0)
    f = annotation_to_finding(UID, a)
    assert isinstance(f, Finding) and f.center_lps == (10.5, -20.0, 30.25) and f.source == UID
    assert finding_to_annotation(f) == a
    assert annotation_to_finding(UID, Annotation(0, 0, 0, -1)).diameter_mm is None
    det = [Finding((1, 2, 3), score=0.7, score_kind="probability"), Finding((4, 5, 6), score=0.2)]
    rows = findings_to_submission(UID, det)
    assert rows == [SubmissionRow(UID, 1, 2, 3, 0.7), SubmissionRow(UID, 4, 5, 6, 0.2)]
    back = submission_to_findings(rows)
    assert [b.center_lps for b in back] == [(1, 2, 3), (4, 5, 6)] and back[0].score == 0.7


DIRECTIONS = {
    "identity": np.eye(3),
    "flip-xy (LUNA16 style)": np.diag([-1.0, -1.0, 1.0]),
    "flip-z": np.diag([1.0, 1.0, -1.0]),
    "permuted": np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0]], float),  # i along +y, j along -z, k along -x
}


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_annotation_voxel_roundtrip_against_simpleitk(tmp_path, name):
    d = DIRECTIONS[name]
    shape = (20, 24, 28)  # (k, j, i)
    arr = np.full(shape, -1000, np.int16)
    k, j, i = 13, 5, 21
    arr[k, j, i] = 500  # the "nodule"
    vol = Volume.from_array(arr, spacing=(0.7, 0.8, 2.5), origin=(-90.0, 120.0, -310.0), direction=d)
    path = write_volume(vol, tmp_path / "scan.mhd", sidecar=False)
    header = dict(line.split(" = ", 1) for line in path.read_text().splitlines())
    # MetaIO lists the i, j, k axis vectors one after another: the columns of Geometry.direction
    np.testing.assert_array_equal(np.array(header["TransformMatrix"].split(), float).reshape(3, 3).T, d)
    img = sitk.ReadImage(str(path))
    # the world position of the bright voxel as SimpleITK computes it, written as a LUNA16 annotation
    world = img.TransformIndexToPhysicalPoint((i, j, k))
    ann = Annotation(*world, 5.0)
    if name != "identity":  # a reader ignoring the direction would land elsewhere
        naive = (np.asarray(world) - np.asarray(img.GetOrigin())) / np.asarray(img.GetSpacing())
        assert not np.allclose(naive, (i, j, k))
    ijk = annotations_to_voxel([ann], vol.geometry)[0]
    np.testing.assert_allclose(ijk, (i, j, k), atol=1e-9)
    np.testing.assert_allclose(ijk, img.TransformPhysicalPointToContinuousIndex(world), atol=1e-9)
    (idx,) = annotations_to_array_index([ann], vol.geometry)
    assert idx == (k, j, i) and sitk.GetArrayFromImage(img)[idx] == 500
    back = voxel_to_annotation(ijk, vol.geometry, 5.0)
    np.testing.assert_allclose(back.center, world, atol=1e-9)
    assert annotations_to_array_index([Annotation(1e4, 0, 0, 5)], vol.geometry) == [None]
