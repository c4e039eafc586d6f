-- One row per harvested series: DICOM strings typed and normalised, invalid dates flagged.
with source as (
    select * from {{ source('dicom', 'raw_dicom_series') }}
),

typed as (
    select
        series_instance_uid,
        study_instance_uid,
        trim(patient_id) as patient_id,
        {{ normalize_mrn('patient_id') }} as mrn,
        {{ dicom_date('patient_birth_date') }} as birth_date,
        {{ normalize_accession('accession_number') }} as accession_number,
        {{ dicom_date('study_date') }} as study_date,
        {{ dicom_date('series_date') }} as series_date,
        {{ dicom_datetime('study_date', 'study_time') }} as study_datetime,
        {{ dicom_datetime('series_date', 'series_time') }} as series_datetime,
        cast(first_acquisition_datetime as {{ type_datetime() }}) as first_acquisition_datetime,
        patient_birth_date as birth_date_source_value,
        study_date as study_date_source_value,
        series_date as series_date_source_value,
        upper(trim(patient_sex)) as patient_sex,
        upper(trim(modality)) as modality,
        nullif(upper(trim(body_part_examined)), '') as body_part_examined,
        nullif(trim(study_description), '') as study_description,
        nullif(trim(series_description), '') as series_description,
        nullif(trim(protocol_name), '') as protocol_name,
        nullif(trim(manufacturer), '') as manufacturer,
        nullif(trim(manufacturer_model_name), '') as manufacturer_model_name,
        nullif(trim(software_versions), '') as software_versions,
        nullif(trim(station_name), '') as station_name,
        nullif(trim(institution_name), '') as institution_name,
        {{ dicom_first_number('series_number') }} as series_number,
        {{ dicom_first_number('slice_thickness') }} as slice_thickness,
        {{ dicom_first_number('spacing_between_slices') }} as spacing_between_slices,
        {{ dicom_first_number('kvp') }} as kvp,
        {{ dicom_first_number('pixel_spacing') }} as pixel_spacing,
        {{ dicom_first_number('magnetic_field_strength') }} as magnetic_field_strength,
        cast(image_rows as {{ type_id() }}) as image_rows,
        cast(image_columns as {{ type_id() }}) as image_columns,
        instance_count,
        file_count,
        total_bytes,
        conflicting_attributes,
        representative_location,
        updated_at as harvested_at
    from source
)

select
    *,
    birth_date is null and birth_date_source_value is not null as birth_date_invalid,
    study_date is null and study_date_source_value is not null as study_date_invalid,
    series_date is null and series_date_source_value is not null as series_date_invalid,
    -- a series whose instances disagree on who the patient is, or on the order, never links
    coalesce(
        {{ dbt.position("'patient_id'", 'conflicting_attributes') }} > 0
        or {{ dbt.position("'patient_birth_date'", 'conflicting_attributes') }} > 0
        or {{ dbt.position("'accession_number'", 'conflicting_attributes') }} > 0,
        false
    ) as has_conflicting_identity
from typed
