-- MEASUREMENT-shaped rows holding the value of each image feature (the field spec keeps values
-- in a clinical domain table and has image_feature point at them).
select
    {{ stable_id("'measurement|' || image_series_uid || '|' || feature_name") }} as measurement_id,
    cast(person_id as {{ type_id() }}) as person_id,
    cast(feature_concept_id as {{ type_id() }}) as measurement_concept_id,
    cast(image_occurrence_date as date) as measurement_date,
    cast(image_occurrence_datetime as {{ type_datetime() }}) as measurement_datetime,
    cast({{ var('feature_measurement_type_concept_id') }} as {{ type_id() }}) as measurement_type_concept_id,
    cast(value_as_number as {{ type_float() }}) as value_as_number,
    cast(unit_concept_id as {{ type_id() }}) as unit_concept_id,
    cast(visit_occurrence_id as {{ type_id() }}) as visit_occurrence_id,
    cast(dicom_keyword as {{ type_text() }}) as measurement_source_value,
    cast(feature_concept_id as {{ type_id() }}) as measurement_source_concept_id,
    cast(unit_source_value as {{ type_text() }}) as unit_source_value,
    cast(image_occurrence_id as {{ type_id() }}) as image_occurrence_id,
    cast(feature_name as {{ type_text() }}) as feature_name
from {{ ref('int_series_features') }}
