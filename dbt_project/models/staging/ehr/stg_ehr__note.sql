select * from {{ source('ehr', 'note') }}
