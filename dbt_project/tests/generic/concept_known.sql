{#- A concept id is 0 (unmapped, kept and counted) or a concept the warehouse knows:
    the site's CONCEPT table or the project's vocabulary seeds. -#}
{% test concept_known(model, column_name) %}
with known as (
    select concept_id from {{ ref('stg_ehr__concept') }}
    union all select concept_id from {{ ref('dicom_modality_concept') }}
    union all select anatomic_site_concept_id from {{ ref('dicom_anatomic_site_concept') }}
    union all select concept_id from {{ ref('image_feature_concept') }}
    union all select cast({{ var('image_feature_type_concept_id') }} as {{ dbt.type_bigint() }})
    union all select cast({{ var('measurement_event_field_concept_id') }} as {{ dbt.type_bigint() }})
)
select {{ column_name }} as unknown_concept_id
from {{ model }}
where {{ column_name }} is not null
  and {{ column_name }} <> 0
  and {{ column_name }} not in (select concept_id from known where concept_id is not null)
{% endtest %}
