"""The DICOM side: one file per instance, built on real pixel data with realistic headers and PHI.

PHI goes where real archives carry it: patient, physician, operator, institution and station names,
addresses, phone numbers, IDs, dates and times; inside nested sequences and a private block; in
free-text descriptions; burned into ultrasound and secondary-capture pixels. Every value is recorded
in the answer key by a PhiRecorder as it is set.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian

from . import pixels
from .answer_key import FileSummary, PhiRecorder, PhiValue
from .catalog import DEPARTMENTS, DEVICES, INSTITUTIONS, MERGED_SITE_MRN_PREFIX, OUTSIDE_HOSPITAL, Device, SeriesTemplate
from .layout import ArchiveLayout
from .orders import OUTSIDE_CD, OUTSIDE_FILM, Study
from .reports import clinical_text, simple_pdf

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTIFRAME_IMAGE = "1.2.840.10008.5.1.4.1.1.3.1"
CR_IMAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_IMAGE_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
PET_IMAGE = "1.2.840.10008.5.1.4.1.1.128"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
DETACHED_STUDY_MANAGEMENT = "1.2.840.10008.3.1.2.3.1"  # what ReferencedStudySequence items usually name

# Series numbers of the instances added to a study beside its acquisitions.
KEY_IMAGES_SERIES = 800
REQUISITION_SERIES = 950
REPORT_SERIES = 990

FILTER_REASONS = {
    "PDF": "encapsulated PDF document",
    "SR": "structured report",
    "KEY_IMAGES": "secondary capture with BurnedInAnnotation YES",
    "FILM": "scanned film (Manufacturer VIDAR)",
}
PIXEL_TEXT_KINDS = ("US", "US_CINE", "KEY_IMAGES", "FILM")


def make_uid(seed: int, *parts: object) -> str:
    """A UUID-derived UID (2.25.<128-bit integer>) fixed by the seed and the parts."""
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


@dataclass(frozen=True)
class WrittenFile:
    summary: FileSummary
    phi: list[PhiValue]


# ---------------------------------------------------------------- series of a study


def acquisition_kind(study: Study, template: SeriesTemplate) -> str:
    if study.exam.origin == OUTSIDE_FILM:
        return "FILM"
    if study.modality == "US" and template.cine:
        return "US_CINE"
    return study.modality


def series_plans(study: Study, rng: random.Random, seed: int) -> list[SeriesPlan]:
    plans = []
    for number, template in enumerate(study.template.series, start=1):
        kind = acquisition_kind(study, template)
        plans.append(
            SeriesPlan(
                number=number,
                kind=kind,
                modality=study.modality,
                description=template.description,
                protocol=template.protocol,
                instances=rng.randint(*template.instances),
                uid=make_uid(seed, "series", study.index, number),
                device=study.device,
                template=template,
            )
        )
    extras = [
        ("key_images", KEY_IMAGES_SERIES, "KEY_IMAGES", study.modality, "KEY IMAGES", "WORKSTATION"),
        ("pdf", REQUISITION_SERIES, "PDF", "DOC", "SCANNED REQUISITION", "DOCUMENT_SCANNER"),
        ("sr", REPORT_SERIES, "SR", "SR", "FINAL REPORT", "REPORTING"),
    ]
    for feature, number, kind, modality, description, device_group in extras:
        if feature in study.features:
            device = rng.choice([d for d in DEVICES[device_group] if d.site == study.institution.short] or DEVICES[device_group])
            plans.append(
                SeriesPlan(number, kind, modality, description, description, 1, make_uid(seed, "series", study.index, number), device)
            )
    return plans


# ---------------------------------------------------------------- shared modules


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
    ds.DeviceSerialNumber = device.serial
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


# ---------------------------------------------------------------- per-kind modules and pixels


@cache
def _ct_matrix() -> np.ndarray:
    return pixels.resize_gray(pixels.ct_slice(), 256, 256)


@cache
def _mr_matrix() -> np.ndarray:
    return pixels.resize_gray(pixels.mr_slice(), 192, 192)


@cache
def _radiograph_matrix() -> np.ndarray:
    return pixels.resize_gray(pixels.radiograph(), 288, 352)


@cache
def _pet_matrix() -> np.ndarray:
    soft_tissue = pixels.window_to_uint8(pixels.ct_slice(), 900, 1300).astype(np.float32)
    blurred = pixels.resize_gray(pixels.resize_gray(soft_tissue, 32, 32), 128, 128)
    return (blurred * 40).astype(np.uint16)


def set_plane(ds: Dataset, item: Instance, orientation: str, field_of_view: float, columns: int, thickness: float) -> None:
    orientations = {
        "AX": [1, 0, 0, 0, 1, 0],
        "SAG": [0, 1, 0, 0, 0, -1],
        "COR": [1, 0, 0, 0, 0, -1],
    }
    spacing = field_of_view / columns
    location = -(item.number - 1) * thickness
    ds.FrameOfReferenceUID = make_uid(item.seed, "frame-of-reference", item.study.index, item.series.number)
    ds.PositionReferenceIndicator = ""
    ds.ImageOrientationPatient = orientations[orientation]
    ds.ImagePositionPatient = [ds_number(-field_of_view / 2), ds_number(-field_of_view / 2), ds_number(location)]
    ds.SliceLocation = ds_number(location)
    ds.SliceThickness = ds_number(thickness)
    ds.SpacingBetweenSlices = ds_number(thickness)
    ds.PixelSpacing = [ds_number(spacing), ds_number(spacing)]


def build_ct(ds: Dataset, item: Instance) -> None:
    template, study = item.series.template, item.study
    assert template is not None and template.slice_thickness is not None
    head = study.template.body_part == "HEAD"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    set_plane(ds, item, "AX", 240.0 if head else 360.0, 256, template.slice_thickness)
    ds.KVP = "120" if head else "100"
    ds.XRayTubeCurrent = str(180 + item.number * 3)
    ds.ExposureTime = "500"
    ds.ConvolutionKernel = "BONE" if "BONE" in template.description else "LUNG" if "LUNG" in template.description else "STANDARD"
    ds.PatientPosition = "HFS" if head else "FFS"
    if study.template.contrast:
        ds.ContrastBolusAgent = "OMNIPAQUE 350"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    window = (-600, 1500) if ds.ConvolutionKernel == "LUNG" else (500, 2000) if head and ds.ConvolutionKernel == "BONE" else (40, 400)
    ds.WindowCenter, ds.WindowWidth = str(window[0]), str(window[1])
    add_private_block(ds, item)
    add_image_comment(ds, item)
    set_gray_pixels(ds, pixels.slice_variant(_ct_matrix(), item.number, item.np_rng, 8.0), 16)


MR_SEQUENCES = {  # (ScanningSequence, SequenceVariant, acquisition type, TR, TE)
    "T1": ("GR\\IR", "SK\\SP\\MP", "3D", "2300", "2.98"),
    "T2": ("SE", "SK\\OSP", "2D", "4000", "90"),
    "PD": ("SE", "SK", "2D", "3000", "30"),
}


def build_mr(ds: Dataset, item: Instance) -> None:
    template, device = item.series.template, item.series.device
    assert template is not None and template.slice_thickness is not None
    weighting = next((key for key in MR_SEQUENCES if key in template.description), "T2")
    scanning, variant, acquisition_type, repetition, echo = MR_SEQUENCES[weighting]
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    set_plane(ds, item, template.description.split()[0], 220.0, 192, template.slice_thickness)
    ds.ScanningSequence = scanning.split("\\")
    ds.SequenceVariant = variant.split("\\")
    ds.ScanOptions = "FS" if "FS" in template.description else ""
    ds.MRAcquisitionType = acquisition_type
    ds.RepetitionTime = repetition
    ds.EchoTime = echo
    ds.MagneticFieldStrength = ds_number(device.field_strength or 1.5)
    ds.ImagingFrequency = ds_number(42.577 * (device.field_strength or 1.5))
    ds.ImagedNucleus = "1H"
    ds.PatientPosition = "HFS"
    ds.WindowCenter, ds.WindowWidth = "600", "1600"
    add_private_block(ds, item)
    add_image_comment(ds, item)
    set_gray_pixels(ds, pixels.slice_variant(_mr_matrix(), item.number, item.np_rng, 6.0), 16)


def build_pt(ds: Dataset, item: Instance) -> None:
    template, study, rec = item.series.template, item.study, item.recorder
    assert template is not None and template.slice_thickness is not None
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    set_plane(ds, item, "AX", 700.0, 128, template.slice_thickness)
    ds.SeriesType = ["WHOLE BODY", "IMAGE"]
    ds.Units = "BQML"
    ds.CountsSource = "EMISSION"
    ds.CorrectedImage = ["ATTN", "DECY", "SCAT", "NORM"]
    ds.DecayCorrection = "START"
    ds.AttenuationCorrectionMethod = "CTAC"
    ds.ReconstructionMethod = "OSEM 3i21s"
    ds.NumberOfSlices = item.series.instances
    ds.ImageIndex = item.number
    ds.FrameReferenceTime = "0"
    ds.ActualFrameDuration = "180000"
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "0.5"
    ds.PatientPosition = "FFS"
    injected_at = study.started_at - dt.timedelta(minutes=62)
    path = "RadiopharmaceuticalInformationSequence[0]"
    drug = Dataset()
    drug.Radiopharmaceutical = "Fludeoxyglucose F^18^"
    rec.set(drug, "RadiopharmaceuticalStartTime", tm(injected_at), "time", within=path)
    rec.set(drug, "RadiopharmaceuticalStartDateTime", injected_at.strftime("%Y%m%d%H%M%S"), "date", within=path)
    drug.RadionuclideTotalDose = "370000000"
    drug.RadionuclideHalfLife = "6586.2"
    drug.RadionuclidePositronFraction = "0.9673"
    nuclide = Dataset()
    nuclide.CodeValue = "C-111A1"
    nuclide.CodingSchemeDesignator = "SRT"
    nuclide.CodeMeaning = "^18^Fluorine"
    drug.RadionuclideCodeSequence = DicomSequence([nuclide])
    ds.RadiopharmaceuticalInformationSequence = DicomSequence([drug])
    add_private_block(ds, item)
    set_gray_pixels(ds, pixels.slice_variant(_pet_matrix(), item.number, item.np_rng, 20.0), 16)


def build_radiograph(ds: Dataset, item: Instance) -> None:
    template, study = item.series.template, item.study
    assert template is not None
    chest = study.template.body_part == "CHEST"
    image = _radiograph_matrix()
    if template.view in ("LL", "OBL"):
        image = image[:, ::-1]
    image = pixels.slice_variant(np.ascontiguousarray(image), item.number, item.np_rng, 4.0)
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ViewPosition = template.view
    ds.PatientOrientation = ["A", "F"] if template.view != "LL" else ["P", "F"]
    ds.KVP = "120" if chest else "60"
    ds.ExposureTime = "12" if chest else "40"
    ds.XRayTubeCurrent = "320" if chest else "100"
    ds.DistanceSourceToDetector = "1800" if chest else "1000"
    ds.ImagerPixelSpacing = ["0.3", "0.3"]
    ds.PixelSpacing = ["0.3", "0.3"]
    ds.BurnedInAnnotation = "NO"
    ds.WindowCenter, ds.WindowWidth = "450", "790"
    if item.series.modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.DetectorType = "SCINTILLATOR"
        ds.PixelIntensityRelationship = "LOG"
        ds.PixelIntensityRelationshipSign = 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "US"
    set_gray_pixels(ds, image, 12)


def add_ultrasound_region(ds: Dataset, rows: int, columns: int) -> None:
    region = Dataset()
    region.RegionSpatialFormat = 1
    region.RegionDataType = 1
    region.RegionFlags = 0
    region.RegionLocationMinX0 = 0
    region.RegionLocationMinY0 = 54
    region.RegionLocationMaxX1 = columns - 1
    region.RegionLocationMaxY1 = rows - 1
    region.PhysicalUnitsXDirection = 3
    region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = 0.03
    region.PhysicalDeltaY = 0.03
    ds.SequenceOfUltrasoundRegions = DicomSequence([region])


def build_us(ds: Dataset, item: Instance) -> None:
    echo = item.study.template.body_part == "HEART"
    if echo:
        frame = pixels.echo_frames()[item.number % pixels.ECHO_FRAMES]
    else:
        frame = pixels.ultrasound_frame()
    frames = pixels.slice_variant(frame, item.number, item.np_rng, 2.0)[np.newaxis]
    left, right = banner_lines(item)
    burn(item, frames, left, "top-left")
    burn(item, frames, right, "top-right")
    ds.ImageType = ["ORIGINAL", "PRIMARY", "CARDIOLOGY" if echo else "ABDOMINAL"]
    add_ultrasound_region(ds, *frames.shape[1:3])
    set_rgb_pixels(ds, frames[0])


def build_us_cine(ds: Dataset, item: Instance) -> None:
    frames = pixels.echo_frames()
    left, right = banner_lines(item)
    burn(item, frames, left, "top-left")  # the same text on every frame
    burn(item, frames, right, "top-right")
    ds.ImageType = ["ORIGINAL", "PRIMARY", "CARDIOLOGY"]
    ds.NumberOfFrames = str(frames.shape[0])
    ds.FrameTime = "33.333"
    ds.FrameIncrementPointer = Tag(0x0018, 0x1063)
    ds.CineRate = "30"
    ds.RecommendedDisplayFrameRate = "30"
    ds.HeartRate = "72"
    add_ultrasound_region(ds, *frames.shape[1:3])
    set_rgb_pixels(ds, frames)


def build_key_images(ds: Dataset, item: Instance) -> None:
    """A workstation screen save: the image with the patient banner burned in."""
    study, rec, device = item.study, item.recorder, item.series.device
    if study.modality == "CT":
        gray = pixels.window_to_uint8(_ct_matrix(), 984, 1484)
    else:
        gray = pixels.window_to_uint8(_mr_matrix(), 0, 1600)
    frames = pixels.resize_rgb(pixels.gray_to_rgb(gray), 320, 320)[np.newaxis].copy()
    left, right = banner_lines(item)
    burn(item, frames, left, "top-left")
    burn(item, frames, right, "top-right")
    burn(item, frames, [study.reading.name.banner], "bottom-left")
    ds.ImageType = ["DERIVED", "SECONDARY", "SCREEN SAVE"]
    ds.ConversionType = "WSD"
    ds.BurnedInAnnotation = "YES"
    ds.SecondaryCaptureDeviceManufacturer = device.manufacturer
    ds.SecondaryCaptureDeviceManufacturerModelName = device.model
    ds.SecondaryCaptureDeviceSoftwareVersions = device.software
    rec.set(ds, "DateOfSecondaryCapture", da(item.acquired_at.date()), "date")
    rec.set(ds, "TimeOfSecondaryCapture", tm(item.acquired_at), "time")
    set_rgb_pixels(ds, frames[0])


def build_film(ds: Dataset, item: Instance) -> None:
    """A film from another hospital, digitized here: its label carries that hospital's identifiers."""
    study, rec, device = item.study, item.recorder, item.series.device
    image = pixels.window_to_uint8(_radiograph_matrix(), 0, 1100)
    frames = pixels.slice_variant(image, item.number, item.np_rng, 3.0)[np.newaxis].copy()
    filmed_on = study.started_at.date() - dt.timedelta(days=30 + item.rng.randrange(400))
    label = [
        OUTSIDE_HOSPITAL.name.upper(),
        study.patient.name.banner,
        f"{item.rng.randrange(100_000, 999_999)}",
        filmed_on.strftime("%m/%d/%Y"),
    ]
    burn(item, frames, label, "bottom-left")
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.ConversionType = "DF"
    ds.SecondaryCaptureDeviceManufacturer = device.manufacturer
    ds.SecondaryCaptureDeviceManufacturerModelName = device.model
    ds.SecondaryCaptureDeviceSoftwareVersions = device.software
    rec.set(ds, "DateOfSecondaryCapture", da(item.acquired_at.date()), "date")
    rec.set(ds, "TimeOfSecondaryCapture", tm(item.acquired_at), "time")
    set_gray_pixels(ds, frames[0], 8)


