select * from {{ source('ehr', 'measurement') }}
