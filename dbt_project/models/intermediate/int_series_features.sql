-- Acquisition parameters of each linked series as (feature, value) rows: the source of the
-- image_feature rows and of the measurement rows they point to.
{%- set features = ['slice_thickness', 'spacing_between_slices', 'pixel_spacing', 'kvp', 'magnetic_field_strength', 'image_rows', 'image_columns'] %}
with occurrences as (
    select * from {{ ref('image_occurrence') }}
),

unpivoted as (
    {%- for feature in features %}
    select
        image_occurrence_id,
        person_id,
        visit_occurrence_id,
        image_series_uid,
        image_occurrence_date,
        image_occurrence_datetime,
        anatomic_site_concept_id,
        '{{ feature | replace("image_", "") }}' as feature_name,
        cast({{ feature }} as {{ type_float() }}) as value_as_number
    from occurrences
    where {{ feature }} is not null
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
)

select
    u.*,
    coalesce(f.concept_id, 0) as feature_concept_id,
    coalesce(f.unit_concept_id, 0) as unit_concept_id,
    f.unit_source_value,
    f.dicom_keyword
from unpivoted as u
left join {{ ref('image_feature_concept') }} as f on f.feature_name = u.feature_name
