"""The PS3.15 basic profile as applied by Deidentifier: actions per attribute, UID map, dates, text scrubbing."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage

from reviewer.export.deid import REMOVED, Deidentifier
from reviewer.export.deid_profile import BASIC_PROFILE, describe_profile


def _source() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "1.2.3.4.5.6.7.100"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.2"
    ds.FrameOfReferenceUID = "1.2.3.4.5.6.7.3"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^Janet", "MRN12345678", "19600101"
    ds.PatientSex, ds.PatientAge, ds.PatientWeight = "F", "064Y", 71.5
    ds.OtherPatientIDs, ds.PatientAddress = "OLD-9912", "12 Elm Street"
    ds.AccessionNumber, ds.InstitutionName, ds.DeviceSerialNumber = "A7788", "General Hospital", "SN4471"
    ds.StudyDate, ds.SeriesDate, ds.AcquisitionDateTime = "20200301", "20200302", "20200302101500"
    ds.StudyTime, ds.SeriesTime = "101010", "101500"
    ds.StudyDescription, ds.SeriesDescription = "CT chest Doe follow-up", "Lung 1 mm"
    ds.ImageComments = "Janet was anxious"
    ds.Manufacturer, ds.ConvolutionKernel = "ACME", "B70f"
    ds.ReferringPhysicianName = "House^Gregory"
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = CTImageStorage, "1.2.3.4.5.6.7.101"
    ds.ReferencedImageSequence = Sequence([ref])
    other = Dataset()
    other.PatientID = "SSN-123-45-6789"
    ds.OtherPatientIDsSequence = Sequence([other])
    ds.add_new(0x00291010, "LO", "private Doe info")
    ds.add_new(0x50000010, "US", 1)  # a curve
    ds.add_new(0x60000022, "LO", "overlay of Janet")
    return ds


def test_profile_actions_per_attribute():
    d = Deidentifier()
    ds = d.apply(_source())
    assert str(ds.PatientName).startswith("ANON-") and ds.PatientID.startswith("ANON-")
    assert ds.PatientID == str(ds.PatientName).rstrip("^")  # one pseudonym
    assert ds.PatientBirthDate == "" and ds.PatientSex == "" and ds.AccessionNumber == ""  # Z
    for kw in ("PatientAge", "PatientWeight", "OtherPatientIDs", "PatientAddress", "InstitutionName",
               "DeviceSerialNumber", "ImageComments", "OtherPatientIDsSequence", "SeriesDate", "SeriesTime",
               "AcquisitionDateTime"):
        assert kw not in ds, kw  # X (and dates / times without the shift option)
    assert ds.StudyDate == "" and ds.StudyTime == ""  # type 2: kept empty
    assert "StudyDescription" not in ds  # C: it named the patient
    assert ds.SeriesDescription == "Lung 1 mm" and ds.ConvolutionKernel == "B70f" and ds.Manufacturer == "ACME"
    assert ds.ReferringPhysicianName == ""
    assert not any(e.tag.is_private for e in ds)
    assert not any(0x5000 <= e.tag.group <= 0x60FF for e in ds)  # curves and overlays
    assert ds.PatientIdentityRemoved == "YES" and ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100", "113105"]


def test_uids_map_consistently_and_references_follow():
    d = Deidentifier(key=b"k" * 32)
    a, b = d.apply(_source()), d.apply(_source())
    assert a.SOPInstanceUID == b.SOPInstanceUID != "1.2.3.4.5.6.7.100"
    assert a.SOPClassUID == CTImageStorage  # registered UIDs are kept
    assert a.ReferencedImageSequence[0].ReferencedSOPInstanceUID == d.map_uid("1.2.3.4.5.6.7.101")
    assert a.FrameOfReferenceUID == d.map_uid("1.2.3.4.5.6.7.3")
    assert pydicom.uid.UID(a.SOPInstanceUID).is_valid and len(a.SOPInstanceUID) <= 64
    other = Deidentifier(key=b"x" * 32)
    assert other.map_uid("1.2.3.4.5.6.7.100") != a.SOPInstanceUID  # another key, another map
    assert Deidentifier(key=b"k" * 32).map_uid("1.2.3.4.5.6.7.100") == a.SOPInstanceUID  # deterministic


def test_date_shift_keeps_intervals_and_times():
    d = Deidentifier(shift_days=-10)
    ds = d.apply(_source())
    assert ds.StudyDate == "20200220" and ds.SeriesDate == "20200221"
    assert ds.AcquisitionDateTime == "20200221101500"
    assert ds.StudyTime == "101010"  # times kept with the modified-dates option
    assert ds.PatientBirthDate == ""  # the birth date still follows the table
    assert "113107" in [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    with pytest.raises(ValueError):
        Deidentifier(shift_days=0)


def test_patient_characteristics_option():
    ds = Deidentifier(keep_patient_characteristics=True).apply(_source())
    assert ds.PatientAge == "064Y" and ds.PatientSex == "F"
    assert "113108" in [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]


def test_scrub_text_removes_identifying_values_and_maps_uids():
    d = Deidentifier()
    d.apply(_source())
    text = d.scrub_text("Doe^Janet (MRN12345678) seen 2020-03-01 in /data/Doe/1.2.3.4.5.6.7.2/")
    assert "Janet" not in text and "MRN12345678" not in text and "2020-03-01" not in text
    assert REMOVED in text and d.map_uid("1.2.3.4.5.6.7.2") in text
    assert d.scrub_json({"who": "Janet", "n": [1, "Doe"]}) == {"who": REMOVED, "n": [1, REMOVED]}


def test_burned_in_annotation_warns():
    src = _source()
    src.BurnedInAnnotation = "YES"
    d = Deidentifier()
    d.apply(src)
    assert any("BurnedInAnnotation" in w for w in d.warnings)


def test_profile_table_is_valid_data():
    from pydicom.datadict import tag_for_keyword

    assert set(BASIC_PROFILE.values()) <= set("DZXKCU")
    for kw in BASIC_PROFILE:
        assert tag_for_keyword(kw) is not None, kw
    groups = describe_profile()
    assert "PatientName" in groups["dummy"] and "InstitutionName" in groups["removed"]


def test_class_uids_are_kept_even_when_unregistered():
    src = _source()
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.3.12.2.1107.5.9.1"  # a vendor's private SOP class: a class, not an instance
    ref.ReferencedSOPInstanceUID = "1.2.3.4.5.6.7.999"
    src.SourceImageSequence = Sequence([ref])
    ds = Deidentifier().apply(src)
    item = ds.SourceImageSequence[0]
    assert item.ReferencedSOPClassUID == "1.3.12.2.1107.5.9.1"
    assert item.ReferencedSOPInstanceUID != "1.2.3.4.5.6.7.999"


def test_placeholder_identities_are_not_searched_for():
    src = _source()
    src.PatientName, src.OperatorsName, src.ReferringPhysicianName = "ANONYMOUS", "Unknown^", "ANON"
    d = Deidentifier()
    ds = d.apply(src)
    assert not {"ANONYMOUS", "Unknown", "ANON", "Unknown^"} & d.phi
    assert not d.contains_phi(str(ds.PatientName))  # our pseudonym ANON-... is not a leak
    assert "MRN12345678" in d.phi  # real identifiers still are


def test_dates_the_export_writes_itself_are_not_leaks():
    import datetime as dt

    src = _source()
    src.StudyDate = dt.date.today().strftime("%Y%m%d")  # a study acquired today
    d = Deidentifier(shift_days=-1)  # shifts the series date onto the original study date
    d.apply(src)
    searched = d.searchable()
    assert "20200301" not in searched  # the shifted series date (a date written by the export)
    assert src.StudyDate not in searched  # today's date is every new object's content date
    assert "20200302" in searched and "MRN12345678" in searched


def test_a_kept_attribute_holding_an_identifying_value_is_emptied():
    src = _source()
    src.InstitutionName = "Springfield General"
    src.Manufacturer = "Springfield General scanners"  # kept by the profile, but names the institution
    ds = Deidentifier().apply(src)
    assert "InstitutionName" not in ds and ds.Manufacturer == ""
