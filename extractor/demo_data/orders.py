"""The plan both sides are written from: which exams exist, for whom, when, under which MRN and accession.

Exams hang on real Synthea rows: an existing imaging procedure of the person where there is one,
otherwise a new procedure_occurrence row on one of the person's visits. The plan also contains the
cases linkage must survive: accession numbers repeated across departments, persons with two MRNs,
orders with no images and images with no order.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from .catalog import (
    DEPARTMENTS,
    DEVICES,
    FILM_TEMPLATE,
    INSTITUTIONS,
    OUTSIDE_HOSPITAL,
    ROTATION,
    TEMPLATE_BY_SYNTHEA_CONCEPT,
    TEMPLATES,
    Device,
    Institution,
    StudyTemplate,
)
from .ehr import Procedure, SyntheaPerson, Visit, new_procedure_row
from .phi import Clinician, Name, Patient, make_clinicians, make_patients, make_technologists

ORDERS_WITHOUT_IMAGES = 4
PERSONS_WITH_TWO_MRNS = 3
DUPLICATED_ACCESSIONS = 3
MIN_PATIENTS = 10

# Exam origins
SYNTHEA_ORDER = "synthea_order"  # an imaging procedure Synthea generated
NEW_ORDER = "new_order"  # a procedure row we add on one of the person's visits
ORDER_WITHOUT_IMAGES = "order_without_images"
OUTSIDE_FILM = "outside_film"  # digitized film from elsewhere, no order
OUTSIDE_CD = "outside_cd"  # a CD from another hospital, its accession unknown here
POINT_OF_CARE = "point_of_care"  # a bedside ultrasound nobody ordered
ORDERED_ORIGINS = (SYNTHEA_ORDER, NEW_ORDER, ORDER_WITHOUT_IMAGES)

# Study features: which PHI placements and extra instances a study gets.
FEATURE_PROBABILITY: dict[str, float] = {
    "description_names": 0.3,  # StudyDescription names the referring physician
    "comment_names": 0.2,  # ImageComments names the patient
    "history": 0.3,  # AdditionalPatientHistory with a prior date and a physician
    "request_names": 0.4,  # RequestedProcedureDescription names the physician
    "referrer_sequence": 0.5,  # ReferringPhysicianIdentificationSequence, two levels deep
    "patient_contact": 0.6,  # PatientAddress and PatientTelephoneNumbers
    "sr": 0.35,  # a Basic Text SR report instance
    "pdf": 0.1,  # a scanned requisition as encapsulated PDF
    "key_images": 0.3,  # a secondary capture with burned-in annotation
}
FEATURE_MODALITIES: dict[str, tuple[str, ...]] = {
    "comment_names": ("CT", "MR"),
    "sr": ("CT", "MR", "PT"),
    "key_images": ("CT", "MR"),
}
ORDER_ONLY_FEATURES = ("request_names", "sr", "pdf")


@dataclass
class Exam:
    person: SyntheaPerson
    template: StudyTemplate
    modality: str
    date: dt.date
    visit_occurrence_id: int
    origin: str
    procedure_occurrence_id: int | None = None
    new_procedure: bool = False  # the procedure row is ours, not Synthea's
    mrn: str = ""  # the MRN the exam was done under
    other_mrn: str = ""  # the person's other MRN, if the modality knew it
    order: Order | None = None

    @property
    def has_order(self) -> bool:
        return self.origin in ORDERED_ORIGINS

    @property
    def has_images(self) -> bool:
        return self.origin != ORDER_WITHOUT_IMAGES


@dataclass
class Order:
    patient: Patient
    exam: Exam
    mrn: str
    accession: str
    department: str
    ordered_at: dt.datetime
    referring: Clinician
    reading: Clinician
    note_id: int = 0

    @property
    def description(self) -> str:
        return self.exam.template.description


@dataclass
class Study:
    index: int
    patient: Patient
    exam: Exam
    device: Device
    institution: Institution
    started_at: dt.datetime
    accession: str  # "" when nobody ordered the study
    referring: Clinician
    reading: Clinician
    operator: Name
    order: Order | None
    features: set[str] = field(default_factory=set)
    prior: Study | None = None

    @property
    def template(self) -> StudyTemplate:
        return self.exam.template

    @property
    def modality(self) -> str:
        return self.exam.modality

    @property
    def department(self) -> str:
        return self.exam.template.department

    @property
    def mrn(self) -> str:
        return self.exam.mrn

    @property
    def other_mrn(self) -> str:
        return self.exam.other_mrn


@dataclass
class ArchivePlan:
    patients: list[Patient]
    studies: list[Study]
    orders: list[Order]
    procedure_rows: list[dict[str, str]]
    duplicated_accessions: list[dict[str, object]]


# ---------------------------------------------------------------- exams (EHR facts only)


def pick_visit(rng: random.Random, person: SyntheaPerson, used_dates: set[dt.date]) -> Visit:
    free = [visit for visit in person.visits if visit.start_date not in used_dates]
    visit = rng.choice(free or list(person.visits))
    used_dates.add(visit.start_date)
    return visit


def synthea_exams(
    rng: random.Random, person: SyntheaPerson, used_dates: set[dt.date], limit: int
) -> list[Exam]:
    first_per_date: dict[dt.date, Procedure] = {}
    for procedure in person.imaging_procedures:
        if procedure.concept_id in TEMPLATE_BY_SYNTHEA_CONCEPT:
            first_per_date.setdefault(procedure.date, procedure)
    exams = []
    for procedure in rng.sample(list(first_per_date.values()), min(limit, len(first_per_date))):
        template = TEMPLATE_BY_SYNTHEA_CONCEPT[procedure.concept_id]
        used_dates.add(procedure.date)
        exams.append(
            Exam(
                person=person,
                template=template,
                modality=rng.choice(template.modalities),
                date=procedure.date,
                visit_occurrence_id=procedure.visit_occurrence_id,
                origin=SYNTHEA_ORDER,
                procedure_occurrence_id=procedure.procedure_occurrence_id,
            )
        )
    return exams


def new_exam(
    rng: random.Random,
    person: SyntheaPerson,
    template: StudyTemplate,
    used_dates: set[dt.date],
    origin: str,
    procedure_ids: Iterator[int],
) -> Exam:
    visit = pick_visit(rng, person, used_dates)
    exam = Exam(
        person, template, rng.choice(template.modalities), visit.start_date, visit.visit_occurrence_id, origin
    )
    if exam.has_order:
        exam.procedure_occurrence_id = next(procedure_ids)
        exam.new_procedure = True
    return exam


def next_template(rotation: Iterator[str], person: SyntheaPerson) -> StudyTemplate:
    """The next exam of the rotation that fits the person (no obstetric ultrasound for men)."""
    while True:
        template = TEMPLATES[next(rotation)]
        if person.sex in template.sexes:
            return template


def plan_exams(
    rng: random.Random, persons: Sequence[SyntheaPerson], procedure_ids: Iterator[int]
) -> list[Exam]:
    rotation = itertools.cycle(ROTATION)
    used_dates: dict[int, set[dt.date]] = defaultdict(set)
    exams: list[Exam] = []
    for person in persons:
        dates = used_dates[person.person_id]
        own = synthea_exams(rng, person, dates, limit=2)
        exams += own
        for _ in range(max(1, rng.choice((3, 3, 3, 4)) - len(own))):
            exams.append(
                new_exam(rng, person, next_template(rotation, person), dates, NEW_ORDER, procedure_ids)
            )

    # The linkage edge cases, each for a different person.
    special = rng.sample(list(persons), ORDERS_WITHOUT_IMAGES + 3)
    cases = [(person, next_template(rotation, person), ORDER_WITHOUT_IMAGES) for person in special[:-3]]
    cases += [
        (special[-3], FILM_TEMPLATE, OUTSIDE_FILM),
        (special[-2], TEMPLATES["CT_CHEST"], OUTSIDE_CD),
        (special[-1], TEMPLATES["US_ABDOMEN"], POINT_OF_CARE),
    ]
    for person, template, origin in cases:
        exams.append(new_exam(rng, person, template, used_dates[person.person_id], origin, procedure_ids))
    ensure_both_radiography_modalities(exams)
    return sorted(exams, key=lambda exam: (exam.person.person_id, exam.date, exam.template.key))


def ensure_both_radiography_modalities(exams: Sequence[Exam]) -> None:
    radiographs = [exam for exam in exams if exam.template.modalities == ("CR", "DX") and exam.has_images]
    for wanted in ("CR", "DX"):
        if len(radiographs) >= 2 and all(exam.modality != wanted for exam in radiographs):
            radiographs[0 if wanted == "CR" else -1].modality = wanted


def procedure_rows(exams: Sequence[Exam], concept_codes: dict[int, str]) -> list[dict[str, str]]:
    rows = []
    for exam in exams:
        if not exam.new_procedure or exam.procedure_occurrence_id is None:
            continue
        concept = exam.template.synthea_concepts[0] if exam.template.synthea_concepts else 0
        source_value = (
            concept_codes.get(concept, exam.template.local_code) if concept else exam.template.local_code
        )
        rows.append(
            new_procedure_row(
                exam.procedure_occurrence_id,
                exam.person.person_id,
                concept,
                source_value,
                exam.date,
                exam.visit_occurrence_id,
            )
        )
    return sorted(rows, key=lambda row: int(row["procedure_occurrence_id"]))


# ---------------------------------------------------------------- identities, orders, studies


def choose_two_mrn_persons(rng: random.Random, exams: Sequence[Exam]) -> set[int]:
    imaged: dict[int, int] = defaultdict(int)
    for exam in exams:
        if exam.has_images:
            imaged[exam.person.person_id] += 1
    candidates = sorted(person_id for person_id, count in imaged.items() if count >= 2)
    return set(rng.sample(candidates, min(PERSONS_WITH_TWO_MRNS, len(candidates))))


def assign_mrns(patient: Patient, exams: Sequence[Exam]) -> None:
    """Before the records merged the person's exams ran under the first MRN, afterwards under the second."""
    if len(patient.mrns) == 1:
        for exam in exams:
            exam.mrn = patient.mrns[0]
        return
    imaged = sorted((exam for exam in exams if exam.has_images), key=lambda exam: exam.date)
    switch_date = imaged[math.ceil(len(imaged) / 2)].date if len(imaged) > 1 else dt.date.max
    first, second = patient.mrns
    for exam in exams:
        exam.mrn, exam.other_mrn = (first, "") if exam.date < switch_date else (second, first)


