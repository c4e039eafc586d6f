-- EHR measurements and the image-feature values, with the same pseudonyms and date shifts.
{%- set subject = 'cast(person_id as ' ~ type_text() ~ ')' %}
with measurements as (
    select
        measurement_id, person_id, measurement_concept_id, measurement_date, measurement_datetime,
        measurement_type_concept_id, value_as_number, unit_concept_id, visit_occurrence_id,
        measurement_source_value, measurement_source_concept_id, unit_source_value
    from {{ ref('stg_ehr__measurement') }}
    union all
    select
        measurement_id, person_id, measurement_concept_id, measurement_date, measurement_datetime,
        measurement_type_concept_id, value_as_number, unit_concept_id, visit_occurrence_id,
        measurement_source_value, measurement_source_concept_id, unit_source_value
    from {{ ref('image_feature_measurement') }}
)

select
    {{ deid_offset_id('measurement', 'measurement_id') }} as measurement_id,
    {{ deid_substitute_id('person_id') }} as person_id,
    measurement_concept_id,
    {{ deid_shift_date('measurement_date', subject) }} as measurement_date,
    {{ deid_shift_datetime('cast(measurement_datetime as ' ~ type_datetime() ~ ')', subject) }} as measurement_datetime,
    measurement_type_concept_id,
    value_as_number,
    unit_concept_id,
    {{ deid_offset_id('visit_occurrence', 'visit_occurrence_id') }} as visit_occurrence_id,
    measurement_source_value,
    measurement_source_concept_id,
    unit_source_value
from measurements
