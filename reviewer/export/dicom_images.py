"""Image series for exports: the source series read back with its datasets, or written from a Volume.

A Volume the app made (a reconstruction, an image with an inserted nodule or FNAF) becomes a *derived* series:
ImageType DERIVED\\SECONDARY, a SeriesDescription that says what was done, a DerivationDescription, new series
and SOP UIDs in the source's study and frame of reference, and a SourceImageSequence per slice pointing at the
source slice it came from. A source that is not DICOM (NIfTI, MHD, NRRD, the demo CT) is written the same way
as a new CT or MR series (ImageType DERIVED\\PRIMARY, "built by reviewer from ..." in its SeriesDescription) so
that SR and SEG objects have images to reference.
"""

from __future__ import annotations

import datetime as _dt
from typing import Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid
from pydicom.valuerep import DS

import reviewer
from reviewer.errors import InputError
from reviewer.geometry import Volume

# attributes a new series inherits from its source (patient, study, frame of reference, de-identification)
INHERITED = ("SpecificCharacterSet", "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge",
             "PatientIdentityRemoved", "DeidentificationMethod", "DeidentificationMethodCodeSequence",
             "LongitudinalTemporalInformationModified", "StudyInstanceUID", "StudyDate", "StudyTime",
             "ReferringPhysicianName", "StudyID", "AccessionNumber", "StudyDescription", "FrameOfReferenceUID",
             "PositionReferenceIndicator", "BodyPartExamined", "PatientPosition")
SOP_CLASSES = {"CT": CTImageStorage, "MR": MRImageStorage}


def source_datasets(volume: Volume) -> list[Dataset] | None:
    """The source slices of a DICOM volume, in the volume's k order, with pixels; None for other sources.

    Enhanced multi-frame sources also give None: exports then write a reviewer-built series for them.
    """
    meta = volume.metadata or {}
    files = meta.get("files")
    if meta.get("format") != "dicom" or not files or meta.get("frames"):
        return None
    if len(files) != volume.shape[0]:
        return None
    out = []
    for f in files:
        try:
            out.append(pydicom.dcmread(f))
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            raise InputError(f, f"cannot read the source image again ({exc})") from None
    return out


def choose_modality(volume: Volume, requested: str = "") -> str:
    """CT or MR for a series built from a volume: the requested one, the volume's, else CT when it holds HU."""
    mod = (requested or volume.modality or "").upper()
    if mod in SOP_CLASSES:
        return mod
    from reviewer.io.itk_io import looks_like_ct

    return "CT" if volume.unit == "HU" or looks_like_ct(volume.array) else "MR"


def _encode(array: np.ndarray, modality: str) -> tuple[np.ndarray, float, float, int]:
    """Stored integer pixels, slope, intercept and pixel representation for ``array`` (values = slope*x + b)."""
    a = np.asarray(array)
    if a.dtype.kind == "f" and a.size and np.all(np.isfinite(a)) and np.array_equal(a, np.rint(a)):
        a = a.astype(np.int64)  # integral floats (e.g. 8-bit images read as float) are stored exactly
    if modality == "MR" and a.dtype.kind in "iub" and a.size and a.min() >= 0 and a.max() <= 65535:
        return a.astype(np.uint16), 1.0, 0.0, 0
    if modality != "MR" and a.dtype.kind in "iub" and a.size and a.min() >= -32768 and a.max() <= 32767:
        return a.astype(np.int16), 1.0, 0.0, 1
    f = np.nan_to_num(a.astype(np.float64))
    lo, hi = (float(f.min()), float(f.max())) if f.size else (0.0, 1.0)
    slope = float(DS((hi - lo) / 65535.0, auto_format=True)) if hi > lo else 1.0
    intercept = float(DS(lo, auto_format=True))
    stored = np.clip(np.rint((f - intercept) / slope), 0, 65535).astype(np.uint16)
    return stored, slope, intercept, 0


def _ds(v: float) -> DS:
    return DS(float(v), auto_format=True)


