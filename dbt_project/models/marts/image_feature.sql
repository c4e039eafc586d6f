-- OMOP Medical Imaging IMAGE_FEATURE: one row per acquisition parameter of a series, pointing at
-- its value in image_feature_measurement, with provenance (type concept, algorithm, time).
select
    {{ stable_id("'image_feature|' || f.image_series_uid || '|' || f.feature_name") }} as image_feature_id,
    cast(f.person_id as {{ type_id() }}) as person_id,
    cast(f.image_occurrence_id as {{ type_id() }}) as image_occurrence_id,
    cast(f.feature_concept_id as {{ type_id() }}) as image_feature_concept_id,
    cast({{ var('image_feature_type_concept_id') }} as {{ type_id() }}) as image_feature_type_concept_id,
    cast({{ var('measurement_event_field_concept_id') }} as {{ type_id() }}) as image_feature_event_field_concept_id,
    m.measurement_id as image_feature_event_id,
    cast(0 as {{ type_id() }}) as image_finding_concept_id,
    cast(0 as {{ type_id() }}) as image_finding_id,
    cast(f.anatomic_site_concept_id as {{ type_id() }}) as anatomic_site_concept_id,
    cast('{{ var("alg_system") }}' as {{ type_text() }}) as alg_system,
    cast(s.harvested_at as {{ type_datetime() }}) as alg_datetime,
    cast(f.feature_name as {{ type_text() }}) as feature_name
from {{ ref('int_series_features') }} as f
inner join {{ ref('image_feature_measurement') }} as m
    on m.image_occurrence_id = f.image_occurrence_id and m.feature_name = f.feature_name
inner join {{ ref('stg_dicom__series') }} as s on s.series_instance_uid = f.image_series_uid