def build_pdf(ds: Dataset, item: Instance) -> None:
    """A scanned imaging requisition, the patient's identifiers in the PDF text."""
    study, rec = item.study, item.recorder
    patient, referring = study.patient, study.referring
    birth = patient.birth_date.strftime("%m/%d/%Y")
    fields = [
        ("Patient", patient.name.display_ascii, "name"),
        ("MRN", study.mrn, "id"),
        ("Date of birth", birth, "date"),
        ("Address", patient.address, "address"),
        ("Phone", patient.phone.replace("(", "").replace(") ", "-"), "phone"),  # PDF strings escape parentheses
        ("Accession", study.accession, "id"),
        ("Ordering physician", f"Dr {referring.name.display_ascii}", "name"),
        ("Requested", study.started_at.strftime("%m/%d/%Y"), "date"),
    ]
    lines = [f"{study.institution.name} - IMAGING REQUISITION", f"Exam: {study.template.description}"]
    lines += [f"{label}: {value}" for label, value, _ in fields]
    lines.append(f"Reason: {clinical_text(study.template)[0]}")
    document = simple_pdf(lines)
    for _, value, category in fields:
        rec.mention(value, category, "EncapsulatedDocument")
    ds.ConversionType = "SD"
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = "IMAGING REQUISITION"
    ds.ConceptNameCodeSequence = DicomSequence([])
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(document)
    ds.EncapsulatedDocument = document + b"\x00" * (len(document) % 2)


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def content_item(relationship: str, value_type: str, concept: Dataset) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = DicomSequence([concept])
    return item