def write_image_series(volume: Volume, header: Dataset | None, *, modality: str, series_description: str,
                       derivation: str = "", derivation_code: tuple[str, str] | None = None,
                       sources: Sequence[Dataset] | None = None, series_number: int = 900, primary: bool = False,
                       series_uid: str | None = None, study_uid: str | None = None, frame_uid: str | None = None) -> list[Dataset]:
    """One single-frame CT/MR dataset per k slice of ``volume``, geometry from its Geometry (LPS).

    ``header``: a (de-identified) source dataset whose patient / study / frame-of-reference attributes the new
    series inherits; without it, a new study with the given UIDs is made. ``sources``: source slices referenced
    by the SourceImageSequence (the nearest source slice of each new slice).
    """
    modality = modality.upper()
    sop_class = SOP_CLASSES[modality]
    g = volume.geometry
    d = g.direction_matrix
    stored, slope, intercept, pixel_rep = _encode(volume.array, modality)
    if volume.default_window:
        width, level = volume.default_window
    else:
        lo, hi = volume.robust_range(0.5, 99.5)
        width, level = max(hi - lo, 1.0), (hi + lo) / 2.0
    now = _dt.datetime.now()
    series_uid = series_uid or generate_uid()
    study_uid, frame_uid = study_uid or generate_uid(), frame_uid or generate_uid()  # one study, one frame
    src_pos = None
    if sources:
        src_pos = np.array([[float(v) for v in s.ImagePositionPatient] for s in sources])
    out = []
    for k in range(g.shape[0]):
        ds = Dataset()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        sop_uid = generate_uid()
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationVersionName = f"REVIEWER_{reviewer.__version__}"[:16]
        ds.file_meta = meta
        if header is not None:
            for kw in INHERITED:
                if kw in header:
                    ds[kw] = header[kw]
        else:
            ds.SpecificCharacterSet = "ISO_IR 192"
            ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "", "", "", ""
            ds.StudyInstanceUID = study_uid
            ds.StudyDate, ds.StudyTime = "", ""  # unknown: the volume carries no acquisition date
            ds.ReferringPhysicianName, ds.StudyID, ds.AccessionNumber = "", "", ""
            ds.FrameOfReferenceUID = frame_uid
            ds.PositionReferenceIndicator = ""
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
        ds.Modality = modality
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = series_number
        ds.SeriesDescription = series_description[:64]
        ds.SeriesDate, ds.SeriesTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
        ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
        ds.InstanceCreationDate, ds.InstanceCreationTime = ds.ContentDate, ds.ContentTime
        if "PatientPosition" not in ds:
            ds.PatientPosition = ""
        if "BodyPartExamined" not in ds:
            ds.Laterality = ""  # type 2C: needed unless the body part says it is not a paired structure
        ds.Manufacturer = "reviewer"
        ds.ManufacturerModelName = "reviewer"
        ds.SoftwareVersions = reviewer.__version__
        ds.ImageType = ["DERIVED", "PRIMARY" if primary else "SECONDARY", "AXIAL" if modality == "CT" else "OTHER"]
        if derivation:
            ds.DerivationDescription = derivation[:1024]
        if derivation_code:
            code = Dataset()
            code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = derivation_code[0], "DCM", \
                derivation_code[1]
            ds.DerivationCodeSequence = DicomSequence([code])
        ds.InstanceNumber = k + 1
        ds.AcquisitionNumber = ""
        ipp = g.voxel_to_world((0.0, 0.0, float(k)))
        ds.ImagePositionPatient = [_ds(v) for v in ipp]
        ds.ImageOrientationPatient = [_ds(v) for v in list(d[:, 0]) + list(d[:, 1])]
        ds.PixelSpacing = [_ds(g.spacing[1]), _ds(g.spacing[0])]
        ds.SliceThickness = _ds(g.spacing[2])
        ds.SliceLocation = _ds(float(np.dot(ipp, np.cross(d[:, 0], d[:, 1]))))
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = g.shape[1], g.shape[2]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, pixel_rep
        if modality == "CT":
            ds.RescaleIntercept, ds.RescaleSlope = _ds(intercept), _ds(slope)
            ds.RescaleType = "HU"
            ds.KVP = header.get("KVP", "") if header is not None else ""
            ds.WindowCenter, ds.WindowWidth = _ds(level), _ds(width)
        else:  # the MR IOD has no modality LUT: float intensities are stored linearly scaled (exact in NIfTI)
            ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "RM", "NONE", ""
            ds.MRAcquisitionType, ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength = "2D", "", "", ""
            ds.WindowCenter, ds.WindowWidth = _ds((level - intercept) / slope), _ds(max(width / slope, 1.0))
        ds.BurnedInAnnotation = "NO"
        if src_pos is not None:
            nearest = int(np.argmin(np.linalg.norm(src_pos - ipp[None, :], axis=1)))
            ref = Dataset()
            ref.ReferencedSOPClassUID = sources[nearest].SOPClassUID
            ref.ReferencedSOPInstanceUID = sources[nearest].SOPInstanceUID
            purpose = Dataset()
            purpose.CodeValue, purpose.CodingSchemeDesignator = "121322", "DCM"
            purpose.CodeMeaning = "Source image for image processing operation"
            ref.PurposeOfReferenceCodeSequence = DicomSequence([purpose])
            ds.SourceImageSequence = DicomSequence([ref])
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        out.append(ds)
    return out


def save_series(datasets: Sequence[Dataset], folder, prefix: str) -> list:
    """Write datasets as PREFIX_0001.dcm ...; returns the paths."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, ds in enumerate(datasets, 1):
        p = folder / f"{prefix}_{n:04d}.dcm"
        ds.save_as(p, enforce_file_format=True)
        paths.append(p)
    return paths