def clock(rng: random.Random, date: dt.date, first_hour: int, last_hour: int) -> dt.datetime:
    return dt.datetime.combine(date, dt.time(rng.randrange(first_hour, last_hour), rng.randrange(0, 60, 5)))


def study_start(rng: random.Random, ordered_at: dt.datetime) -> dt.datetime:
    start = ordered_at + dt.timedelta(minutes=rng.randrange(20, 180), seconds=rng.randrange(60))
    latest = dt.datetime.combine(ordered_at.date(), dt.time(22, 59))
    return min(start, latest)  # the study date must equal the order date


class AccessionCounters:
    """Each department's RIS numbers its orders on its own: same format, independent counters."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._next = {department: rng.randrange(10_000_000, 90_000_000) for department in sorted(DEPARTMENTS)}

    def next(self, department: str) -> str:
        value = self._next[department]
        self._next[department] = value + self._rng.randrange(1, 400)
        return str(value)


def force_duplicate_accessions(rng: random.Random, orders: Sequence[Order]) -> list[dict[str, object]]:
    """Give radiology orders the accession of another department's order for another patient."""
    sources = sorted(
        (order for order in orders if order.department != "RAD" and order.exam.has_images),
        key=lambda order: order.accession,
    )
    radiology = [order for order in orders if order.department == "RAD"]
    without_images = [order for order in radiology if not order.exam.has_images]
    with_images = [order for order in radiology if order.exam.has_images]
    taken: set[int] = set()  # note ids, one per order
    duplicates: list[dict[str, object]] = []
    for position, source in enumerate(rng.sample(sources, min(DUPLICATED_ACCESSIONS, len(sources)))):
        pool = without_images if position == 0 and without_images else with_images
        targets = [
            order
            for order in rng.sample(pool, len(pool))
            if order.patient.person_id != source.patient.person_id and order.note_id not in taken
        ]
        if not targets:
            continue
        target = targets[0]
        taken.update((source.note_id, target.note_id))
        target.accession = source.accession
        duplicates.append(
            {
                "accession": source.accession,
                "orders": [
                    {"department": DEPARTMENTS[o.department], "person_id": o.patient.person_id, "mrn": o.mrn}
                    for o in (source, target)
                ],
            }
        )
    return duplicates


