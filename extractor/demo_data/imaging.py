"""The DICOM side: which series a study has, and one file per instance with its answer-key entries.

Files are written with a preamble and file meta (pydicom dcmwrite, enforce_file_format=True).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from .acquisitions import build_ct, build_mr, build_pt, build_radiograph, build_us, build_us_cine
from .answer_key import FileSummary, PhiRecorder, PhiValue
from .captures import build_film, build_key_images, build_pdf, build_sr
from .catalog import DEPARTMENTS, DEVICES, SeriesTemplate
from .headers import (
    Instance,
    SeriesPlan,
    add_equipment,
    add_instance_dates,
    add_patient,
    add_series,
    add_study,
    make_uid,
    new_dataset,
)
from .layout import ArchiveLayout
from .orders import OUTSIDE_CD, OUTSIDE_FILM, Study

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


@dataclass(frozen=True)
class WrittenFile:
    summary: FileSummary
    phi: list[PhiValue]


def acquisition_kind(study: Study, template: SeriesTemplate) -> str:
    if study.exam.origin == OUTSIDE_FILM:
        return "FILM"
    if study.modality == "US" and template.cine:
        return "US_CINE"
    return study.modality


def series_plans(study: Study, rng: random.Random, seed: int) -> list[SeriesPlan]:
    return acquired_series(study, rng, seed) + added_series(study, rng, seed)


def acquired_series(study: Study, rng: random.Random, seed: int) -> list[SeriesPlan]:
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
    return plans


def added_series(study: Study, rng: random.Random, seed: int) -> list[SeriesPlan]:
    """The single-instance series a study gains after the scan: key images, a requisition, the report."""
    extras = [
        ("key_images", KEY_IMAGES_SERIES, "KEY_IMAGES", study.modality, "KEY IMAGES", "WORKSTATION"),
        ("pdf", REQUISITION_SERIES, "PDF", "DOC", "SCANNED REQUISITION", "DOCUMENT_SCANNER"),
        ("sr", REPORT_SERIES, "SR", "SR", "FINAL REPORT", "REPORTING"),
    ]
    plans = []
    for feature, number, kind, modality, description, device_group in extras:
        if feature not in study.features:
            continue
        devices = DEVICES[device_group]
        local = [device for device in devices if device.site == study.institution.short]
        plans.append(
            SeriesPlan(
                number=number,
                kind=kind,
                modality=modality,
                description=description,
                protocol=description,
                instances=1,
                uid=make_uid(seed, "series", study.index, number),
                device=rng.choice(local or devices),
            )
        )
    return plans


def series_start(study: Study, series: SeriesPlan) -> dt.datetime:
    """Acquisitions follow each other two minutes apart; the added series come 45 minutes later."""
    if series.number >= KEY_IMAGES_SERIES:
        return study.started_at + dt.timedelta(minutes=45)
    return study.started_at + dt.timedelta(minutes=2 * series.number)


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
        started = series_start(study, series)
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
                acquired_at=started + dt.timedelta(seconds=7 * number),
                rng=rng,
                np_rng=np_rng,
                recorder=PhiRecorder(file),
                seed=seed,
            )
            ds = build_instance(item, started)
            path = out_dir / file
            path.parent.mkdir(parents=True, exist_ok=True)
            pydicom.dcmwrite(path, ds, enforce_file_format=True)
            written.append(WrittenFile(summarize(item, file, ds.SOPClassUID), item.recorder.values))
    return written
