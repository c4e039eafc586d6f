-- OMOP Medical Imaging IMAGE_OCCURRENCE: one row per linked series (the field spec requires a
-- person and a procedure), plus the STARR extension columns and the attributes analysts filter on.
-- image_occurrence_id is derived from the Series Instance UID, so it is stable across refreshes.
with linked as (
    select * from {{ ref('int_series_linkage') }} where is_linked
),

series as (
    select * from {{ ref('stg_dicom__series') }}
)

select
    {{ stable_id("'image_occurrence|' || s.series_instance_uid") }} as image_occurrence_id,
    cast(l.order_person_id as {{ type_id() }}) as person_id,
    cast(l.procedure_occurrence_id as {{ type_id() }}) as procedure_occurrence_id,
    cast(l.visit_occurrence_id as {{ type_id() }}) as visit_occurrence_id,
    cast(c.anatomic_site_concept_id as {{ type_id() }}) as anatomic_site_concept_id,
    {% if var('wadors_base_url', none) -%}
    cast('{{ var("wadors_base_url") }}/studies/' || s.study_instance_uid || '/series/' || s.series_instance_uid as {{ type_text() }})
    {%- else -%}
    cast(null as {{ type_text() }})
    {%- endif %} as wadors_uri,
    cast({{ regexp_replace_all('s.representative_location', '/[^/]*$', '') }} as {{ type_text() }}) as local_path,
    cast(coalesce(s.series_date, s.study_date, cast(s.first_acquisition_datetime as date), cast(l.order_datetime as date)) as date)
        as image_occurrence_date,
    cast(s.study_instance_uid as {{ type_text() }}) as image_study_uid,
    cast(s.series_instance_uid as {{ type_text() }}) as image_series_uid,
    cast(c.modality_concept_id as {{ type_id() }}) as modality_concept_id,
    -- STARR extension columns (seed 000, Table 1)
    cast(coalesce(s.series_description, '') as {{ type_text() }}) as series_description,
    cast(coalesce(s.study_description, '') as {{ type_text() }}) as study_description,
    cast(coalesce(s.series_datetime, s.study_datetime, s.first_acquisition_datetime, l.order_datetime) as {{ type_datetime() }})
        as image_occurrence_datetime,
    cast(s.accession_number as {{ type_text() }}) as accession_number,
    cast(l.note_id as {{ type_id() }}) as note_id,
    cast(s.modality as {{ type_text() }}) as modality_source_value,
    cast(s.body_part_examined as {{ type_text() }}) as anatomic_site_source_value,
    cast(l.department as {{ type_text() }}) as source_flag,
    cast('raw_dicom_series' as {{ type_text() }}) as load_table_id,
    cast(cast(l.procedure_occurrence_id as {{ type_text() }}) || '|' || s.study_instance_uid || '|' || s.series_instance_uid
        as {{ type_text() }}) as trace_id,
    -- series attributes analysts filter on
    cast(s.manufacturer as {{ type_text() }}) as manufacturer,
    cast(s.manufacturer_model_name as {{ type_text() }}) as manufacturer_model_name,
    cast(s.protocol_name as {{ type_text() }}) as protocol_name,
    cast(s.series_number as {{ type_id() }}) as series_number,
    cast(s.instance_count as {{ type_id() }}) as instance_count,
    cast(s.total_bytes as {{ type_id() }}) as total_bytes,
    cast(s.slice_thickness as {{ type_float() }}) as slice_thickness,
    cast(s.spacing_between_slices as {{ type_float() }}) as spacing_between_slices,
    cast(s.pixel_spacing as {{ type_float() }}) as pixel_spacing,
    cast(s.kvp as {{ type_float() }}) as kvp,
    cast(s.magnetic_field_strength as {{ type_float() }}) as magnetic_field_strength,
    cast(s.image_rows as {{ type_id() }}) as image_rows,
    cast(s.image_columns as {{ type_id() }}) as image_columns,
    cast(l.link_tier_name as {{ type_text() }}) as link_tier
from linked as l
inner join series as s on s.series_instance_uid = l.series_instance_uid
inner join {{ ref('int_series_concepts') }} as c on c.series_instance_uid = l.series_instance_uid
