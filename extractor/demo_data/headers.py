"""DICOM modules every demo instance shares: patient, study, series, equipment, request, dates.

PHI goes where real archives carry it, and each value is recorded in the answer key by the
instance's PhiRecorder as it is set.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian

from . import pixels
from .answer_key import PhiRecorder
from .catalog import DEPARTMENTS, INSTITUTIONS, MERGED_SITE_MRN_PREFIX, Device, SeriesTemplate
from .orders import Study

DETACHED_STUDY_MANAGEMENT = "1.2.840.10008.3.1.2.3.1"  # what ReferencedStudySequence items usually name


def make_uid(seed: int, *parts: object) -> str:
    """A UID under the 2.25 root (ISO/IEC 9834-8) whose 128-bit integer comes from the seed and the parts."""
    digest = hashlib.sha256("/".join(["imgomop-demo", str(seed), *map(str, parts)]).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def da(value: dt.date) -> str:
    return value.strftime("%Y%m%d")


def tm(value: dt.datetime) -> str:
    return value.strftime("%H%M%S")


def ds_number(value: float) -> str:
    return f"{value:.6g}"


@dataclass(frozen=True)
class SeriesPlan:
    number: int
    kind: str  # CT MR US US_CINE CR DX PT KEY_IMAGES FILM PDF SR
    modality: str
    description: str
    protocol: str
    instances: int
    uid: str
    device: Device
    template: SeriesTemplate | None = None


@dataclass
class Instance:
    """Everything one file's builder needs."""

    study: Study
    series: SeriesPlan
    number: int
    sop_uid: str
    study_uid: str
    acquired_at: dt.datetime
    rng: random.Random
    np_rng: np.random.Generator
    recorder: PhiRecorder
    seed: int


def new_dataset(sop_class: str, sop_uid: str, charset: tuple[str, ...]) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if charset:
        ds.SpecificCharacterSet = list(charset) if len(charset) > 1 else charset[0]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    return ds


def issuer_of(mrn: str) -> str:
    return "NGIC" if mrn.startswith(MERGED_SITE_MRN_PREFIX) else "RGH"


def patient_age(birth: dt.date, on: dt.date) -> str:
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return f"{max(years, 0):03d}Y"


def add_patient(ds: Dataset, item: Instance) -> None:
    study, rec = item.study, item.recorder
    patient = study.patient
    rec.set(ds, "PatientName", patient.name.dicom, "name")
    rec.set(ds, "PatientID", study.mrn, "id")
    ds.IssuerOfPatientID = issuer_of(study.mrn)
    rec.set(ds, "PatientBirthDate", da(patient.birth_date), "date")
    ds.PatientSex = patient.sex
    ds.PatientAge = patient_age(patient.birth_date, study.started_at.date())
    if study.other_mrn:
        rec.set(ds, "OtherPatientIDs", study.other_mrn, "id")
        other = Dataset()
        rec.set(other, "PatientID", study.other_mrn, "id", within="OtherPatientIDsSequence[0]")
        other.IssuerOfPatientID = issuer_of(study.other_mrn)
        other.TypeOfPatientID = "TEXT"
        ds.OtherPatientIDsSequence = DicomSequence([other])
    if "patient_contact" in study.features:
        rec.set(ds, "PatientAddress", patient.address, "address")
        rec.set(ds, "PatientTelephoneNumbers", patient.phone, "phone")
    if study.modality in ("CT", "PT", "MR"):
        ds.PatientWeight = ds_number(55 + patient.person_id % 40)
        ds.PatientSize = ds_number(1.55 + (patient.person_id % 30) / 100)


