select * from {{ source('ehr', 'person') }}
