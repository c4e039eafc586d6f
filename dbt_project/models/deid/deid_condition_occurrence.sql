{%- set subject = 'cast(person_id as ' ~ type_text() ~ ')' %}
select
    {{ deid_offset_id('condition_occurrence', 'condition_occurrence_id') }} as condition_occurrence_id,
    {{ deid_substitute_id('person_id') }} as person_id,
    condition_concept_id,
    {{ deid_shift_date('condition_start_date', subject) }} as condition_start_date,
    {{ deid_shift_date('condition_end_date', subject) }} as condition_end_date,
    condition_type_concept_id,
    condition_status_concept_id,
    {{ deid_offset_id('visit_occurrence', 'visit_occurrence_id') }} as visit_occurrence_id,
    condition_source_value,
    condition_source_concept_id
from {{ ref('stg_ehr__condition_occurrence') }}
