-- measurement_datetime typed as the project's datetime type (DATETIME on BigQuery): BigQuery has no
-- implicit TIMESTAMP -> DATETIME coercion, and deid_measurement unions these rows with image_feature_measurement's.
select * replace (cast(measurement_datetime as {{ type_datetime() }}) as measurement_datetime)
from {{ source('ehr', 'measurement') }}