def build_sr(ds: Dataset, item: Instance) -> None:
    """A Basic Text SR report: the observer's name and a findings text naming the patient."""
    study, rec = item.study, item.recorder
    history, findings, impression = clinical_text(study.template)
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = DicomSequence([code_item("18748-4", "LN", "Diagnostic Imaging Report")])
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "VERIFIED"
    observer = Dataset()
    path = "VerifyingObserverSequence[0]"
    rec.set(observer, "VerifyingObserverName", study.reading.name.dicom, "name", within=path)
    rec.set(observer, "VerifyingOrganization", study.institution.name, "institution", within=path)
    rec.set(observer, "VerificationDateTime", item.acquired_at.strftime("%Y%m%d%H%M%S"), "date", within=path)
    observer.VerifyingObserverIdentificationCodeSequence = DicomSequence([])
    ds.VerifyingObserverSequence = DicomSequence([observer])
    request = Dataset()
    request.StudyInstanceUID = item.study_uid
    rec.set(request, "AccessionNumber", study.accession, "id", within="ReferencedRequestSequence[0]")
    request.RequestedProcedureID = study.accession
    request.RequestedProcedureDescription = study.template.description
    request.RequestedProcedureCodeSequence = DicomSequence([])
    request.PlacerOrderNumberImagingServiceRequest = ""
    request.FillerOrderNumberImagingServiceRequest = ""
    ds.ReferencedRequestSequence = DicomSequence([request])
    ds.PerformedProcedureCodeSequence = DicomSequence([])

    observer_item = content_item("HAS OBS CONTEXT", "PNAME", code_item("121008", "DCM", "Person Observer Name"))
    rec.set(observer_item, "PersonName", study.reading.name.dicom, "name", within="ContentSequence[0]")
    name = study.patient.name.display_ascii
    prior = (study.started_at - dt.timedelta(days=200)).strftime("%m/%d/%Y")
    finding = content_item("CONTAINS", "TEXT", code_item("121071", "DCM", "Finding"))
    text = f"{name}: comparison with outside study of {prior}. {findings}"
    rec.set_text(finding, "TextValue", text, [name, prior], within="ContentSequence[1].ContentSequence[0]")
    findings_section = content_item("CONTAINS", "CONTAINER", code_item("121070", "DCM", "Findings"))
    findings_section.ContinuityOfContent = "SEPARATE"
    findings_section.ContentSequence = DicomSequence([finding])
    conclusion = content_item("CONTAINS", "TEXT", code_item("121073", "DCM", "Impression"))
    conclusion.TextValue = impression
    history_item = content_item("CONTAINS", "TEXT", code_item("121060", "DCM", "History"))
    history_item.TextValue = history
    ds.ContentSequence = DicomSequence([observer_item, findings_section, conclusion, history_item])


