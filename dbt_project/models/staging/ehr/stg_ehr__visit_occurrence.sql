select * from {{ source('ehr', 'visit_occurrence') }}
