"""Per-file DICOM header records: what the catalog groups by and what the loaders need, read without pixels.

Reading stops before PixelData; for uncompressed little-endian files we remember where the pixel bytes start so
the loader can read them straight into the output array (see :mod:`reviewer.io.dicom_pixels`). Such files are
parsed by :mod:`reviewer.io.fast_header` (several times faster than pydicom); anything else, and anything the fast
parser declines, by pydicom.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Any

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from reviewer.errors import InputError
from reviewer.io import fast_header

# SOP classes that are not images, by UID prefix (SR, RT objects except RT Image/Dose, presentation states,
# key object selection, encapsulated documents, raw data, waveforms, spectroscopy).
NON_IMAGE_SOP_PREFIXES = {
    "1.2.840.10008.5.1.4.1.1.88.": "Structured Report",
    "1.2.840.10008.5.1.4.1.1.481.3": "RT Structure Set",
    "1.2.840.10008.5.1.4.1.1.481.5": "RT Plan",
    "1.2.840.10008.5.1.4.1.1.481.8": "RT Ion Plan",
    "1.2.840.10008.5.1.4.1.1.481.4": "RT Beams Treatment Record",
    "1.2.840.10008.5.1.4.1.1.11.": "Presentation State",
    "1.2.840.10008.5.1.4.1.1.104.": "Encapsulated Document",
    "1.2.840.10008.5.1.4.1.1.66": "Raw Data / Registration",
    "1.2.840.10008.5.1.4.1.1.9.": "Waveform",
    "1.2.840.10008.5.1.4.1.1.4.2": "MR Spectroscopy",
}
ENHANCED_HINT = "Enhanced"

HEADER_TAGS = [
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID",
    "PatientName", "PatientID", "StudyDate", "StudyDescription", "SeriesDescription", "SeriesNumber", "Modality",
    "Rows", "Columns", "NumberOfFrames", "ImagePositionPatient", "ImageOrientationPatient", "InstanceNumber",
    "AcquisitionNumber", "TemporalPositionIdentifier", "EchoNumbers", "PixelSpacing", "SliceThickness",
    "SpacingBetweenSlices", "RescaleSlope", "RescaleIntercept", "RescaleType", "WindowCenter", "WindowWidth",
    "PhotometricInterpretation", "BitsAllocated", "BitsStored", "PixelRepresentation", "SamplesPerPixel",
    "ImageType", "KVP", "ConvolutionKernel", "Manufacturer", "PixelPaddingValue", "PlanarConfiguration",
]


def sop_class_kind(sop_class_uid: str, has_rows: bool) -> tuple[str, str]:
    """('image' | 'non-image', human name of the SOP class)."""
    uid = str(sop_class_uid or "")
    name = UID(uid).name if uid else "unknown SOP class"
    for prefix, label in NON_IMAGE_SOP_PREFIXES.items():
        if uid.startswith(prefix):
            return "non-image", label if name == uid else name
    return ("image" if has_rows else "non-image"), name


def _float_list(value: Any) -> list[float] | None:
    if value is None:
        return None
    try:
        if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
            return [float(v) for v in value]
        return [float(value)]
    except (TypeError, ValueError):
        return None


def _first_float(value: Any) -> float | None:
    vals = _float_list(value)
    return vals[0] if vals else None


def _str(value: Any) -> str:
    return "" if value is None else str(value).strip()


@dataclass
class FileHeader:
    path: str
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_uid: str = ""
    series_uid: str = ""
    frame_of_reference_uid: str = ""
    patient_name: str = ""
    patient_id: str = ""
    study_date: str = ""
    study_description: str = ""
    series_description: str = ""
    series_number: int | None = None
    modality: str = ""
    rows: int = 0
    columns: int = 0
    n_frames: int = 1
    ipp: list[float] | None = None
    iop: list[float] | None = None
    instance_number: int | None = None
    acquisition_number: int | None = None
    temporal_position: int | None = None
    echo_number: int | None = None
    pixel_spacing: list[float] | None = None
    slice_thickness: float | None = None
    spacing_between_slices: float | None = None
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    rescale_type: str = ""
    window: tuple[float, float] | None = None  # (width, level)
    photometric: str = "MONOCHROME2"
    bits_allocated: int = 16
    bits_stored: int = 16
    pixel_representation: int = 0
    samples_per_pixel: int = 1
    image_type: list[str] = field(default_factory=list)
    kvp: float | None = None
    convolution_kernel: str = ""
    manufacturer: str = ""
    transfer_syntax: str = ""
    pixel_offset: int | None = None  # byte offset of the PixelData value when it can be read raw
    pixel_length: int | None = None
    kind: str = "image"
    sop_class_name: str = ""

    @property
    def is_multiframe(self) -> bool:
        return self.n_frames > 1 or ENHANCED_HINT in self.sop_class_name


def _str_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _int(value: Any) -> int | None:
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        value = value[0] if value else None
    try:
        return None if value is None or value == "" else int(float(value))
    except (TypeError, ValueError):
        return None


_STRING_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "SH", "TM", "UI"}
_TAGS = {kw: tag_for_keyword(kw) for kw in HEADER_TAGS}


def _fast_getter(ds: pydicom.Dataset):
    """``ds.get`` that decodes raw ASCII/US values itself: pydicom's generic conversion dominates scan time."""
    raw_dict = ds._dict

    def get(keyword: str, default: Any = None) -> Any:
        tag = _TAGS.get(keyword)
        elem = raw_dict.get(tag) if tag is not None else None
        if elem is None:
            return ds.get(keyword, default) if tag is None else default
        if isinstance(elem, RawDataElement) and elem.VR is not None and elem.value is not None:
            vr, val = elem.VR, elem.value
            if vr in _STRING_VRS:
                text = val.decode("latin-1").strip(" \x00")
                if text == "":
                    return default
                return text.split("\\") if "\\" in text else text
            if vr == "US" and len(val) == 2:
                return struct.unpack("<H" if elem.is_little_endian else ">H", val)[0]
        return ds.get(keyword, default)

    return get