@dataclass(frozen=True)
class Kind:
    sop_class: str
    build: Callable[[Dataset, Instance], None]
    image: bool = True  # has acquisition date/time and pixel data


KINDS: dict[str, Kind] = {
    "CT": Kind(CT_IMAGE, build_ct),
    "MR": Kind(MR_IMAGE, build_mr),
    "PT": Kind(PET_IMAGE, build_pt),
    "CR": Kind(CR_IMAGE, build_radiograph),
    "DX": Kind(DX_IMAGE_FOR_PRESENTATION, build_radiograph),
    "US": Kind(US_IMAGE, build_us),
    "US_CINE": Kind(US_MULTIFRAME_IMAGE, build_us_cine),
    "KEY_IMAGES": Kind(SECONDARY_CAPTURE, build_key_images),
    "FILM": Kind(SECONDARY_CAPTURE, build_film),
    "PDF": Kind(ENCAPSULATED_PDF, build_pdf, image=False),
    "SR": Kind(BASIC_TEXT_SR, build_sr, image=False),
}


# ---------------------------------------------------------------- writing a study


def build_instance(item: Instance, series_start: dt.datetime) -> Dataset:
    kind = KINDS[item.series.kind]
    ds = new_dataset(kind.sop_class, item.sop_uid, item.study.patient.charset)
    add_instance_dates(ds, item, acquisition=kind.image)
    add_patient(ds, item)
    add_study(ds, item)
    add_series(ds, item, series_start)
    add_equipment(ds, item)
    kind.build(ds, item)
    return ds


