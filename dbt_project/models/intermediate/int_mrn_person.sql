-- MRN -> person. An MRN on record for two persons resolves to no one (it would link silently otherwise).
select
    mrn,
    min(person_id) as person_id,
    count(distinct person_id) as person_count
from {{ ref('stg_ehr__mrn_crosswalk') }}
group by mrn
