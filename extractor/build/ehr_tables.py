"""The EHR tables imgomop reads: OMOP CDM 5.4 tables plus the imaging-order crosswalk an EHR has.

One dict per table: column -> DuckDB type. Columns marked required must be in the input file;
the others are filled with NULL when missing. Tables not in REQUIRED_TABLES are created empty
when the input has no file for them, so the dbt sources always exist.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EhrTable:
    name: str
    columns: dict[str, str]
    required_columns: tuple[str, ...]
    required: bool = False
    description: str = ""


def _cols(spec: str) -> dict[str, str]:
    """Parse 'name TYPE, name TYPE' into an ordered dict."""
    pairs = (part.split() for part in spec.split(","))
    return {name: kind for name, kind in pairs}


EHR_TABLES: tuple[EhrTable, ...] = (
    EhrTable(
        "person",
        _cols(
            "person_id BIGINT, gender_concept_id BIGINT, year_of_birth BIGINT, month_of_birth BIGINT, "
            "day_of_birth BIGINT, birth_datetime TIMESTAMP, race_concept_id BIGINT, ethnicity_concept_id BIGINT, "
            "location_id BIGINT, provider_id BIGINT, care_site_id BIGINT, person_source_value VARCHAR, "
            "gender_source_value VARCHAR, gender_source_concept_id BIGINT, race_source_value VARCHAR, "
            "race_source_concept_id BIGINT, ethnicity_source_value VARCHAR, ethnicity_source_concept_id BIGINT"
        ),
        ("person_id", "gender_concept_id", "year_of_birth"),
        required=True,
    ),
    EhrTable(
        "visit_occurrence",
        _cols(
            "visit_occurrence_id BIGINT, person_id BIGINT, visit_concept_id BIGINT, visit_start_date DATE, "
            "visit_start_datetime TIMESTAMP, visit_end_date DATE, visit_end_datetime TIMESTAMP, "
            "visit_type_concept_id BIGINT, provider_id BIGINT, care_site_id BIGINT, visit_source_value VARCHAR, "
            "visit_source_concept_id BIGINT, admitted_from_concept_id BIGINT, admitted_from_source_value VARCHAR, "
            "discharged_to_concept_id BIGINT, discharged_to_source_value VARCHAR, preceding_visit_occurrence_id BIGINT"
        ),
        ("visit_occurrence_id", "person_id", "visit_concept_id", "visit_start_date"),
        required=True,
    ),
    EhrTable(
        "procedure_occurrence",
        _cols(
            "procedure_occurrence_id BIGINT, person_id BIGINT, procedure_concept_id BIGINT, procedure_date DATE, "
            "procedure_datetime TIMESTAMP, procedure_end_date DATE, procedure_end_datetime TIMESTAMP, "
            "procedure_type_concept_id BIGINT, modifier_concept_id BIGINT, quantity BIGINT, provider_id BIGINT, "
            "visit_occurrence_id BIGINT, visit_detail_id BIGINT, procedure_source_value VARCHAR, "
            "procedure_source_concept_id BIGINT, modifier_source_value VARCHAR"
        ),
        ("procedure_occurrence_id", "person_id", "procedure_concept_id", "procedure_date"),
        required=True,
    ),
    EhrTable(
        "condition_occurrence",
        _cols(
            "condition_occurrence_id BIGINT, person_id BIGINT, condition_concept_id BIGINT, "
            "condition_start_date DATE, condition_start_datetime TIMESTAMP, condition_end_date DATE, "
            "condition_end_datetime TIMESTAMP, condition_type_concept_id BIGINT, condition_status_concept_id BIGINT, "
            "stop_reason VARCHAR, provider_id BIGINT, visit_occurrence_id BIGINT, visit_detail_id BIGINT, "
            "condition_source_value VARCHAR, condition_source_concept_id BIGINT, condition_status_source_value VARCHAR"
        ),
        ("condition_occurrence_id", "person_id", "condition_concept_id", "condition_start_date"),
    ),
    EhrTable(
        "measurement",
        _cols(
            "measurement_id BIGINT, person_id BIGINT, measurement_concept_id BIGINT, measurement_date DATE, "
            "measurement_datetime TIMESTAMP, measurement_time VARCHAR, measurement_type_concept_id BIGINT, "
            "operator_concept_id BIGINT, value_as_number DOUBLE, value_as_concept_id BIGINT, unit_concept_id BIGINT, "
            "range_low DOUBLE, range_high DOUBLE, provider_id BIGINT, visit_occurrence_id BIGINT, "
            "visit_detail_id BIGINT, measurement_source_value VARCHAR, measurement_source_concept_id BIGINT, "
            "unit_source_value VARCHAR, unit_source_concept_id BIGINT, value_source_value VARCHAR, "
            "measurement_event_id BIGINT, meas_event_field_concept_id BIGINT"
        ),
        ("measurement_id", "person_id", "measurement_concept_id", "measurement_date"),
    ),
    EhrTable(
        "note",
        _cols(
            "note_id BIGINT, person_id BIGINT, note_date DATE, note_datetime TIMESTAMP, note_type_concept_id BIGINT, "
            "note_class_concept_id BIGINT, note_title VARCHAR, note_text VARCHAR, encoding_concept_id BIGINT, "
            "language_concept_id BIGINT, provider_id BIGINT, visit_occurrence_id BIGINT, visit_detail_id BIGINT, "
            "note_source_value VARCHAR, note_event_id BIGINT, note_event_field_concept_id BIGINT"
        ),
        ("note_id", "person_id", "note_date"),
    ),
    EhrTable(
        "concept",
        _cols(
            "concept_id BIGINT, concept_name VARCHAR, domain_id VARCHAR, vocabulary_id VARCHAR, "
            "concept_class_id VARCHAR, standard_concept VARCHAR, concept_code VARCHAR, valid_start_date VARCHAR, "
            "valid_end_date VARCHAR, invalid_reason VARCHAR"
        ),
        ("concept_id", "concept_name", "vocabulary_id", "concept_code"),
        description="an Athena CONCEPT table (or the subset a package ships)",
    ),
    EhrTable(
        "mrn_crosswalk",
        _cols("person_id BIGINT, mrn VARCHAR, birth_date DATE"),
        ("person_id", "mrn", "birth_date"),
        required=True,
        description="EHR source: every MRN of a person with the birth date on record",
    ),
    EhrTable(
        "imaging_order",
        _cols(
            "mrn VARCHAR, birth_date DATE, accession_number VARCHAR, procedure_occurrence_id BIGINT, "
            "visit_occurrence_id BIGINT, note_id BIGINT, department VARCHAR, modality VARCHAR, "
            "order_datetime TIMESTAMP"
        ),
        ("mrn", "birth_date", "accession_number", "procedure_occurrence_id"),
        required=True,
        description="EHR source: imaging orders (MRN, birth date, accession -> procedure, visit, note)",
    ),
)

EHR_TABLES_BY_NAME = {t.name: t for t in EHR_TABLES}