def summarize(item: Instance, file: str, sop_class: str) -> FileSummary:
    study, series = item.study, item.series
    order = study.order
    reason = FILTER_REASONS.get(series.kind, "")
    return FileSummary(
        file=file,
        person_id=study.patient.person_id,
        patient_mrn=study.mrn,
        birth_date=study.patient.birth_date.isoformat(),
        accession=study.accession,
        department=DEPARTMENTS[study.department],
        has_order=order is not None,
        procedure_occurrence_id=order.exam.procedure_occurrence_id if order else None,
        visit_occurrence_id=order.exam.visit_occurrence_id if order else None,
        note_id=order.note_id if order else None,
        study_date=study.started_at.date().isoformat(),
        study_uid=item.study_uid,
        series_uid=series.uid,
        sop_uid=item.sop_uid,
        sop_class_uid=sop_class,
        modality=series.modality,
        manufacturer=series.device.manufacturer,
        should_filter=bool(reason),
        filter_reason=reason,
        needs_pixel_scrub=series.kind in PIXEL_TEXT_KINDS,
        origin=study.exam.origin,
    )


def write_study(study: Study, out_dir: Path, layout: ArchiveLayout, seed: int) -> list[WrittenFile]:
    rng = random.Random(f"{seed}/study/{study.index}")
    style = layout.style_of(study.index, forced="cd" if study.exam.origin == OUTSIDE_CD else None)
    study_uid = make_uid(seed, "study", study.index)
    written = []
    for series in series_plans(study, rng, seed):
        series_start = study.started_at + dt.timedelta(minutes=2 * series.number if series.number < 100 else 45)
        np_rng = np.random.default_rng([seed, study.index, series.number])
        for number in range(1, series.instances + 1):
            sop_uid = make_uid(seed, "sop", study.index, series.number, number)
            file = layout.instance_path(study.index, series.number, sop_uid, style)
            item = Instance(
                study=study,
                series=series,
                number=number,
                sop_uid=sop_uid,
                study_uid=study_uid,
                acquired_at=series_start + dt.timedelta(seconds=7 * number),
                rng=rng,
                np_rng=np_rng,
                recorder=PhiRecorder(file),
                seed=seed,
            )
            ds = build_instance(item, series_start)
            path = out_dir / file
            path.parent.mkdir(parents=True, exist_ok=True)
            pydicom.dcmwrite(path, ds, enforce_file_format=True)
            written.append(WrittenFile(summarize(item, file, ds.SOPClassUID), item.recorder.values))
    return written
