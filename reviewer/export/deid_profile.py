"""The DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile, as data.

Each entry maps an attribute keyword to its action (PS3.15 Table E.1-1):

* ``D`` replace with a dummy value (a pseudonym for patient name / ID),
* ``Z`` replace with a zero-length value (type 2 attributes the IOD still needs),
* ``X`` remove,
* ``K`` keep,
* ``C`` clean: keep the text only if it holds no identifying value of the source (else remove it),
* ``U`` replace the UID with one from the export's consistent map.

This is a documented subset: every identifying attribute a CT, MR, SR or SEG object can carry in practice, plus
generic rules that cover what the table does not list (:mod:`reviewer.export.deid` applies them):

* private tags (odd groups) are removed; curves (50xx) and overlays (60xx) are removed;
* any other Person Name (PN) element is removed; free text (LT, ST, UT) not listed as K is removed;
* every UID (UI) that is not a registered DICOM UID (SOP classes, transfer syntaxes, coding schemes) is mapped;
* every other date (DA, DT) is removed, or shifted with the Retain Longitudinal Temporal Information with
  Modified Dates option; other times (TM) are removed unless dates are shifted;
* any remaining string that contains an identifying value of the source (names, IDs, dates...) is removed.
"""

from __future__ import annotations

# -- Table E.1-1 (subset): keyword -> action ------------------------------------------------------------------------
BASIC_PROFILE: dict[str, str] = {
    # patient identity
    "PatientName": "D", "PatientID": "D", "IssuerOfPatientID": "X", "IssuerOfPatientIDQualifiersSequence": "X",
    "OtherPatientIDs": "X", "OtherPatientIDsSequence": "X", "OtherPatientNames": "X", "PatientBirthName": "X",
    "PatientMotherBirthName": "X", "PatientBirthDate": "Z", "PatientBirthTime": "X", "PatientAge": "X",
    "PatientSex": "Z", "PatientSize": "X", "PatientWeight": "X", "PatientAddress": "X",
    "PatientTelephoneNumbers": "X", "PatientTelecomInformation": "X", "MilitaryRank": "X", "BranchOfService": "X",
    "MedicalRecordLocator": "X", "EthnicGroup": "X", "Occupation": "X", "AdditionalPatientHistory": "X",
    "PatientComments": "X", "PatientReligiousPreference": "X", "PregnancyStatus": "X", "SmokingStatus": "X",
    "MedicalAlerts": "X", "Allergies": "X", "LastMenstrualDate": "X", "CountryOfResidence": "X",
    "RegionOfResidence": "X", "PatientInsurancePlanCodeSequence": "X", "PatientPrimaryLanguageCodeSequence": "X",
    "ResponsiblePerson": "X", "ResponsiblePersonRole": "X", "ResponsibleOrganization": "X", "PatientState": "X",
    "ReferencedPatientSequence": "X", "ReferencedPatientPhotoSequence": "X", "PatientSexNeutered": "X",
    "SpecialNeeds": "X", "InsurancePlanIdentification": "X", "PatientBirthDateInAlternativeCalendar": "X",
    "PatientDeathDateInAlternativeCalendar": "X", "PatientAlternativeCalendar": "X", "PatientSpeciesDescription": "K",
    "PatientIdentityRemoved": "K", "DeidentificationMethod": "X", "DeidentificationMethodCodeSequence": "X",
    # study, visit, request
    "AccessionNumber": "Z", "StudyID": "Z", "ReferringPhysicianName": "Z", "ReferringPhysicianAddress": "X",
    "ReferringPhysicianTelephoneNumbers": "X", "ReferringPhysicianIdentificationSequence": "X",
    "ConsultingPhysicianName": "X", "ConsultingPhysicianIdentificationSequence": "X", "PhysiciansOfRecord": "X",
    "PhysiciansOfRecordIdentificationSequence": "X", "PerformingPhysicianName": "X",
    "PerformingPhysicianIdentificationSequence": "X", "NameOfPhysiciansReadingStudy": "X",
    "PhysiciansReadingStudyIdentificationSequence": "X", "OperatorsName": "X", "OperatorIdentificationSequence": "X",
    "RequestingPhysician": "X", "RequestingService": "X", "ScheduledPerformingPhysicianName": "X",
    "AdmissionID": "X", "IssuerOfAdmissionIDSequence": "X", "AdmittingDiagnosesDescription": "X",
    "AdmittingDiagnosesCodeSequence": "X", "CurrentPatientLocation": "X", "PatientInstitutionResidence": "X",
    "VisitComments": "X", "ServiceEpisodeID": "X", "ServiceEpisodeDescription": "X", "RequestAttributesSequence": "X",
    "ReferencedStudySequence": "X", "ReferencedPerformedProcedureStepSequence": "X", "PerformedProcedureStepID": "X",
    "PerformedProcedureStepDescription": "X", "ScheduledProcedureStepID": "X", "RequestedProcedureID": "X",
    "RequestedProcedureDescription": "X", "PlacerOrderNumberImagingServiceRequest": "X",
    "FillerOrderNumberImagingServiceRequest": "X", "OrderEnteredBy": "X", "OrderEntererLocation": "X",
    "OrderCallbackPhoneNumber": "X", "ReasonForTheRequestedProcedure": "X", "ReasonForStudy": "X",
    "RequestedContrastAgent": "X", "StudyComments": "X", "ImageComments": "X", "FrameComments": "X",
    "AcquisitionComments": "X", "InterpretationText": "X", "InterpretationRecorder": "X",
    "InterpretationTranscriber": "X", "InterpretationAuthor": "X", "InterpretationApproverSequence": "X",
    "ContentCreatorName": "Z", "ContentCreatorIdentificationCodeSequence": "X", "VerifyingObserverName": "D",
    "VerifyingObserverSequence": "X", "VerifyingOrganization": "X", "PersonName": "X", "PersonAddress": "X",
    "PersonTelephoneNumbers": "X", "PersonIdentificationCodeSequence": "X", "TextComments": "X",
    "TextString": "X", "ProtocolName": "C", "StudyDescription": "C", "SeriesDescription": "C",
    "AcquisitionDeviceProcessingDescription": "C", "DerivationDescription": "C", "BodyPartExamined": "K",
    "ClinicalTrialSponsorName": "X", "ClinicalTrialProtocolID": "X", "ClinicalTrialSubjectID": "X",
    "ClinicalTrialSubjectReadingID": "X", "ClinicalTrialSiteID": "X", "ClinicalTrialSiteName": "X",
    # equipment and institution
    "InstitutionName": "X", "InstitutionAddress": "X", "InstitutionalDepartmentName": "X",
    "InstitutionCodeSequence": "X", "InstitutionalDepartmentTypeCodeSequence": "X", "StationName": "X",
    "DeviceSerialNumber": "X", "DeviceUID": "U", "PlateID": "X", "DetectorID": "X", "GantryID": "X",
    "CassetteID": "X", "SoftwareVersions": "X", "ModifyingDeviceID": "X", "ModifyingDeviceManufacturer": "X",
    "ScheduledStationName": "X", "PerformedStationName": "X", "PerformedLocation": "X",
    "ScheduledStudyLocation": "X", "PerformedStationAETitle": "X", "ScheduledStationAETitle": "X",
    # dates and times with specific actions (others: generic rule)
    "StudyDate": "Z", "ContentDate": "Z", "StudyTime": "Z", "ContentTime": "Z",
    # structural and security
    "DigitalSignaturesSequence": "X", "OriginalAttributesSequence": "X", "ModifiedAttributesSequence": "X",
    "DataSetTrailingPadding": "X", "IconImageSequence": "X", "StorageMediaFileSetID": "X",
    "StorageMediaFileSetUID": "U", "ReferencedImageSequence": "K", "SourceImageSequence": "K",
    "ReferencedSeriesSequence": "K",
    # UIDs (the generic UI rule maps every other non-registered UID too)
    "StudyInstanceUID": "U", "SeriesInstanceUID": "U", "SOPInstanceUID": "U", "FrameOfReferenceUID": "U",
    "SynchronizationFrameOfReferenceUID": "U", "ReferencedSOPInstanceUID": "U",
    "ReferencedFrameOfReferenceUID": "U", "IrradiationEventUID": "U", "ConcatenationUID": "U",
    "DimensionOrganizationUID": "U", "InstanceCreatorUID": "U", "TrackingUID": "U", "UID": "U",
    "MediaStorageSOPInstanceUID": "U",
}

# Retain Patient Characteristics Option (DCM 113108): these are kept instead.
PATIENT_CHARACTERISTICS = ("PatientAge", "PatientSex", "PatientSize", "PatientWeight", "EthnicGroup",
                           "SmokingStatus", "PregnancyStatus", "PatientSexNeutered")

# Required (type 1 / 2) attributes whose date or time must stay present (zero-length) when dates are removed.
TYPE2_DATES = ("StudyDate", "StudyTime", "ContentDate", "ContentTime")

# Codes of CID 7050 "De-identification Method" recorded in DeidentificationMethodCodeSequence.
CODES = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "clean_descriptors": ("113105", "Clean Descriptors Option"),
    "modified_dates": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "patient_characteristics": ("113108", "Retain Patient Characteristics Option"),
}

ACTIONS = {"D": "dummy", "Z": "zero-length", "X": "removed", "K": "kept", "C": "cleaned", "U": "UID replaced"}


def describe_profile() -> dict[str, list[str]]:
    """Attribute keywords grouped by action (for the manifest and the README)."""
    out: dict[str, list[str]] = {}
    for kw, action in sorted(BASIC_PROFILE.items()):
        out.setdefault(ACTIONS[action], []).append(kw)
    return out
