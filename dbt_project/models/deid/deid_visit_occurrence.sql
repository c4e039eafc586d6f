{%- set subject = 'cast(person_id as ' ~ type_text() ~ ')' %}
select
    {{ deid_offset_id('visit_occurrence', 'visit_occurrence_id') }} as visit_occurrence_id,
    {{ deid_substitute_id('person_id') }} as person_id,
    visit_concept_id,
    {{ deid_shift_date('visit_start_date', subject) }} as visit_start_date,
    {{ deid_shift_date('visit_end_date', subject) }} as visit_end_date,
    visit_type_concept_id,
    {{ deid_offset_id('visit_occurrence', 'preceding_visit_occurrence_id') }} as preceding_visit_occurrence_id
from {{ ref('stg_ehr__visit_occurrence') }}