def header_from_dataset(ds: pydicom.Dataset, path: str) -> FileHeader:
    meta = getattr(ds, "file_meta", None)
    ts = _str(meta.get("TransferSyntaxUID")) if meta is not None else ""
    return header_from_getter(_fast_getter(ds), path, ts)


def header_from_getter(g, path: str, transfer_syntax: str) -> FileHeader:
    """Build the FileHeader from ``g(keyword, default=None)``: pydicom's dataset or the fast parser's values."""
    window = None
    wc, ww = _first_float(g("WindowCenter")), _first_float(g("WindowWidth"))
    if wc is not None and ww is not None and ww > 0:
        window = (ww, wc)
    kernel = g("ConvolutionKernel")
    if isinstance(kernel, (list, tuple, pydicom.multival.MultiValue)):
        kernel = "\\".join(str(k) for k in kernel)
    h = FileHeader(
        path=path,
        sop_class_uid=_str(g("SOPClassUID")),
        sop_instance_uid=_str(g("SOPInstanceUID")),
        study_uid=_str(g("StudyInstanceUID")),
        series_uid=_str(g("SeriesInstanceUID")),
        frame_of_reference_uid=_str(g("FrameOfReferenceUID")),
        patient_name=_str(g("PatientName")),
        patient_id=_str(g("PatientID")),
        study_date=_str(g("StudyDate")),
        study_description=_str(g("StudyDescription")),
        series_description=_str(g("SeriesDescription")),
        series_number=_int(g("SeriesNumber")),
        modality=_str(g("Modality")),
        rows=_int(g("Rows")) or 0,
        columns=_int(g("Columns")) or 0,
        n_frames=_int(g("NumberOfFrames")) or 1,
        ipp=_float_list(g("ImagePositionPatient")),
        iop=_float_list(g("ImageOrientationPatient")),
        instance_number=_int(g("InstanceNumber")),
        acquisition_number=_int(g("AcquisitionNumber")),
        temporal_position=_int(g("TemporalPositionIdentifier")),
        echo_number=_int(_first_float(g("EchoNumbers"))),
        pixel_spacing=_float_list(g("PixelSpacing")),
        slice_thickness=_first_float(g("SliceThickness")),
        spacing_between_slices=_first_float(g("SpacingBetweenSlices")),
        rescale_slope=_first_float(g("RescaleSlope")) or 1.0,
        rescale_intercept=_first_float(g("RescaleIntercept")) or 0.0,
        rescale_type=_str(g("RescaleType")),
        window=window,
        photometric=_str(g("PhotometricInterpretation")) or "MONOCHROME2",
        bits_allocated=_int(g("BitsAllocated")) or 16,
        bits_stored=_int(g("BitsStored")) or _int(g("BitsAllocated")) or 16,
        pixel_representation=_int(g("PixelRepresentation")) or 0,
        samples_per_pixel=_int(g("SamplesPerPixel")) or 1,
        image_type=_str_list(g("ImageType")),
        kvp=_first_float(g("KVP")),
        convolution_kernel=_str(kernel),
        manufacturer=_str(g("Manufacturer")),
    )
    h.transfer_syntax = transfer_syntax
    h.kind, h.sop_class_name = sop_class_kind(h.sop_class_uid, h.rows > 0 and h.columns > 0)
    if h.ipp is not None and len(h.ipp) != 3:
        h.ipp = None
    if h.iop is not None and len(h.iop) != 6:
        h.iop = None
    return h


