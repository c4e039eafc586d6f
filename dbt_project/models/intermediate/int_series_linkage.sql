-- One row per harvested series: the order it links to, by the best tier with exactly one
-- candidate order, or why it does not link. Ambiguous matches never link.
with series as (
    select * from {{ ref('stg_dicom__series') }}
),

candidates as (
    select * from {{ ref('int_series_order_candidates') }}
),

best_tier as (
    select
        series_instance_uid,
        min(link_tier) as link_tier,
        count(*) as candidate_count
    from candidates
    group by series_instance_uid
),

at_best_tier as (
    select
        c.series_instance_uid,
        count(distinct c.procedure_occurrence_id) as orders_at_best_tier,
        min(c.procedure_occurrence_id) as procedure_occurrence_id
    from candidates as c
    inner join best_tier as b
        on b.series_instance_uid = c.series_instance_uid
        and b.link_tier = c.link_tier
    group by c.series_instance_uid
),

chosen as (
    select c.*
    from candidates as c
    inner join at_best_tier as a
        on a.series_instance_uid = c.series_instance_uid
        and a.procedure_occurrence_id = c.procedure_occurrence_id
    inner join best_tier as b
        on b.series_instance_uid = c.series_instance_uid
        and b.link_tier = c.link_tier
    where a.orders_at_best_tier = 1
),

procedures as (
    select procedure_occurrence_id, person_id from {{ ref('stg_ehr__procedure_occurrence') }}
),

decided as (
    select
        s.series_instance_uid,
        s.study_instance_uid,
        coalesce(b.candidate_count, 0) as candidate_count,
        coalesce(a.orders_at_best_tier, 0) as orders_at_best_tier,
        ch.procedure_occurrence_id,
        ch.visit_occurrence_id,
        ch.note_id,
        ch.department,
        ch.order_datetime,
        ch.order_person_id,
        b.link_tier,
        ch.link_tier_name,
        case
            when s.has_conflicting_identity then 'conflicting_series'
            when b.link_tier is null and coalesce(b.candidate_count, 0) > 0 then 'identity_mismatch'
            when b.link_tier is null and s.accession_number is null then 'no_accession'
            when b.link_tier is null then 'no_order'
            when a.orders_at_best_tier > 1 then 'ambiguous'
            when ch.order_person_id is null then 'order_without_person'
            when p.procedure_occurrence_id is null then 'procedure_not_found'
            when p.person_id <> ch.order_person_id then 'procedure_person_mismatch'
            else 'linked'
        end as link_status
    from series as s
    left join best_tier as b on b.series_instance_uid = s.series_instance_uid
    left join at_best_tier as a on a.series_instance_uid = s.series_instance_uid
    left join chosen as ch on ch.series_instance_uid = s.series_instance_uid
    left join procedures as p on p.procedure_occurrence_id = ch.procedure_occurrence_id
)

select
    *,
    case link_status
        when 'linked' then 'linked by ' || link_tier_name
        when 'conflicting_series' then 'instances of the series disagree on patient ID, birth date or accession number'
        when 'identity_mismatch' then 'an order has this accession number, but MRN and birth date do not match it'
        when 'no_accession' then 'no accession number, and no order of this MRN and birth date on the study date with this modality'
        when 'no_order' then 'no imaging order has this accession number'
        when 'ambiguous' then cast(orders_at_best_tier as {{ type_text() }}) || ' orders match equally well at linkage tier ' || cast(link_tier as {{ type_text() }})
        when 'order_without_person' then '{{ escape_single_quotes("the order's MRN is not (or not uniquely) in the MRN crosswalk") }}'
        when 'procedure_not_found' then '{{ escape_single_quotes("the order's procedure_occurrence_id is not in procedure_occurrence") }}'
        when 'procedure_person_mismatch' then '{{ escape_single_quotes("the order's procedure belongs to another person") }}'
    end as link_reason,
    link_status = 'linked' as is_linked
from decided
