-- Every MRN of a person, normalised the same way as the DICOM PatientID.
select distinct
    person_id,
    {{ normalize_mrn('mrn') }} as mrn,
    cast(birth_date as date) as birth_date
from {{ source('ehr', 'mrn_crosswalk') }}
where {{ normalize_mrn('mrn') }} is not null
