select concept_id, concept_name, domain_id, vocabulary_id, concept_class_id, standard_concept, concept_code
from {{ ref('stg_ehr__concept') }}
