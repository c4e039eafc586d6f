select * from {{ source('ehr', 'condition_occurrence') }}
