"""Small synthetic DICOM series with known geometry, written with pydicom (for tests and demos)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def ct_dataset(study_uid: str, series_uid: str, frame_uid: str) -> Dataset:
    """An empty explicit-VR-little-endian CT image dataset with fresh SOP UIDs, ready for attributes."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    sop = generate_uid()
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
    return ds


def write_series(folder: Path, positions, iop=(1, 0, 0, 0, 1, 0), rows=6, cols=5, spacing=(0.7, 0.9),
                 slope=1.0, intercept=-1024.0, photometric="MONOCHROME2", pixel_rep=0, bits_stored=12,
                 instance_numbers=None, names=None, geometry=True, series_uid=None, seed=0, extra=None):
    """Write one file per position; pixel value encodes (slice index in ``positions``, row, column)."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study = generate_uid()
    files, arrays = [], []
    for n, ipp in enumerate(positions):
        ds = ct_dataset(study, series_uid, "1.2.3.4")
        ds.PatientName, ds.PatientID, ds.Modality, ds.StudyDate = "Test^Synth", "P1", "CT", "20240102"
        ds.SeriesDescription, ds.SeriesNumber = "synthetic", 3
        ds.InstanceNumber = (instance_numbers[n] if instance_numbers is not None else n + 1)
        if geometry:
            ds.ImagePositionPatient = [float(v) for v in ipp]
            ds.ImageOrientationPatient = [float(v) for v in iop]
        ds.PixelSpacing = [spacing[0], spacing[1]]
        ds.SliceThickness = 1.0
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, \
            pixel_rep
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.WindowCenter, ds.WindowWidth = 40, 400
        for k, v in (extra or {}).items():
            setattr(ds, k, v)
        arr = (n * 100 + np.arange(rows)[:, None] * 10 + np.arange(cols)[None, :]).astype(np.uint16 if not pixel_rep
                                                                                          else np.int16)
        ds.PixelData = arr.tobytes()
        name = folder / (names[n] if names is not None else f"im{n:03d}.dcm")
        ds.save_as(name, enforce_file_format=True)
        files.append(name)
        arrays.append(arr)
    return files, arrays
