"""The DICOM attributes harvested per instance: one source of truth for reader and table schema.

Values are kept as the DICOM strings (multi-values joined by a backslash) in the raw tables;
dbt staging types and normalises them. Only US attributes are stored as integers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from pydicom.datadict import dictionary_VR, tag_for_keyword


@dataclass(frozen=True)
class Attribute:
    keyword: str  # DICOM keyword
    column: str  # raw table column
    series_level: bool = False  # copied to raw_dicom_series from the representative instance

    @cached_property
    def tag(self) -> int:
        tag = tag_for_keyword(self.keyword)
        assert tag is not None, self.keyword
        return tag

    @cached_property
    def vr(self) -> str:
        return dictionary_VR(self.tag)

    @property
    def sql_type(self) -> str:
        return "INTEGER" if self.vr == "US" else "VARCHAR"


def _a(keyword: str, column: str, series_level: bool = False) -> Attribute:
    return Attribute(keyword, column, series_level)


HARVESTED_ATTRIBUTES: tuple[Attribute, ...] = (
    _a("SpecificCharacterSet", "specific_character_set"),
    _a("SOPClassUID", "sop_class_uid"),
    _a("SOPInstanceUID", "sop_instance_uid"),
    _a("StudyInstanceUID", "study_instance_uid", True),
    _a("SeriesInstanceUID", "series_instance_uid"),
    # patient and order identity (the linkage key: MRN + birth date + accession)
    _a("PatientID", "patient_id", True),
    _a("IssuerOfPatientID", "issuer_of_patient_id", True),
    _a("OtherPatientIDs", "other_patient_ids", True),
    _a("PatientName", "patient_name", True),
    _a("PatientBirthDate", "patient_birth_date", True),
    _a("PatientSex", "patient_sex", True),
    _a("PatientAge", "patient_age", True),
    _a("AccessionNumber", "accession_number", True),
    _a("StudyID", "study_id", True),
    _a("ReferringPhysicianName", "referring_physician_name", True),
    # dates and times
    _a("StudyDate", "study_date", True),
    _a("StudyTime", "study_time", True),
    _a("SeriesDate", "series_date", True),
    _a("SeriesTime", "series_time", True),
    _a("AcquisitionDate", "acquisition_date"),
    _a("AcquisitionTime", "acquisition_time"),
    _a("AcquisitionDateTime", "acquisition_datetime_raw"),
    _a("ContentDate", "content_date"),
    _a("ContentTime", "content_time"),
    # what and where
    _a("Modality", "modality", True),
    _a("BodyPartExamined", "body_part_examined", True),
    _a("Laterality", "laterality", True),
    _a("ViewPosition", "view_position", True),
    _a("StudyDescription", "study_description", True),
    _a("SeriesDescription", "series_description", True),
    _a("ProtocolName", "protocol_name", True),
    _a("SeriesNumber", "series_number", True),
    _a("InstanceNumber", "instance_number"),
    _a("ImageType", "image_type"),
    _a("ConversionType", "conversion_type"),
    _a("BurnedInAnnotation", "burned_in_annotation"),
    _a("ContrastBolusAgent", "contrast_bolus_agent", True),
    # device
    _a("Manufacturer", "manufacturer", True),
    _a("ManufacturerModelName", "manufacturer_model_name", True),
    _a("SoftwareVersions", "software_versions", True),
    _a("DeviceSerialNumber", "device_serial_number", True),
    _a("StationName", "station_name", True),
    _a("InstitutionName", "institution_name", True),
    _a("InstitutionalDepartmentName", "institutional_department_name", True),
    # image geometry and acquisition parameters
    _a("Rows", "image_rows", True),  # "rows" is a reserved word in BigQuery
    _a("Columns", "image_columns", True),
    _a("NumberOfFrames", "number_of_frames"),
    _a("SamplesPerPixel", "samples_per_pixel"),
    _a("PhotometricInterpretation", "photometric_interpretation", True),
    _a("BitsAllocated", "bits_allocated", True),
    _a("PixelSpacing", "pixel_spacing", True),
    _a("SliceThickness", "slice_thickness", True),
    _a("SpacingBetweenSlices", "spacing_between_slices", True),
    _a("KVP", "kvp", True),
    _a("MagneticFieldStrength", "magnetic_field_strength", True),
)

ATTRIBUTES_BY_TAG: dict[int, Attribute] = {a.tag: a for a in HARVESTED_ATTRIBUTES}
LAST_HARVESTED_TAG = max(ATTRIBUTES_BY_TAG)
REQUIRED_UID_COLUMNS = ("sop_instance_uid", "series_instance_uid", "study_instance_uid")
# Attributes that must agree across the instances of one series; a disagreement is recorded.
PATIENT_CONSISTENCY_COLUMNS = (
    "patient_id",
    "patient_name",
    "patient_birth_date",
    "patient_sex",
    "accession_number",
    "study_instance_uid",
)
