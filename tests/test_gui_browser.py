"""Study browser: a folder of small synthetic DICOM files (two CT series + one SR) scanned as a job."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pydicom = pytest.importorskip("pydicom")

from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402

from PySide6.QtCore import Qt  # noqa: E402

from reviewer.gui.browser import StudyBrowser  # noqa: E402
from reviewer.gui.jobs_qt import JobRunner  # noqa: E402
from reviewer.gui.notifications import Notifier  # noqa: E402

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def _base(sop_class: str, study_uid: str, series_uid: str, modality: str, number: int, desc: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Test^Patient"
    ds.PatientID = "P001"
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = "20240102"
    ds.StudyDescription = "Chest"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = number
    ds.SeriesDescription = desc
    ds.Modality = modality
    return ds


def write_ct_series(folder: Path, study_uid: str, number: int, desc: str, n: int = 4, rows: int = 24,
                    cols: int = 32) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    rng = np.random.default_rng(number)
    paths = []
    for k in range(n):
        ds = _base(CT_STORAGE, study_uid, series_uid, "CT", number, desc)
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-10.0, -12.0, 2.5 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.8, 0.8]
        ds.SliceThickness = 2.5
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = rng.integers(0, 1500, size=(rows, cols), dtype=np.int16).tobytes()
        p = folder / f"s{number:02d}_{k:03d}.dcm"
        ds.save_as(p, enforce_file_format=True)
        paths.append(p)
    return paths


def write_sr(folder: Path, study_uid: str) -> Path:
    ds = _base(BASIC_TEXT_SR, study_uid, generate_uid(), "SR", 99, "Radiology report")
    ds.InstanceNumber = 1
    p = folder / "report.dcm"
    ds.save_as(p, enforce_file_format=True)
    return p


def write_study(folder: Path) -> Path:
    """Patient P001, one study: CT 'Lung 1mm' (4 slices, 32x24), CT 'Soft tissue' (3 slices), and an SR."""
    study_uid = generate_uid()
    write_ct_series(folder, study_uid, 1, "Lung 1mm", n=4)
    write_ct_series(folder, study_uid, 2, "Soft tissue", n=3)
    write_sr(folder, study_uid)
    return folder


@pytest.fixture
def study(tmp_path) -> Path:
    return write_study(tmp_path / "study")


@pytest.fixture
def browser(qtbot):
    runner = JobRunner()
    notifier = Notifier()
    b = StudyBrowser(runner, notifier)
    qtbot.addWidget(b)
    b.notifier = notifier
    yield b
    assert runner.shutdown(5000)


def _scan(qtbot, browser, path):
    with qtbot.waitSignal(browser.scanFinished, timeout=20_000) as blocker:
        browser.scan([path])
    return blocker.args[0]


def test_tree_groups_patient_study_series_and_greys_sr(qtbot, browser, study):
    catalog = _scan(qtbot, browser, study)
    assert catalog is not None
    rows = browser.rows()
    levels = [lvl for lvl, _ in rows]
    assert levels == ["patient", "study", "series", "series", "series"]
    assert "Test Patient" in rows[0][1][0] and "P001" in rows[0][1][0]
    assert rows[1][1][1] == "2024-01-02"
    series = [r for _, r in rows[2:]]
    lung = next(r for r in series if r[3] == "Lung 1mm")
    assert lung[0] == "Series 1" and lung[2] == "CT" and lung[4] == "4" and lung[5] == "32x24x4"
    sr = next(r for r in series if r[2] == "SR")
    assert "structured report" in sr[3] and "not an image" in sr[3]
    # the SR row is greyed
    idx = browser.index_of(next(i.uid for i in browser.series.values() if i.modality == "SR"))
    assert idx.isValid() and idx.data(Qt.ItemDataRole.ForegroundRole).color().getRgb()[:3] == (128, 128, 128)
    assert "2 image series" in browser.summary.text() and "1 non-image" in browser.summary.text()


def test_double_click_opens_images_and_explains_non_images(qtbot, browser, study):
    _scan(qtbot, browser, study)
    infos = list(browser.series.values())
    image = next(i for i in infos if i.kind == "image")
    sr = next(i for i in infos if i.kind != "image")
    opened = []
    browser.seriesActivated.connect(opened.append)
    browser.activate(browser.index_of(sr.uid))
    assert opened == []
    assert any("report.dcm" in m and "cannot be opened" in m for m in browser.notifier.messages("warning"))
    with qtbot.waitSignal(browser.seriesActivated, timeout=1000):
        browser.tree.doubleClicked.emit(browser.index_of(image.uid))
    assert opened == [image]


def test_filter_and_sort(qtbot, browser, study):
    _scan(qtbot, browser, study)
    browser.filter_edit.setText("soft")
    names = [r[3] for lvl, r in browser.rows() if lvl == "series"]
    assert names == ["Soft tissue"]
    assert [lvl for lvl, _ in browser.rows()][:2] == ["patient", "study"]  # parents stay visible
    browser.filter_edit.clear()
    browser.tree.sortByColumn(4, Qt.SortOrder.DescendingOrder)
    images = [r[4] for lvl, r in browser.rows() if lvl == "series"]
    assert images[:2] == ["4", "3"]


def test_corrupt_and_empty_give_notices(qtbot, browser, tmp_path):
    folder = write_study(tmp_path / "mixed")
    good = sorted(folder.glob("s01_*.dcm"))[0].read_bytes()
    (folder / "broken.dcm").write_bytes(good[:1000])  # header complete, pixel data truncated
    catalog = _scan(qtbot, browser, folder)
    assert catalog is not None and len([s for s in catalog.series if s.kind == "image"]) == 2
    assert any("broken.dcm" in m for m in browser.notifier.messages())
    empty = tmp_path / "empty"
    empty.mkdir()
    _scan(qtbot, browser, empty)
    assert any("empty" in m for m in browser.notifier.messages())
    assert browser.model.rowCount() == 1  # the earlier study is still listed
