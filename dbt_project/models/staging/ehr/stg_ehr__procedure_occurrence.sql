select * from {{ source('ehr', 'procedure_occurrence') }}
