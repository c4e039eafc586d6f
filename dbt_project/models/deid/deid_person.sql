-- Year of birth only, taken after the person's date shift; locations, providers and source ids deleted.
{%- set subject = 'cast(person_id as ' ~ type_text() ~ ')' %}
{%- set birth_date = 'coalesce(cast(birth_datetime as date), ' ~ make_date('year_of_birth', 'coalesce(month_of_birth, 7)', 'coalesce(day_of_birth, 1)') ~ ')' %}
select
    {{ deid_substitute_id('person_id') }} as person_id,
    gender_concept_id,
    extract(year from {{ deid_shift_date(birth_date, subject) }}) as year_of_birth,
    race_concept_id,
    ethnicity_concept_id,
    gender_source_value
from {{ ref('stg_ehr__person') }}
