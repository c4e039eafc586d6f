"""Instances a scrubber must filter: screen saves with burned-in text, digitized film, PDFs and SR reports."""

from __future__ import annotations

import datetime as dt

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from . import pixels
from .catalog import OUTSIDE_HOSPITAL
from .headers import Instance, banner_lines, burn, da, set_gray_pixels, set_rgb_pixels, tm
from .reports import clinical_text, simple_pdf


def build_key_images(ds: Dataset, item: Instance) -> None:
    """A workstation screen save: the image with the patient banner burned in."""
    study, rec, device = item.study, item.recorder, item.series.device
    if study.modality == "CT":
        gray = pixels.window_to_uint8(pixels.ct_matrix(), 984, 1484)
    else:
        gray = pixels.window_to_uint8(pixels.mr_matrix(), 0, 1600)
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
    image = pixels.window_to_uint8(pixels.radiograph_matrix(), 0, 1100)
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
    phone = patient.phone.replace("(", "").replace(") ", "-")  # PDF strings escape parentheses
    fields = [
        ("Patient", patient.name.display_ascii, "name"),
        ("MRN", study.mrn, "id"),
        ("Date of birth", birth, "date"),
        ("Address", patient.address, "address"),
        ("Phone", phone, "phone"),
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

    observer_item = content_item(
        "HAS OBS CONTEXT", "PNAME", code_item("121008", "DCM", "Person Observer Name")
    )
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
