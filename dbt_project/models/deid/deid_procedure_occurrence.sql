{%- set subject = 'cast(person_id as ' ~ type_text() ~ ')' %}
select
    {{ deid_offset_id('procedure_occurrence', 'procedure_occurrence_id') }} as procedure_occurrence_id,
    {{ deid_substitute_id('person_id') }} as person_id,
    procedure_concept_id,
    {{ deid_shift_date('procedure_date', subject) }} as procedure_date,
    {{ deid_shift_date('procedure_end_date', subject) }} as procedure_end_date,
    procedure_type_concept_id,
    modifier_concept_id,
    quantity,
    {{ deid_offset_id('visit_occurrence', 'visit_occurrence_id') }} as visit_occurrence_id,
    procedure_source_value,
    procedure_source_concept_id
from {{ ref('stg_ehr__procedure_occurrence') }}
