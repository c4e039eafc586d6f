-- One row per harvested series: linked (and by which tier) or why not.
select
    l.series_instance_uid,
    l.study_instance_uid,
    s.modality,
    s.accession_number,
    s.mrn,
    s.birth_date,
    l.link_status,
    l.is_linked,
    l.link_tier,
    l.link_tier_name,
    l.link_reason,
    l.candidate_count,
    l.orders_at_best_tier,
    case when l.is_linked then l.order_person_id end as person_id,
    case when l.is_linked then l.procedure_occurrence_id end as procedure_occurrence_id,
    s.harvested_at
from {{ ref('int_series_linkage') }} as l
inner join {{ ref('stg_dicom__series') }} as s on s.series_instance_uid = l.series_instance_uid
