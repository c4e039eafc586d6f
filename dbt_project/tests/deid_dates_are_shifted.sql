-- Every de-identified image date differs from its identified original (jitter is never zero),
-- and every study of a person moves by the same number of days (intervals survive).
with pairs as (
    select
        i.person_id,
        i.image_occurrence_date as original_date,
        d.image_occurrence_date as shifted_date
    from {{ ref('image_occurrence') }} as i
    inner join {{ ref('deid_image_occurrence') }} as d
        on d.image_occurrence_id = {{ deid_offset_id('image_occurrence', 'i.image_occurrence_id') }}
),

shifts as (
    select person_id, count(distinct {{ dbt.datediff('original_date', 'shifted_date', 'day') }}) as distinct_shifts
    from pairs
    group by person_id
)

select 'unshifted date' as problem, cast(person_id as {{ dbt.type_string() }}) as person
from pairs where original_date = shifted_date
union all
select 'person shifted by more than one amount', cast(person_id as {{ dbt.type_string() }})
from shifts where distinct_shifts > 1
