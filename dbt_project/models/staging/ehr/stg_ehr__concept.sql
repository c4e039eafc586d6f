select * from {{ source('ehr', 'concept') }}
