-- Every (series, imaging order) pair that could belong together, with the linkage tier it reaches.
--
-- Tiers, best first (the composite key is MRN + date of birth + accession number, because an
-- accession number alone repeats across departments):
--   1 mrn_dob_accession            MRN, birth date and accession number all equal
--   2 alternate_mrn_dob_accession  accession and birth date equal; the two MRNs are different MRNs of one person
--   3 mrn_accession_missing_dob    MRN and accession equal; the DICOM birth date is missing or invalid
--   4 mrn_dob_date_modality        no accession in DICOM; MRN, birth date, order date = study date and modality equal
-- A pair that matches on accession but reaches no tier is kept with link_tier null: it explains
-- an identity mismatch in the audit.
with series as (
    select
        s.series_instance_uid,
        s.mrn,
        s.birth_date,
        s.accession_number,
        s.modality,
        coalesce(s.study_date, s.series_date) as study_date,
        case when p.person_count = 1 then p.person_id end as series_person_id
    from {{ ref('stg_dicom__series') }} as s
    left join {{ ref('int_mrn_person') }} as p on p.mrn = s.mrn
),

orders as (
    select
        o.*,
        case when p.person_count = 1 then p.person_id end as order_person_id
    from {{ ref('stg_ehr__imaging_order') }} as o
    left join {{ ref('int_mrn_person') }} as p on p.mrn = o.mrn
),

by_accession as (
    select
        s.series_instance_uid,
        o.procedure_occurrence_id,
        o.visit_occurrence_id,
        o.note_id,
        o.department,
        o.order_person_id,
        o.order_datetime,
        coalesce(s.mrn = o.mrn, false) as mrn_match,
        coalesce(s.series_person_id = o.order_person_id, false) as same_person,
        coalesce(s.birth_date = o.birth_date, false) as birth_date_match,
        s.birth_date is null as birth_date_missing,
        false as by_date
    from series as s
    inner join orders as o on o.accession_number = s.accession_number
),

by_date as (
    select
        s.series_instance_uid,
        o.procedure_occurrence_id,
        o.visit_occurrence_id,
        o.note_id,
        o.department,
        o.order_person_id,
        o.order_datetime,
        true as mrn_match,
        coalesce(s.series_person_id = o.order_person_id, false) as same_person,
        true as birth_date_match,
        false as birth_date_missing,
        true as by_date
    from series as s
    inner join orders as o
        on s.accession_number is null
        and o.mrn = s.mrn
        and o.birth_date = s.birth_date
        and o.order_date = s.study_date
        and o.modality = s.modality
),

candidates as (
    select * from by_accession
    union all
    select * from by_date
)

select
    *,
    case
        when by_date then 4
        when mrn_match and birth_date_match then 1
        when not mrn_match and same_person and birth_date_match then 2
        when mrn_match and birth_date_missing then 3
    end as link_tier,
    case
        when by_date then 'mrn_dob_date_modality'
        when mrn_match and birth_date_match then 'mrn_dob_accession'
        when not mrn_match and same_person and birth_date_match then 'alternate_mrn_dob_accession'
        when mrn_match and birth_date_missing then 'mrn_accession_missing_dob'
    end as link_tier_name
from candidates