def device_for(rng: random.Random, exam: Exam) -> tuple[Device, Institution]:
    group = exam.template.device_group or exam.modality
    device = rng.choice(DEVICES[group])
    if exam.origin == OUTSIDE_CD:
        return replace(
            device, station="LCHCT2", serial="LCH-0442", site=OUTSIDE_HOSPITAL.short
        ), OUTSIDE_HOSPITAL
    return device, INSTITUTIONS[device.site]


def choose_features(rng: random.Random, studies: Sequence[Study]) -> None:
    """Random features per study, each feature present at least once where it can be."""
    for feature, probability in FEATURE_PROBABILITY.items():
        eligible = [study for study in studies if feature_fits(feature, study)]
        for study in eligible:
            if rng.random() < probability:
                study.features.add(feature)
        if eligible and not any(feature in study.features for study in eligible):
            eligible[0].features.add(feature)


def feature_fits(feature: str, study: Study) -> bool:
    if feature in ORDER_ONLY_FEATURES and study.order is None:
        return False
    modalities = FEATURE_MODALITIES.get(feature)
    return modalities is None or study.modality in modalities


def link_priors(rng: random.Random, studies: Sequence[Study]) -> None:
    by_person: dict[int, list[Study]] = defaultdict(list)
    for study in studies:
        by_person[study.patient.person_id].append(study)
    for person_studies in by_person.values():
        ordered = sorted(person_studies, key=lambda study: study.started_at)
        for previous, current in itertools.pairwise(ordered):
            if rng.random() < 0.6:
                current.prior = previous


