-- Operations per column (seed 000, Table 1): offset, substitute, allowlist redaction, jitter,
-- hash, delete, pass as is, and local_path replaced with the scrubbed copy's location.
{%- set manifest = adapter.get_relation(database=target.database, schema=target.schema, identifier='scrub_manifest_series') %}
with occurrences as (
    select * from {{ ref('image_occurrence') }}
),

redactions as (
    select * from {{ ref('int_description_redactions') }}
),

allowed_modalities as (
    select distinct modality from {{ ref('dicom_modality_concept') }}
),

allowed_sites as (
    select distinct body_part_examined from {{ ref('dicom_anatomic_site_concept') }}
)

select
    {{ deid_offset_id('image_occurrence', 'o.image_occurrence_id') }} as image_occurrence_id,
    {{ deid_substitute_id('o.person_id') }} as person_id,
    {{ deid_offset_id('procedure_occurrence', 'o.procedure_occurrence_id') }} as procedure_occurrence_id,
    {{ deid_offset_id('visit_occurrence', 'o.visit_occurrence_id') }} as visit_occurrence_id,
    o.anatomic_site_concept_id,
    {{ deid_delete(type_text()) }} as wadors_uri,
    {% if manifest is not none -%}
    m.scrubbed_series_path
    {%- else -%}
    {{ deid_delete(type_text()) }}
    {%- endif %} as local_path,
    {{ deid_shift_date('o.image_occurrence_date', 'cast(o.person_id as ' ~ type_text() ~ ')') }} as image_occurrence_date,
    {{ deid_hash_uid('o.image_study_uid') }} as image_study_uid,
    {{ deid_hash_uid('o.image_series_uid') }} as image_series_uid,
    o.modality_concept_id,
    coalesce(series_text.redacted_text, '') as series_description,
    coalesce(study_text.redacted_text, '') as study_description,
    {{ deid_shift_datetime('o.image_occurrence_datetime', 'cast(o.person_id as ' ~ type_text() ~ ')') }} as image_occurrence_datetime,
    {{ deid_hash_text('accession', 'o.accession_number') }} as accession_number,
    {{ deid_offset_id('note', 'o.note_id') }} as note_id,
    case when am.modality is not null then o.modality_source_value else '[X]' end as modality_source_value,
    case when ast.body_part_examined is not null then o.anatomic_site_source_value
         when o.anatomic_site_source_value is not null then '[X]' end as anatomic_site_source_value,
    o.source_flag,
    o.load_table_id,
    {{ deid_delete(type_text()) }} as trace_id,
    -- analyst filter columns: device make and model, geometry and acquisition parameters pass as is;
    -- the free-text protocol name is redacted like the descriptions
    o.manufacturer,
    o.manufacturer_model_name,
    protocol_text.redacted_text as protocol_name,
    o.series_number,
    o.instance_count,
    o.total_bytes,
    o.slice_thickness,
    o.spacing_between_slices,
    o.pixel_spacing,
    o.kvp,
    o.magnetic_field_strength,
    o.image_rows,
    o.image_columns,
    o.link_tier
from occurrences as o
left join redactions as series_text on series_text.raw_text = o.series_description
left join redactions as study_text on study_text.raw_text = o.study_description
left join redactions as protocol_text on protocol_text.raw_text = o.protocol_name
left join allowed_modalities as am on am.modality = o.modality_source_value
left join allowed_sites as ast on ast.body_part_examined = o.anatomic_site_source_value
{%- if manifest is not none %}
left join {{ manifest }} as m on m.series_instance_uid = o.image_series_uid
{%- endif %}