def add_study(ds: Dataset, item: Instance) -> None:
    study, rec = item.study, item.recorder
    ds.StudyInstanceUID = item.study_uid
    rec.set(ds, "StudyDate", da(study.started_at.date()), "date")
    rec.set(ds, "StudyTime", tm(study.started_at), "time")
    rec.set(ds, "AccessionNumber", study.accession, "id")  # empty for studies nobody ordered
    ds.StudyID = str(1000 + study.index)
    rec.set(ds, "ReferringPhysicianName", study.referring.name.dicom, "name")
    if "description_names" in study.features:
        family = study.referring.name.family_ascii.upper()
        rec.set_text(ds, "StudyDescription", f"{study.template.description} FOLLOWUP DR {family}", [family])
    else:
        ds.StudyDescription = study.template.description
    code = Dataset()
    code.CodeValue = study.template.local_code
    code.CodingSchemeDesignator = "L"
    code.CodeMeaning = study.template.description
    ds.ProcedureCodeSequence = DicomSequence([code])
    if study.prior is not None:
        reference = Dataset()
        reference.ReferencedSOPClassUID = DETACHED_STUDY_MANAGEMENT
        reference.ReferencedSOPInstanceUID = make_uid(item.seed, "study", study.prior.index)
        ds.ReferencedStudySequence = DicomSequence([reference])
    if "referrer_sequence" in study.features:
        add_referrer_identification(ds, item)
    if "history" in study.features:
        prior_date = (study.started_at - dt.timedelta(days=60 + item.rng.randrange(600))).strftime("%m/%d/%Y")
        family = study.referring.name.family_ascii
        text = f"Hx of nodule. Prior CT {prior_date} at {study.institution.short}, per Dr {family}."
        rec.set_text(ds, "AdditionalPatientHistory", text, [prior_date, family])


def add_referrer_identification(ds: Dataset, item: Instance) -> None:
    """A two-level nested sequence: the referrer's institution, address, phone and provider number."""
    rec, referring = item.recorder, item.study.referring
    site = INSTITUTIONS["RGH"]
    outer_path = "ReferringPhysicianIdentificationSequence[0]"
    person = Dataset()
    rec.set(person, "InstitutionName", site.name, "institution", within=outer_path)
    rec.set(person, "InstitutionAddress", site.address, "address", within=outer_path)
    rec.set(person, "PersonTelephoneNumbers", site.phone, "phone", within=outer_path)
    code = Dataset()
    inner_path = f"{outer_path}.PersonIdentificationCodeSequence[0]"
    rec.set(code, "CodeValue", referring.npi, "id", within=inner_path)
    code.CodingSchemeDesignator = "NPI"
    rec.set(code, "CodeMeaning", referring.name.alphabetic, "name", within=inner_path)
    person.PersonIdentificationCodeSequence = DicomSequence([code])
    ds.ReferringPhysicianIdentificationSequence = DicomSequence([person])


def add_series(ds: Dataset, item: Instance, series_start: dt.datetime) -> None:
    study, series, rec = item.study, item.series, item.recorder
    ds.Modality = series.modality
    ds.SeriesInstanceUID = series.uid
    ds.SeriesNumber = str(series.number)
    rec.set(ds, "SeriesDate", da(series_start.date()), "date")
    rec.set(ds, "SeriesTime", tm(series_start), "time")
    ds.SeriesDescription = series.description
    ds.ProtocolName = series.protocol
    ds.BodyPartExamined = study.template.body_part
    rec.set(ds, "OperatorsName", study.operator.dicom, "name")
    if series.modality in ("US", "PT", "MR"):
        rec.set(ds, "PerformingPhysicianName", study.reading.name.dicom, "name")
    if study.accession:
        add_request_attributes(ds, item)
    rec.set(ds, "PerformedProcedureStepStartDate", da(study.started_at.date()), "date")
    rec.set(ds, "PerformedProcedureStepStartTime", tm(study.started_at), "time")
    ds.PerformedProcedureStepDescription = study.template.description