def place_orders(
    rng: random.Random,
    exams: Sequence[Exam],
    patient_of: dict[int, Patient],
    referrers: Sequence[Clinician],
    radiologists: Sequence[Clinician],
) -> list[Order]:
    """An order per ordered exam, numbered per department in time order; note ids follow the same order."""
    orders: list[Order] = []
    for exam in exams:
        if exam.has_order:
            exam.order = Order(
                patient=patient_of[exam.person.person_id],
                exam=exam,
                mrn=exam.mrn,
                accession="",
                department=exam.template.department,
                ordered_at=clock(rng, exam.date, 7, 17),
                referring=rng.choice(referrers),
                reading=rng.choice(radiologists),
            )
            orders.append(exam.order)
    orders.sort(key=lambda order: (order.ordered_at, order.patient.person_id))
    counters = AccessionCounters(rng)
    for note_id, order in enumerate(orders, start=1):
        order.accession = counters.next(order.department)
        order.note_id = note_id
    return orders


def make_studies(
    rng: random.Random,
    exams: Sequence[Exam],
    patient_of: dict[int, Patient],
    referrers: Sequence[Clinician],
    radiologists: Sequence[Clinician],
    technologists: Sequence[Name],
) -> list[Study]:
    studies: list[Study] = []
    for exam in exams:
        if not exam.has_images:
            continue
        order = exam.order
        device, institution = device_for(rng, exam)
        studies.append(
            Study(
                index=0,
                patient=patient_of[exam.person.person_id],
                exam=exam,
                device=device,
                institution=institution,
                started_at=study_start(rng, order.ordered_at) if order else clock(rng, exam.date, 8, 20),
                accession=order.accession if order else outside_accession(rng, exam),
                referring=order.referring if order else rng.choice(referrers),
                reading=order.reading if order else rng.choice(radiologists),
                operator=rng.choice(technologists),
                order=order,
            )
        )
    studies.sort(key=lambda study: (study.patient.person_id, study.started_at))
    for index, study in enumerate(studies):
        study.index = index
    choose_features(rng, studies)
    link_priors(rng, studies)
    return studies


