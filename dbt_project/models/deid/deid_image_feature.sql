select
    {{ deid_offset_id('image_feature', 'image_feature_id') }} as image_feature_id,
    {{ deid_substitute_id('person_id') }} as person_id,
    {{ deid_offset_id('image_occurrence', 'image_occurrence_id') }} as image_occurrence_id,
    image_feature_concept_id,
    image_feature_type_concept_id,
    image_feature_event_field_concept_id,
    {{ deid_offset_id('measurement', 'image_feature_event_id') }} as image_feature_event_id,
    image_finding_concept_id,
    image_finding_id,
    anatomic_site_concept_id,
    alg_system,
    alg_datetime,
    feature_name
from {{ ref('image_feature') }}
