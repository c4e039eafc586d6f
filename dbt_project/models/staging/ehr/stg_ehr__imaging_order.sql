-- Imaging orders with the identity they were placed under.
select
    {{ normalize_mrn('mrn') }} as mrn,
    cast(birth_date as date) as birth_date,
    {{ normalize_accession('accession_number') }} as accession_number,
    procedure_occurrence_id,
    visit_occurrence_id,
    note_id,
    nullif(trim(department), '') as department,
    upper(trim(modality)) as modality,
    cast(order_datetime as {{ type_datetime() }}) as order_datetime,
    cast(order_datetime as date) as order_date
from {{ source('ehr', 'imaging_order') }}
where {{ normalize_accession('accession_number') }} is not null