def plan_archive(
    rng: random.Random,
    persons: Sequence[SyntheaPerson],
    concept_codes: dict[int, str],
    first_new_procedure_id: int,
) -> ArchivePlan:
    exams = plan_exams(rng, persons, itertools.count(first_new_procedure_id))
    two_mrn_ids = choose_two_mrn_persons(rng, exams)
    patients = make_patients(rng, [(p.person_id, p.sex, p.birth_date) for p in persons], two_mrn_ids)
    patient_of = {patient.person_id: patient for patient in patients}
    referrers = make_clinicians(rng, 8)
    radiologists = make_clinicians(rng, 4)
    technologists = make_technologists(rng, 8)
    exams_by_person: dict[int, list[Exam]] = defaultdict(list)
    for exam in exams:
        exams_by_person[exam.person.person_id].append(exam)
    for person_id, person_exams in exams_by_person.items():
        assign_mrns(patient_of[person_id], person_exams)

    orders = place_orders(rng, exams, patient_of, referrers, radiologists)
    duplicates = force_duplicate_accessions(rng, orders)
    studies = make_studies(rng, exams, patient_of, referrers, radiologists, technologists)
    return ArchivePlan(
        patients=patients,
        studies=studies,
        orders=orders,
        procedure_rows=procedure_rows(exams, concept_codes),
        duplicated_accessions=duplicates,
    )


def outside_accession(rng: random.Random, exam: Exam) -> str:
    if exam.origin == OUTSIDE_CD:
        return f"X{rng.randrange(1_000_000, 9_999_999)}"  # the other hospital's numbering
    return ""


# ---------------------------------------------------------------- EHR crosswalk tables

CROSSWALK_COLUMNS = ("person_id", "mrn", "birth_date")
IMAGING_ORDER_COLUMNS = (
    "mrn",
    "birth_date",
    "accession_number",
    "procedure_occurrence_id",
    "visit_occurrence_id",
    "note_id",
    "department",
    "modality",
    "order_datetime",
)


def crosswalk_rows(patients: Sequence[Patient]) -> list[dict[str, object]]:
    return [
        {"person_id": patient.person_id, "mrn": mrn, "birth_date": patient.birth_date.isoformat()}
        for patient in patients
        for mrn in patient.mrns
    ]


def imaging_order_rows(orders: Sequence[Order]) -> list[dict[str, object]]:
    return [
        {
            "mrn": order.mrn,
            "birth_date": order.patient.birth_date.isoformat(),
            "accession_number": order.accession,
            "procedure_occurrence_id": order.exam.procedure_occurrence_id,
            "visit_occurrence_id": order.exam.visit_occurrence_id,
            "note_id": order.note_id,
            "department": DEPARTMENTS[order.department],
            "modality": order.exam.modality,
            "order_datetime": order.ordered_at.isoformat(sep=" "),
        }
        for order in orders
    ]
