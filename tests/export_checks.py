"""Helpers shared by the export tests: a DICOM source full of distinctive PHI, dciodvfy and a byte search."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from reviewer.io.synthetic import write_series

# distinctive identifying values written into the synthetic source (none occurs by chance in an export)
PHI = {
    "PatientName": "Quixotez^Dulcinea^Maribel",
    "PatientID": "PID-8675309-QX",
    "PatientBirthDate": "19431107",
    "PatientAddress": "742 Evergreen Terrace Springfield",
    "PatientTelephoneNumbers": "555-0199-2271",
    "OtherPatientIDs": "MRN-0042-77731",
    "PatientMotherBirthName": "Zumbado^Hortensia",
    "InstitutionName": "Saint Elsewherez General",
    "InstitutionAddress": "1 Hospital Plaza Gotham",
    "InstitutionalDepartmentName": "Radiology Zeta Wing",
    "AccessionNumber": "ACC-55501234",
    "DeviceSerialNumber": "SN-XK-99812",
    "StationName": "CTSTATION-ZEBRA",
    "ReferringPhysicianName": "Hibbertson^Julius",
    "OperatorsName": "Smithersby^Waylon",
    "PerformingPhysicianName": "Rivierazz^Nicholas",
    "NameOfPhysiciansReadingStudy": "Kildarez^James",
    "RequestingPhysician": "Welbyzz^Marcus",
    "ImageComments": "patient Dulcinea complained of chest pain on Tuesday",
    "StudyComments": "follow-up requested by Dr Hibbertson",
    "PatientComments": "allergic to penicillin, lives alone",
    "StudyDescription": "CT chest Quixotez screening",
    "StudyID": "STUDY-7734-QQ",
    "StudyDate": "19990817",
    "SeriesDate": "19990820",
    "AcquisitionDate": "19990820",
    "ContentDate": "19990820",
    "StudyTime": "081522.123",
    "MedicalRecordLocator": "SHELF-B-4471",
}
PRIVATE_PHI = "Quixotez private note"
FRAME_UID = "1.2.826.0.1.3680043.9.7433.77.1"
# how dates may be spelled outside DICOM (paths, JSON, captions)
DATE_FORMS = ("19990817", "1999-08-17", "08-17-1999", "19990820", "1999-08-20", "19431107", "1943-11-07")


def write_phi_series(folder: Path, n: int = 6, rows: int = 24, cols: int = 20) -> list[Path]:
    """A small CT series whose headers carry every kind of identifying value (and a burned-in flag)."""
    files, _ = write_series(folder, [(-20.0, -15.0, 10.0 + 2.5 * k) for k in range(n)], rows=rows, cols=cols,
                            spacing=(0.8, 0.8))
    for f in files:
        ds = pydicom.dcmread(f)
        for k, v in PHI.items():
            setattr(ds, k, v)
        ds.FrameOfReferenceUID = FRAME_UID
        # the rest of a valid CT image, so dciodvfy judges the export, not the test data
        ds.ImageType, ds.KVP, ds.AcquisitionNumber, ds.Manufacturer = ["ORIGINAL", "PRIMARY", "AXIAL"], 120, 1, "ACME"
        ds.PositionReferenceIndicator, ds.PatientPosition, ds.PatientSex = "", "HFS", "F"
        ds.BodyPartExamined = "CHEST"
        block = ds.private_block(0x0011, "ACME PHI", create=True)
        block.add_new(0x01, "LO", PRIVATE_PHI)
        ref = Dataset()
        ref.ReferencedSOPClassUID = ds.SOPClassUID
        ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
        ds.ReferencedImageSequence = Sequence([ref])
        req = Dataset()
        req.RequestedProcedureDescription = "chest CT for Quixotez"
        req.ScheduledProcedureStepID = "SPS-99127"
        ds.RequestAttributesSequence = Sequence([req])
        # an overlay plane whose description names the patient (overlays are removed entirely)
        ds.add_new(0x60000010, "US", rows)
        ds.add_new(0x60000011, "US", cols)
        ds.add_new(0x60000040, "CS", "G")
        ds.add_new(0x60000050, "SS", [1, 1])
        ds.add_new(0x60000100, "US", 1)
        ds.add_new(0x60000102, "US", 0)
        ds.add_new(0x60000022, "LO", "overlay about Quixotez")
        ds.add_new(0x60003000, "OW", bytes((rows * cols + 15) // 16 * 2))
        ds.BurnedInAnnotation = "YES"
        ds.save_as(f, enforce_file_format=True)
    return files


def identifying_values(datasets) -> set[str]:
    """Every identifying value of the source datasets: PHI strings and UIDs (for the byte search)."""
    values = set()
    for ds in datasets:
        for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
            if kw in ds:
                values.add(str(ds[kw].value))
    return values


def dicom_padded(value: str) -> list[bytes]:
    raw = value.encode("utf-8")
    forms = {raw, value.encode("latin-1", "ignore")}
    if len(raw) % 2:
        forms |= {raw + b" ", raw + b"\x00"}
    return [f for f in forms if f]


def file_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data += gzip.decompress(data)
    return data


def find_values(folder: Path, values) -> list[tuple[str, str]]:
    """(file, value) for every value (raw, UTF-8 or DICOM-padded) found in any file under ``folder``."""
    hits = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file():
            continue
        data = file_bytes(p)
        for v in values:
            if any(form in data for form in dicom_padded(v)):
                hits.append((str(p.relative_to(folder)), v))
    return hits


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) that dciodvfy reports for one file."""
    exe = shutil.which("dciodvfy")
    assert exe is not None
    proc = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    lines = (proc.stdout + proc.stderr).splitlines()
    return [ln for ln in lines if ln.startswith("Error")], [ln for ln in lines if ln.startswith("Warning")]


def dcentvfy(paths) -> tuple[list[str], list[str]]:
    """(errors, warnings) of dicom3tools' entity check: patient / study / series attributes agree across files."""
    exe = shutil.which("dcentvfy")
    assert exe is not None
    proc = subprocess.run([exe, *map(str, paths)], capture_output=True, text=True, timeout=120)
    lines = (proc.stdout + proc.stderr).splitlines()
    return [ln for ln in lines if ln.startswith("Error")], [ln for ln in lines if ln.startswith("Warning")]