def add_request_attributes(ds: Dataset, item: Instance) -> None:
    study, rec = item.study, item.recorder
    path = "RequestAttributesSequence[0]"
    request = Dataset()
    rec.set(request, "AccessionNumber", study.accession, "id", within=path)
    rec.set(request, "RequestedProcedureID", study.accession, "id", within=path)
    rec.set(request, "ScheduledProcedureStepID", f"S{study.accession}", "id", within=path)
    description = study.template.description
    if "request_names" in study.features:
        family = study.referring.name.family_ascii
        text = f"{description} r/o mets per Dr {family}"
        rec.set_text(request, "RequestedProcedureDescription", text, [family], within=path)
    else:
        request.RequestedProcedureDescription = description
    request.ScheduledProcedureStepDescription = description
    ds.RequestAttributesSequence = DicomSequence([request])


def add_equipment(ds: Dataset, item: Instance) -> None:
    study, device, rec = item.study, item.series.device, item.recorder
    ds.Manufacturer = device.manufacturer
    ds.ManufacturerModelName = device.model
    ds.SoftwareVersions = device.software
    rec.set(ds, "DeviceSerialNumber", device.serial, "device")  # a device identifier (HIPAA Safe Harbor)
    institution = INSTITUTIONS[device.site]
    rec.set(ds, "InstitutionName", institution.name, "institution")
    rec.set(ds, "InstitutionAddress", institution.address, "address")
    ds.InstitutionalDepartmentName = DEPARTMENTS[study.department]
    rec.set(ds, "StationName", device.station, "station")


def add_instance_dates(ds: Dataset, item: Instance, acquisition: bool = True) -> None:
    rec, when = item.recorder, item.acquired_at
    ds.InstanceNumber = str(item.number)
    rec.set(ds, "InstanceCreationDate", da(when.date()), "date")
    rec.set(ds, "InstanceCreationTime", tm(when), "time")
    rec.set(ds, "ContentDate", da(when.date()), "date")
    rec.set(ds, "ContentTime", tm(when), "time")
    if acquisition:
        rec.set(ds, "AcquisitionDate", da(when.date()), "date")
        rec.set(ds, "AcquisitionTime", tm(when), "time")
    ds.TimezoneOffsetFromUTC = "-0500"


def add_private_block(ds: Dataset, item: Instance) -> None:
    """A vendor block that copies the patient's name and MRN, as some archives' private tags do."""
    block = ds.private_block(0x0009, "ACME 1.0", create=True)
    item.recorder.set_private(block, 0x01, "LO", item.study.patient.name.alphabetic, "name")
    item.recorder.set_private(block, 0x02, "LO", item.study.mrn, "id")
    block.add_new(0x10, "LO", "ACME RECON 2.3")


def add_image_comment(ds: Dataset, item: Instance) -> None:
    if "comment_names" in item.study.features and item.number == 1:
        name = item.study.patient.name.display_ascii
        item.recorder.set_text(ds, "ImageComments", f"Pt {name} unable to hold breath, repeat", [name])


def set_gray_pixels(ds: Dataset, image: np.ndarray, bits_stored: int) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = image.shape[-2:]
    ds.BitsAllocated = image.dtype.itemsize * 8
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if image.dtype.kind == "i" else 0
    ds.PixelData = np.ascontiguousarray(image).tobytes()


def set_rgb_pixels(ds: Dataset, frames: np.ndarray) -> None:
    """frames: (rows, columns, 3) or (frames, rows, columns, 3), uint8."""
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = frames.shape[-3:-1]
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(frames).tobytes()


def burn(item: Instance, frames: np.ndarray, lines: list[str], corner: str) -> None:
    for burned in pixels.burn_text(frames, lines, corner):
        item.recorder.mention(burned.text, "burned_in", "pixels", burned.rect)


def banner_lines(item: Instance) -> tuple[list[str], list[str]]:
    """What a modality console prints: patient top-left, site and date top-right."""
    study = item.study
    left = [study.patient.name.banner, study.mrn, study.patient.birth_date.strftime("%m/%d/%Y")]
    right = [study.institution.name.upper(), item.acquired_at.strftime("%m/%d/%Y %H:%M:%S")]
    return left, right