USE_FAST_PARSER = True  # False: always pydicom (tests compare the two)
_FAST_WANTED = fast_header.wanted_tags(HEADER_TAGS)

RAW_SYNTAXES = {pydicom.uid.ExplicitVRLittleEndian: False, pydicom.uid.ImplicitVRLittleEndian: True}


def _locate_pixel_data(fp, transfer_syntax: str) -> tuple[int | None, int | None]:
    """With ``fp`` positioned where pydicom stopped (before PixelData), return (value offset, length)."""
    if transfer_syntax not in RAW_SYNTAXES:
        return None, None
    implicit = RAW_SYNTAXES[transfer_syntax]
    start = fp.tell()
    head = fp.read(8 if implicit else 12)
    if len(head) < 8:
        return None, None
    group, elem = struct.unpack("<HH", head[:4])
    if (group, elem) != (0x7FE0, 0x0010):
        return None, None
    if implicit:
        (length,) = struct.unpack("<I", head[4:8])
        offset = start + 8
    else:
        vr = head[4:6]
        if vr not in (b"OW", b"OB", b"OX", b"UN"):
            return None, None
        (length,) = struct.unpack("<I", head[8:12])
        offset = start + 12
    if length == 0xFFFFFFFF:
        return None, None  # encapsulated
    return offset, length


def _expected_pixel_bytes(header: FileHeader) -> int:
    return header.rows * header.columns * header.samples_per_pixel * header.n_frames * \
        (header.bits_allocated // 8 if header.bits_allocated >= 8 else 1)


def _read_header_fast(p: str) -> FileHeader | None:
    """The fast parser's header when it can tell everything the pydicom path would; else None."""
    fh = fast_header.parse(p, _FAST_WANTED)
    if fh is None or fh.n_elements == 0:
        return None
    header = header_from_getter(fh.values.get, p, fh.transfer_syntax)
    if header.kind == "image":
        if fh.pixel_length >= _expected_pixel_bytes(header) and \
                fh.pixel_offset + _expected_pixel_bytes(header) <= fh.size:
            header.pixel_offset, header.pixel_length = fh.pixel_offset, fh.pixel_length
        else:
            return None  # short or truncated pixel data: the pydicom path words the problem
    return header


def read_header(path: str | os.PathLike, full: bool = False) -> tuple[FileHeader, pydicom.Dataset | None]:
    """Parse a file's header (never its pixels). ``full`` keeps every element (needed for enhanced objects).

    Without ``full`` the fast parser (:mod:`reviewer.io.fast_header`) reads the common files (uncompressed
    little endian) and no dataset is returned (None); anything else is read by pydicom.
    Raises InputError naming the file when it is not DICOM or is damaged.
    """
    p = os.fspath(path)
    if not full and USE_FAST_PARSER:
        header = _read_header_fast(p)
        if header is not None:
            return header, None
    try:
        with open(p, "rb") as fp:
            ds = pydicom.dcmread(fp, stop_before_pixels=True, specific_tags=None if full else HEADER_TAGS)
            ts = _str(ds.file_meta.get("TransferSyntaxUID")) if getattr(ds, "file_meta", None) else ""
            offset, length = _locate_pixel_data(fp, ts)
            size = os.fstat(fp.fileno()).st_size
            at_eof = fp.tell() >= size
    except InvalidDicomError:
        raise InputError(p, "not a DICOM file (no 'DICM' marker and no readable DICOM header)") from None
    except (EOFError, struct.error, ValueError, OSError, KeyError, TypeError, AttributeError, NotImplementedError) as exc:
        raise InputError(p, f"damaged or truncated DICOM file ({type(exc).__name__}: {exc})") from None
    header = header_from_dataset(ds, p)
    meta_class = str(ds.file_meta.get("MediaStorageSOPClassUID", "")) if getattr(ds, "file_meta", None) else ""
    if len(ds) == 0 or (at_eof and offset is None and not header.rows and "Image" in UID(meta_class).name):
        raise InputError(p, "truncated DICOM file: the header ends before the image attributes and pixel data")
    if header.kind == "image":
        expected = _expected_pixel_bytes(header)
        if offset is not None and length is not None and length >= expected and offset + expected <= size:
            header.pixel_offset, header.pixel_length = offset, length
        elif offset is not None and length is not None and offset + min(length, expected) > size:
            raise InputError(p, f"truncated DICOM file: pixel data needs {expected} bytes, "
                                f"file ends {size - offset} bytes after the pixel data start")
        elif offset is None and ts in RAW_SYNTAXES and header.bits_allocated >= 8:
            raise InputError(p, "truncated or damaged DICOM file: no pixel data found")
    return header, ds
