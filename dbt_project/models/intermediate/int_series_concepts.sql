-- Modality and anatomic site concepts per series. A site's own Athena CONCEPT table wins
-- where it has the code (DICOM vocabulary for modality; SNOMED 'Maps to' targets come from
-- the project's seeds); anything unmapped is concept 0, kept and counted.
with series as (
    select series_instance_uid, modality, body_part_examined from {{ ref('stg_dicom__series') }}
),

site_concepts as (
    select concept_code, min(concept_id) as concept_id
    from {{ ref('stg_ehr__concept') }}
    where vocabulary_id = 'DICOM' and (standard_concept is null or standard_concept <> 'X')
    group by concept_code
)

select
    s.series_instance_uid,
    s.modality,
    s.body_part_examined,
    coalesce(site_modality.concept_id, m.concept_id, 0) as modality_concept_id,
    coalesce(a.anatomic_site_concept_id, 0) as anatomic_site_concept_id
from series as s
left join site_concepts as site_modality on site_modality.concept_code = s.modality
left join {{ ref('dicom_modality_concept') }} as m on m.modality = s.modality
left join {{ ref('dicom_anatomic_site_concept') }} as a on a.body_part_examined = s.body_part_examined
